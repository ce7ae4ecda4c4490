package permgrow

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSiblingPartition(t *testing.T) {
	sys := t.TempDir()
	disk := filepath.Join(sys, "devices/platform/mmc/block/mmcblk0")
	for p, v := range map[string]string{
		filepath.Join(disk, "mmcblk0p1/partition"): "1\n",
		filepath.Join(disk, "mmcblk0p4/partition"): "4\n",
		filepath.Join(disk, "queue/rotational"):    "0\n",
	} {
		os.MkdirAll(filepath.Dir(p), 0o755) //nolint:errcheck
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(sys, "dev/block"), 0o755) //nolint:errcheck
	if err := os.Symlink(filepath.Join(disk, "mmcblk0p4"), filepath.Join(sys, "dev/block/179:4")); err != nil {
		t.Fatal(err)
	}
	got, err := siblingIn(sys, "/dev", 179, 4, 1)
	if err != nil || got != "/dev/mmcblk0p1" {
		t.Fatalf("boot partition = %q, %v", got, err)
	}
	if _, err := siblingIn(sys, "/dev", 179, 4, 2); err == nil {
		t.Fatal("found a partition that does not exist")
	}
}
