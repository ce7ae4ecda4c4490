package permgrow

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func devOf(path string) (major, minor uint32, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return unix.Major(st.Dev), unix.Minor(st.Dev), nil
}

// blkpgPartition is the kernel's struct blkpg_partition.
type blkpgPartition struct {
	Start   int64
	Length  int64
	Pno     int32
	Devname [64]byte
	Volname [64]byte
	_       [4]byte
}

type blkpgIoctlArg struct {
	Op      int32
	Flags   int32
	Datalen int32
	_       int32
	Data    uintptr
}

const (
	blkpg                = 0x1269
	blkpgResizePartition = 3
	ext4IocResizeFS      = 0x40086610 // _IOW('f', 16, __u64)
	ext4SuperMagic       = 0xEF53
)

func resizePartition(disk *os.File, pno int, start, length int64) error {
	p := blkpgPartition{Start: start, Length: length, Pno: int32(pno)}
	arg := blkpgIoctlArg{Op: blkpgResizePartition, Datalen: int32(unsafe.Sizeof(p)), Data: uintptr(unsafe.Pointer(&p))}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), blkpg, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return errno
	}
	return nil
}

// growExt4 resizes the mounted ext4 file system on the partition at partStart of disk to
// fill partBytes and returns its size in bytes. The size comes from the superblock (statfs
// leaves out metadata, which would make a grown file system look unfinished forever).
func growExt4(mountpoint string, disk *os.File, partStart, partBytes int64) (int64, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(mountpoint, &sfs); err != nil {
		return 0, err
	}
	if sfs.Type != ext4SuperMagic {
		return 0, fmt.Errorf("%s is not ext4", mountpoint)
	}
	blocks, bs, err := ext4Size(disk, partStart)
	if err != nil {
		return 0, err
	}
	cur := int64(blocks) * bs
	if partBytes-cur < minGrow {
		return cur, nil
	}
	want := uint64(partBytes / bs)
	d, err := os.Open(mountpoint)
	if err != nil {
		return cur, err
	}
	defer d.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&want))); errno != 0 {
		return cur, errno
	}
	return int64(want) * bs, nil
}
