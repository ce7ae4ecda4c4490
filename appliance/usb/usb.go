// Package usb finds USB sticks on the appliance and mounts them on demand. gokrazy has no
// udev: sticks are found by scanning /sys/block and by listening to the kernel's uevents.
// A stick is mounted only while it is used (a snapshot written, a manifest read), with
// nosuid,nodev,noexec, and synced and unmounted afterwards, so it can be pulled at any
// other time without damage.
package usb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Root is where sticks are mounted, one directory per label: /run/outpost/usb/<LABEL>.
const Root = "/run/outpost/usb"

// Stick is a file system on a USB block device.
type Stick struct {
	Device string // /dev/sdb1 (or /dev/sdb for a stick without a partition table)
	Label  string // the file system label, the name people see and configure
	FSType string // "ext4" or "vfat"
}

// Dir is where the stick is mounted when it is.
func (s Stick) Dir() string { return filepath.Join(Root, s.Label) }

var labelOK = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// Scan lists the USB sticks present, by reading sysfs (normally "/sys") and the devices in
// devDir ("/dev"). Devices without a recognised file system or label are skipped.
func Scan(sysfs, devDir string) ([]Stick, error) {
	disks, err := os.ReadDir(filepath.Join(sysfs, "block"))
	if err != nil {
		return nil, err
	}
	var out []Stick
	for _, d := range disks {
		real, err := filepath.EvalSymlinks(filepath.Join(sysfs, "block", d.Name()))
		if err != nil || !strings.Contains(real, "/usb") {
			continue // not on a USB bus: the box's own disk, virtio, NVMe...
		}
		names := []string{d.Name()}
		if parts, err := os.ReadDir(real); err == nil {
			for _, p := range parts {
				if _, err := os.Stat(filepath.Join(real, p.Name(), "partition")); err == nil {
					names = append(names, p.Name())
				}
			}
		}
		for _, n := range names {
			dev := filepath.Join(devDir, n)
			fstype, label, err := Probe(dev)
			if err != nil || fstype == "" || !labelOK.MatchString(label) {
				continue
			}
			out = append(out, Stick{Device: dev, Label: label, FSType: fstype})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}

// Probe reads a block device's first sectors and returns its file system type ("ext4",
// "vfat" or "") and label.
func Probe(dev string) (fstype, label string, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	return probe(f)
}

func probe(r io.ReaderAt) (string, string, error) {
	buf := make([]byte, 2048)
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", "", err
	}
	// ext2/3/4: the superblock is at 1024; magic 0xEF53 at +56, volume name at +120.
	if binary.LittleEndian.Uint16(buf[1024+56:]) == 0xEF53 {
		return "ext4", cstring(buf[1024+120 : 1024+136]), nil
	}
	// FAT: boot sector signature 0x55AA; FAT32 keeps the label at 71, FAT12/16 at 43.
	if buf[510] == 0x55 && buf[511] == 0xAA {
		switch {
		case bytes.HasPrefix(buf[82:], []byte("FAT32")):
			return "vfat", fatLabel(buf[71:82]), nil
		case bytes.HasPrefix(buf[54:], []byte("FAT")):
			return "vfat", fatLabel(buf[43:54]), nil
		}
	}
	return "", "", nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " ")
	if l == "NO NAME" {
		return ""
	}
	return l
}

// Find returns the stick with the given label.
func Find(sysfs, devDir, label string) (Stick, error) {
	sticks, err := Scan(sysfs, devDir)
	if err != nil {
		return Stick{}, err
	}
	var seen []string
	for _, s := range sticks {
		if s.Label == label {
			return s, nil
		}
		seen = append(seen, s.Label)
	}
	if len(seen) == 0 {
		return Stick{}, fmt.Errorf("no USB stick labelled %s is plugged in (no USB stick with an ext4 or FAT file system found)", label)
	}
	return Stick{}, fmt.Errorf("no USB stick labelled %s is plugged in (found: %s)", label, strings.Join(seen, ", "))
}

// LabelOf returns the label of a local target path under Root, or "" for any other path.
func LabelOf(path string) string {
	rel, err := filepath.Rel(Root, filepath.Clean(path))
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return ""
	}
	return strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
}
