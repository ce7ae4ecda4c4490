package localdir

import (
	"testing"

	"github.com/outpost-im/outpost/appliance/target/targettest"
)

func TestContract(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	targettest.Run(t, d)
	targettest.Snapshot(t, d)
}

func TestOpenMissingDir(t *testing.T) {
	if _, err := Open(t.TempDir() + "/not-mounted"); err == nil {
		t.Fatal("Open of a missing directory succeeded; an unmounted USB drive would fill the box's disk")
	}
}
