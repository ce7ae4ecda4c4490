package permgrow

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SiblingPartition returns the device (e.g. /dev/vda1, /dev/mmcblk0p1) of partition n on the
// disk that holds mountpoint: the boot partition is partition 1 of /perm's disk.
func SiblingPartition(mountpoint string, n int) (string, error) {
	major, minor, err := devOf(mountpoint)
	if err != nil {
		return "", err
	}
	return siblingIn("/sys", "/dev", major, minor, n)
}

func siblingIn(sysfs, devDir string, major, minor uint32, n int) (string, error) {
	part, err := filepath.EvalSymlinks(filepath.Join(sysfs, "dev/block", fmt.Sprintf("%d:%d", major, minor)))
	if err != nil {
		return "", fmt.Errorf("find the block device %d:%d: %w", major, minor, err)
	}
	disk := filepath.Dir(part)
	entries, err := os.ReadDir(disk)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(disk, e.Name(), "partition"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == fmt.Sprint(n) {
			return filepath.Join(devDir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("%s has no partition %d", filepath.Base(disk), n)
}
