package usb

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

var mu sync.Mutex // mounts and unmounts, one at a time
var users = map[string]int{}

// Mount mounts the stick at its Dir (nosuid,nodev,noexec) unless this process already has
// it mounted, and returns a release function: the last release syncs and unmounts it.
func Mount(s Stick) (release func(), err error) {
	mu.Lock()
	defer mu.Unlock()
	dir := s.Dir()
	if users[dir] == 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		data := ""
		if s.FSType == "vfat" {
			data = "umask=077,flush"
		}
		if err := syscall.Mount(s.Device, dir, s.FSType, syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC|syscall.MS_NOATIME, data); err != nil && !errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("mount USB stick %s (%s, %s): %w", s.Label, s.Device, s.FSType, err)
		}
	}
	users[dir]++
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if users[dir]--; users[dir] > 0 {
				return
			}
			delete(users, dir)
			syscall.Sync()
			syscall.Unmount(dir, 0) //nolint:errcheck // a stick pulled meanwhile is already gone
			os.Remove(dir)          //nolint:errcheck
		})
	}, nil
}
