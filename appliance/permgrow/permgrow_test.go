package permgrow

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLocate(t *testing.T) {
	sys := t.TempDir()
	part := filepath.Join(sys, "devices/pci0000:00/virtio2/block/vda/vda4")
	for p, v := range map[string]string{
		filepath.Join(part, "partition"):   "4\n",
		filepath.Join(part, "start"):       "2260992\n",
		filepath.Join(part, "size"):        "360448\n",
		filepath.Join(part, "../size"):     "6291456\n",
		filepath.Join(part, "../vda1/dev"): "253:1\n",
	} {
		os.MkdirAll(filepath.Dir(p), 0o755) //nolint:errcheck
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(sys, "dev/block"), 0o755) //nolint:errcheck
	if err := os.Symlink(part, filepath.Join(sys, "dev/block/253:4")); err != nil {
		t.Fatal(err)
	}
	d, err := Locate(sys, "/dev", 253, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := Device{Disk: "/dev/vda", Partition: 4, DiskBytes: 6291456 * 512, PartStart: 2260992 * 512, PartBytes: 360448 * 512}
	if d != want {
		t.Fatalf("Locate = %+v, want %+v", d, want)
	}
	if _, err := Locate(sys, "/dev", 253, 9); err == nil {
		t.Fatal("found a device that does not exist")
	}
}
