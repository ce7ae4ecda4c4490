// Package permgrow grows the appliance's /perm partition and its ext4 file system to the end
// of the disk, online, at boot.
//
// The image is built small (1.3 GB) so it flashes fast; written to a 32 GB card or a 500 GB
// SSD, its last partition (/perm) still ends where the image ended. On the first boot on a
// larger disk, Grow rewrites the GPT (backup first, then primary), tells the kernel the new
// partition size (BLKPG) and asks ext4 to resize itself while mounted (EXT4_IOC_RESIZE_FS,
// what resize2fs does for a mounted file system). Every step is idempotent: a power cut in
// between is finished on the next boot.
package permgrow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/outpost-im/outpost/appliance/gpt"
)

// minGrow: smaller gains are not worth rewriting the partition table for.
const minGrow = 64 << 20

// Device describes the block device behind a mount point, as sysfs tells it.
type Device struct {
	Disk      string // e.g. /dev/sda
	Partition int    // e.g. 4
	DiskBytes int64
	PartStart int64 // bytes
	PartBytes int64
}

// Locate finds the partition holding mountpoint under sysfs (normally "/sys") and devDir
// ("/dev"); tests pass a fake tree.
func Locate(sysfs, devDir string, major, minor uint32) (Device, error) {
	link := filepath.Join(sysfs, "dev/block", fmt.Sprintf("%d:%d", major, minor))
	part, err := filepath.EvalSymlinks(link)
	if err != nil {
		return Device{}, fmt.Errorf("find the block device %d:%d: %w", major, minor, err)
	}
	num, err := readInt(filepath.Join(part, "partition"))
	if err != nil {
		return Device{}, fmt.Errorf("%s is not a partition: %w", filepath.Base(part), err)
	}
	start, err := readInt(filepath.Join(part, "start"))
	if err != nil {
		return Device{}, err
	}
	size, err := readInt(filepath.Join(part, "size"))
	if err != nil {
		return Device{}, err
	}
	disk := filepath.Dir(part)
	diskSize, err := readInt(filepath.Join(disk, "size"))
	if err != nil {
		return Device{}, err
	}
	// sysfs counts 512-byte sectors whatever the device's sector size.
	return Device{
		Disk:      filepath.Join(devDir, filepath.Base(disk)),
		Partition: int(num),
		DiskBytes: diskSize * 512,
		PartStart: start * 512,
		PartBytes: size * 512,
	}, nil
}

// ext4Size reads the block count and block size from the ext4 superblock at partStart.
func ext4Size(r io.ReaderAt, partStart int64) (blocks uint64, blockBytes int64, err error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, partStart+1024); err != nil {
		return 0, 0, fmt.Errorf("read the ext4 superblock: %w", err)
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return 0, 0, errors.New("no ext4 superblock")
	}
	blocks = uint64(binary.LittleEndian.Uint32(sb[0x4:]))
	if binary.LittleEndian.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	return blocks, 1024 << binary.LittleEndian.Uint32(sb[0x18:]), nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// Result says what Grow did.
type Result struct {
	Device
	GrewTable bool  // the partition table was rewritten
	FSBytes   int64 // the file system's size afterwards
}

// Grow makes the partition mounted at mountpoint span the rest of its disk and grows the
// ext4 file system on it to fill the partition.
func Grow(ctx context.Context, mountpoint string, log *slog.Logger) (Result, error) {
	major, minor, err := devOf(mountpoint)
	if err != nil {
		return Result{}, err
	}
	dev, err := Locate("/sys", "/dev", major, minor)
	if err != nil {
		return Result{}, err
	}
	res := Result{Device: dev}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	f, err := os.OpenFile(dev.Disk, os.O_RDWR, 0)
	if err != nil {
		return res, fmt.Errorf("open %s: %w", dev.Disk, err)
	}
	defer f.Close()
	t, err := gpt.Read(f)
	if err != nil {
		return res, fmt.Errorf("%s: %w", dev.Disk, err)
	}
	writes, grown, err := t.Grow(dev.DiskBytes, dev.Partition, minGrow)
	if err != nil {
		return res, fmt.Errorf("%s: %w", dev.Disk, err)
	}
	if len(writes) > 0 {
		log.Info("growing the /perm partition to the end of the disk", "disk", dev.Disk, "from_bytes", dev.PartBytes, "to_bytes", grown.Size())
		if err := gpt.Apply(f, writes); err != nil {
			return res, fmt.Errorf("%s: %w", dev.Disk, err)
		}
		if err := f.Sync(); err != nil {
			return res, fmt.Errorf("%s: %w", dev.Disk, err)
		}
		res.GrewTable = true
	}
	// The kernel's idea of the partition may lag the table (a power cut after the write).
	if grown.Size() != dev.PartBytes {
		if err := resizePartition(f, dev.Partition, grown.Start(), grown.Size()); err != nil {
			return res, fmt.Errorf("tell the kernel about the new size of %s%d: %w", dev.Disk, dev.Partition, err)
		}
		res.PartBytes = grown.Size()
	}
	fsBytes, err := growExt4(mountpoint, f, grown.Start(), grown.Size())
	res.FSBytes = fsBytes
	if err != nil {
		return res, fmt.Errorf("grow the file system on %s: %w", mountpoint, err)
	}
	return res, nil
}
