package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeHost builds a sysfs/proc/dev tree with sda (system disk, partitions 1-2 mounted on /
// and /boot), sdb (removable 32 GB card, one partition), sdc (fixed disk), sdd (removable, a
// partition held by device-mapper), sde (removable, 1 GB).
func fakeHost(t *testing.T, mountinfo, swaps string) Host {
	t.Helper()
	root := t.TempDir()
	h := Host{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")}
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	disk := func(name string, major int, sectors int64, removable bool, parts int) {
		blk := filepath.Join(h.Sys, "class/block", name)
		write(filepath.Join(blk, "size"), itoa(sectors))
		write(filepath.Join(blk, "removable"), map[bool]string{true: "1", false: "0"}[removable])
		write(filepath.Join(blk, "dev"), itoa(int64(major))+":0")
		write(filepath.Join(blk, "device/model"), "Test "+name)
		write(filepath.Join(h.Dev, name), "")
		for i := 1; i <= parts; i++ {
			p := name + itoa(int64(i))
			write(filepath.Join(blk, p, "partition"), itoa(int64(i)))
			write(filepath.Join(blk, p, "dev"), itoa(int64(major))+":"+itoa(int64(i)))
			// sysfs has both /sys/class/block/sda1 and /sys/class/block/sda/sda1.
			write(filepath.Join(h.Sys, "class/block", p, "partition"), itoa(int64(i)))
			write(filepath.Join(h.Sys, "class/block", p, "dev"), itoa(int64(major))+":"+itoa(int64(i)))
			write(filepath.Join(h.Dev, p), "")
		}
	}
	disk("sda", 8, 1e9, false, 2)
	disk("sdb", 9, 62500000, true, 1)
	disk("sdc", 10, 1e9, false, 0)
	disk("sdd", 11, 62500000, true, 1)
	disk("sde", 12, 2000000, true, 0)
	write(filepath.Join(h.Sys, "class/block/sdd1/holders/dm-0"), "")
	write(filepath.Join(h.Sys, "class/block/loop0/size"), "100")
	write(filepath.Join(h.Dev, "loop0"), "")
	write(filepath.Join(h.Proc, "self/mountinfo"), mountinfo)
	write(filepath.Join(h.Proc, "swaps"), "Filename Type Size Used Priority\n"+swaps)
	return h
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

const baseMounts = `22 1 8:1 / / rw - ext4 /dev/sda1 rw
23 22 8:2 / /boot rw - ext4 /dev/sda2 rw
24 22 0:5 / /proc rw - proc proc rw`

func TestCheck(t *testing.T) {
	const img = 1342177280
	for _, tc := range []struct {
		name, dev, mounts, swaps string
		allowFixed               bool
		wantErr                  string
	}{
		{name: "removable card", dev: "sdb", mounts: baseMounts},
		{name: "system disk", dev: "sda", mounts: baseMounts, allowFixed: true, wantErr: "running system"},
		{name: "a partition", dev: "sdb1", mounts: baseMounts, wantErr: "is a partition"},
		{name: "mounted card", dev: "sdb", mounts: baseMounts + "\n30 22 9:1 / /media/card rw - vfat /dev/sdb1 rw", wantErr: "mounted on /media/card"},
		{name: "fixed disk refused", dev: "sdc", mounts: baseMounts, wantErr: "removable"},
		{name: "fixed disk allowed", dev: "sdc", mounts: baseMounts, allowFixed: true},
		{name: "device-mapper holder", dev: "sdd", mounts: baseMounts, wantErr: "device-mapper"},
		{name: "swap", dev: "sdb", mounts: baseMounts, swaps: "/dev/sdb1 partition 1000 0 -2", wantErr: "swap"},
		{name: "too small", dev: "sde", mounts: baseMounts, wantErr: "image needs"},
		{name: "loop device", dev: "loop0", mounts: baseMounts, wantErr: "virtual"},
		{name: "no such device", dev: "sdz", mounts: baseMounts, wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, tc.mounts, tc.swaps)
			_, err := h.Check(filepath.Join(h.Dev, tc.dev), img, tc.allowFixed)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
