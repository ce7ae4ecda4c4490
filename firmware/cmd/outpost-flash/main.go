// Command outpost-flash writes an Outpost image to a removable disk (SD card, USB stick, SSD
// in a USB case) for `make flash DEVICE=/dev/sdX`.
//
// It refuses a device that is not a whole disk, is (or has a partition) mounted, is used as
// swap or by device-mapper/RAID, holds the running system, is not removable (unless
// -allow-fixed) or is smaller than the image; then it asks for the device name to be typed
// back before writing. It opens the device exclusively (O_EXCL), which the kernel refuses
// for a disk in use, as a last guard.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("outpost-flash: ")
	image := flag.String("image", "", "image file (out/image/outpost-ARCH.img)")
	device := flag.String("device", "", "whole disk to overwrite, e.g. /dev/sdb")
	allowFixed := flag.Bool("allow-fixed", false, "allow a disk the kernel does not report as removable")
	yes := flag.Bool("yes", false, "do not ask for confirmation (scripts)")
	flag.Parse()
	if *image == "" || *device == "" {
		log.Fatal("usage: outpost-flash -image FILE -device /dev/sdX")
	}
	st, err := os.Stat(*image)
	if err != nil {
		log.Fatal(err)
	}
	host := Host{Sys: "/sys", Proc: "/proc", Dev: "/dev"}
	d, err := host.Check(*device, st.Size(), *allowFixed)
	if err != nil {
		log.Fatalf("refusing to write %s: %v", *device, err)
	}
	fmt.Printf("About to ERASE %s (%s, %.1f GB, %s) and write %s.\n", d.Path, d.Model, float64(d.Bytes)/1e9, map[bool]string{true: "removable", false: "fixed"}[d.Removable], *image)
	if !*yes {
		fmt.Printf("Type the device name (%s) to continue: ", filepath.Base(d.Path))
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if strings.TrimSpace(line) != filepath.Base(d.Path) {
			log.Fatal("not confirmed; nothing written")
		}
	}
	if err := write(*image, d.Path); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Done. /perm grows to the whole of %s on the first boot.\n", d.Path)
}

func write(image, device string) error {
	in, err := os.Open(image)
	if err != nil {
		return err
	}
	defer in.Close()
	// O_EXCL on a block device fails with EBUSY while anything has it or a partition mounted.
	out, err := os.OpenFile(device, os.O_WRONLY|unix.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("open %s exclusively: %w", device, err)
	}
	defer out.Close()
	buf := make([]byte, 4<<20)
	n, err := io.CopyBuffer(out, in, buf)
	if err != nil {
		return fmt.Errorf("write %s after %d bytes: %w", device, n, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("flush %s: %w", device, err)
	}
	// Re-read the partition table so the desktop does not keep the old one.
	unix.IoctlSetInt(int(out.Fd()), unix.BLKRRPART, 0) //nolint:errcheck // best effort
	return out.Close()
}
