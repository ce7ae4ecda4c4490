package platform

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/outpost-im/outpost/appliance/permgrow"
	"github.com/outpost-im/outpost/appliance/usb"
)

// MountBootPartition mounts the image's boot (FAT) partition read-write at BootMount, so a
// provisioning manifest on it can be read and then consumed. It is mounted only while the
// box looks for a manifest: a FAT file system left mounted is a power cut away from damage.
func MountBootPartition() (unmount func(), err error) {
	if !OnGokrazy() {
		return func() {}, nil
	}
	dev, err := permgrow.SiblingPartition("/perm", 1)
	if err != nil {
		return nil, fmt.Errorf("find the boot partition: %w", err)
	}
	if err := os.MkdirAll(BootMount, 0o700); err != nil {
		return nil, err
	}
	if err := syscall.Mount(dev, BootMount, "vfat", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "umask=077"); err != nil {
		return nil, fmt.Errorf("mount the boot partition %s: %w", dev, err)
	}
	return func() {
		syscall.Sync()
		syscall.Unmount(BootMount, 0) //nolint:errcheck // nothing to do about it at this point
	}, nil
}

// MountProvisionMedia mounts what may carry a first-boot manifest: the boot partition and a
// USB stick labelled OUTPOST. The returned function unmounts them again.
func MountProvisionMedia() (func(), error) {
	var undo []func()
	unmountAll := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	var errs []error
	if u, err := MountBootPartition(); err != nil {
		errs = append(errs, err)
	} else {
		undo = append(undo, u)
	}
	if s, err := usb.Find("/sys", "/dev", ProvisionStickLabel); err == nil {
		if release, err := usb.Mount(s); err != nil {
			errs = append(errs, err)
		} else {
			undo = append(undo, release)
		}
	}
	return unmountAll, errors.Join(errs...)
}
