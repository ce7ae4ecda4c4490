package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Host is where the checks read the system's state; tests point it at a fake tree.
type Host struct {
	Sys, Proc, Dev string
}

// Disk is a device that passed the checks.
type Disk struct {
	Path      string
	Model     string
	Bytes     int64
	Removable bool
}

// Check decides whether device may be overwritten with an image of imageBytes.
func (h Host) Check(device string, imageBytes int64, allowFixed bool) (Disk, error) {
	dev, err := filepath.EvalSymlinks(device)
	if err != nil {
		return Disk{}, err
	}
	name := filepath.Base(dev)
	if filepath.Dir(dev) != filepath.Clean(h.Dev) {
		return Disk{}, fmt.Errorf("%s is not a device under %s", dev, h.Dev)
	}
	blk := filepath.Join(h.Sys, "class/block", name)
	if _, err := os.Stat(blk); err != nil {
		return Disk{}, fmt.Errorf("%s is not a block device", dev)
	}
	if _, err := os.Stat(filepath.Join(blk, "partition")); err == nil {
		return Disk{}, fmt.Errorf("%s is a partition; give the whole disk", dev)
	}
	if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "dm-") || strings.HasPrefix(name, "md") || strings.HasPrefix(name, "zram") {
		return Disk{}, fmt.Errorf("%s is a virtual device, not a disk to flash", dev)
	}
	d := Disk{Path: dev}
	sectors, err := readInt(filepath.Join(blk, "size"))
	if err != nil {
		return Disk{}, err
	}
	d.Bytes = sectors * 512
	d.Removable = readString(filepath.Join(blk, "removable")) == "1"
	d.Model = readString(filepath.Join(blk, "device/model"))
	if d.Model == "" {
		d.Model = "unknown model"
	}

	// The disk and its partitions, by major:minor.
	parts := []string{name}
	entries, _ := os.ReadDir(blk)
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(blk, e.Name(), "partition")); err == nil {
			parts = append(parts, e.Name())
		}
	}
	devnums := map[string]string{}
	for _, p := range parts {
		devnums[readString(filepath.Join(h.Sys, "class/block", p, "dev"))] = p
		holders, _ := os.ReadDir(filepath.Join(h.Sys, "class/block", p, "holders"))
		if len(holders) > 0 {
			return Disk{}, fmt.Errorf("%s is in use by %s (device-mapper, LVM, RAID or encryption)", p, holders[0].Name())
		}
	}
	mounts, err := os.ReadFile(filepath.Join(h.Proc, "self/mountinfo"))
	if err != nil {
		return Disk{}, fmt.Errorf("read mounts: %w", err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if p, ok := devnums[f[2]]; ok {
			what := "mounted"
			if f[4] == "/" || f[4] == "/boot" || f[4] == "/usr" || f[4] == "/boot/efi" {
				what = "holds the running system, mounted"
			}
			return Disk{}, fmt.Errorf("%s %s on %s; unmount it first", p, what, f[4])
		}
	}
	swaps, _ := os.ReadFile(filepath.Join(h.Proc, "swaps"))
	for _, line := range strings.Split(string(swaps), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 0 {
			for _, p := range parts {
				if filepath.Base(f[0]) == p {
					return Disk{}, fmt.Errorf("%s is used as swap", p)
				}
			}
		}
	}
	if !d.Removable && !allowFixed {
		return Disk{}, errors.New("the kernel does not report it as removable (an internal disk?); pass -allow-fixed if you are sure")
	}
	if d.Bytes < imageBytes {
		return Disk{}, fmt.Errorf("it holds %d bytes, the image needs %d", d.Bytes, imageBytes)
	}
	return d, nil
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
