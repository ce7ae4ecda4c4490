package usb

import (
	"context"
	"strings"
	"syscall"
	"time"
)

// Watch calls added for every USB stick that appears, from kernel uevents, until ctx ends.
// Sticks present at the start are not reported (Scan lists them).
func Watch(ctx context.Context, added func(Stick)) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		syscall.Close(fd)
	}()
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: 1}); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ev := parseUevent(buf[:n])
		if ev["ACTION"] != "add" || ev["SUBSYSTEM"] != "block" || !strings.Contains(ev["DEVPATH"], "/usb") {
			continue
		}
		name := ev["DEVNAME"]
		// The device node appears (devtmpfs) as the event is sent; the partition table of a
		// whole disk is read a moment later.
		time.Sleep(500 * time.Millisecond)
		fstype, label, err := Probe("/dev/" + name)
		if err != nil || fstype == "" || !labelOK.MatchString(label) {
			continue
		}
		added(Stick{Device: "/dev/" + name, Label: label, FSType: fstype})
	}
}

func parseUevent(b []byte) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}
