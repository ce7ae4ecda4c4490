package usb

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func fatImage(label string) []byte {
	b := make([]byte, 4096)
	copy(b[82:], "FAT32   ")
	copy(b[71:82], label+"           ")
	b[510], b[511] = 0x55, 0xAA
	return b
}

func TestScanFindsUSBSticksByLabel(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	// sdb: a USB stick with one FAT partition; sdc: a USB stick formatted whole as ext4;
	// vda: the box's own disk (not USB), which must be ignored.
	usbDisk := filepath.Join(sys, "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0/block/sdb")
	os.MkdirAll(filepath.Join(usbDisk, "sdb1"), 0o755)
	os.WriteFile(filepath.Join(usbDisk, "sdb1/partition"), []byte("1\n"), 0o644)
	usbWhole := filepath.Join(sys, "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host1/target1:0:0/1:0:0:0/block/sdc")
	os.MkdirAll(usbWhole, 0o755)
	own := filepath.Join(sys, "devices/pci0000:00/virtio0/block/vda")
	os.MkdirAll(filepath.Join(own, "vda1"), 0o755)
	os.WriteFile(filepath.Join(own, "vda1/partition"), []byte("1\n"), 0o644)
	os.MkdirAll(filepath.Join(sys, "block"), 0o755)
	for name, target := range map[string]string{"sdb": usbDisk, "sdc": usbWhole, "vda": own} {
		if err := os.Symlink(target, filepath.Join(sys, "block", name)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dev, "sdb"), make([]byte, 4096), 0o644) // partition table only
	os.WriteFile(filepath.Join(dev, "sdb1"), fatImage("BACKUP"), 0o644)
	os.WriteFile(filepath.Join(dev, "vda1"), fatImage("GOKRAZY"), 0o644)
	ext := filepath.Join(dev, "sdc")
	if mkfs, err := exec.LookPath("mkfs.ext4"); err == nil {
		os.WriteFile(ext, nil, 0o644)
		os.Truncate(ext, 8<<20)
		if out, err := exec.Command(mkfs, "-q", "-F", "-L", "OUTPOST", ext).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v %s", err, out)
		}
	}
	sticks, err := Scan(sys, dev)
	if err != nil {
		t.Fatal(err)
	}
	want := []Stick{{Device: filepath.Join(dev, "sdb1"), Label: "BACKUP", FSType: "vfat"}}
	if _, err := os.Stat(ext); err == nil {
		want = append(want, Stick{Device: ext, Label: "OUTPOST", FSType: "ext4"})
	}
	if len(sticks) != len(want) {
		t.Fatalf("Scan = %+v, want %+v", sticks, want)
	}
	for i := range want {
		if sticks[i] != want[i] {
			t.Fatalf("Scan[%d] = %+v, want %+v", i, sticks[i], want[i])
		}
	}
	if _, err := Find(sys, dev, "MISSING"); err == nil {
		t.Fatal("found a stick that is not there")
	}
	if s, err := Find(sys, dev, "BACKUP"); err != nil || s.Dir() != "/run/outpost/usb/BACKUP" {
		t.Fatalf("Find = %+v, %v", s, err)
	}
}

func TestLabelOf(t *testing.T) {
	for path, want := range map[string]string{
		"/run/outpost/usb/BACKUP":         "BACKUP",
		"/run/outpost/usb/BACKUP/outpost": "BACKUP",
		"/run/outpost/usb":                "",
		"/media/usb":                      "",
		"/run/outpost/usb/../../etc":      "",
	} {
		if got := LabelOf(path); got != want {
			t.Errorf("LabelOf(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParseUevent(t *testing.T) {
	ev := parseUevent([]byte("add@/devices/x/block/sdb/sdb1\x00ACTION=add\x00DEVPATH=/devices/pci/usb1/block/sdb/sdb1\x00SUBSYSTEM=block\x00DEVNAME=sdb1\x00DEVTYPE=partition\x00"))
	if ev["ACTION"] != "add" || ev["DEVNAME"] != "sdb1" || ev["SUBSYSTEM"] != "block" {
		t.Fatalf("%v", ev)
	}
}
