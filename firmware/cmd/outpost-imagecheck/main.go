// Command outpost-imagecheck checks a built Outpost image before anyone flashes it: the root
// file system must fit its partition (gokrazy writes a root image larger than the 500 MiB
// partition without complaint, over the second root partition and /perm) and /perm must
// hold an ext4 file system. `make image` runs it and fails on its exit status.
//
//	outpost-imagecheck IMAGE           check and print the figures
//	outpost-imagecheck -perm-extent IMAGE   print the /perm partition's offset and size in bytes
//	outpost-imagecheck -boot-extent IMAGE   the same for the boot (FAT) partition
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/outpost-im/outpost/appliance/gpt"
)

// gokrazy's fixed layout: 1 boot (FAT), 2 and 3 root A and B (SquashFS), 4 /perm.
const (
	bootPart  = 1
	rootPart  = 2
	permPart  = 4
	warnRatio = 0.9
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("outpost-imagecheck: ")
	permExtent := flag.Bool("perm-extent", false, "print the /perm partition's byte offset and size and exit")
	bootExtent := flag.Bool("boot-extent", false, "print the boot (FAT) partition's byte offset and size and exit")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: outpost-imagecheck [-perm-extent] IMAGE")
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if *permExtent || *bootExtent {
		t, err := gpt.Read(f)
		if err != nil {
			log.Fatal(err)
		}
		n, what := permPart, "/perm"
		if *bootExtent {
			n, what = 1, "boot"
		}
		p, ok := t.Partition(n)
		if !ok {
			log.Fatalf("no %s partition", what)
		}
		fmt.Println(p.Start(), p.Size())
		return
	}
	r, err := check(f)
	if r != nil {
		st, _ := f.Stat()
		fmt.Printf("image %s: %d MiB (%d MiB allocated)\n", flag.Arg(0), st.Size()>>20, allocated(st)>>20)
		fmt.Printf("root file system: %.1f MiB of %.0f MiB partition (%.0f%%)\n", mib(r.rootUsed), mib(r.rootSize), 100*float64(r.rootUsed)/float64(r.rootSize))
		fmt.Printf("/perm: %.0f MiB ext4 (grows to the whole disk on first boot)\n", mib(r.permSize))
	}
	if err != nil {
		log.Fatal(err)
	}
	if float64(r.rootUsed) > warnRatio*float64(r.rootSize) {
		fmt.Printf("WARNING: the root file system uses over %.0f%% of its partition\n", 100*warnRatio)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

type report struct {
	rootUsed, rootSize, permSize int64
}

// check verifies the layout; it returns what it measured even when a check fails.
func check(img io.ReaderAt) (*report, error) {
	t, err := gpt.Read(img)
	if err != nil {
		return nil, err
	}
	root, ok := t.Partition(rootPart)
	perm, ok2 := t.Partition(permPart)
	if _, ok3 := t.Partition(bootPart); !ok || !ok2 || !ok3 {
		return nil, errors.New("partition table lacks the boot, root or /perm partition")
	}
	r := &report{rootSize: root.Size(), permSize: perm.Size()}
	used, err := squashfsBytesUsed(io.NewSectionReader(img, root.Start(), root.Size()))
	if err != nil {
		return nil, fmt.Errorf("root file system: %w", err)
	}
	r.rootUsed = used
	if used > root.Size() {
		return r, fmt.Errorf("root file system is %d bytes, over its %d-byte partition: it overwrote the next partition; remove something from the image", used, root.Size())
	}
	if err := isExt4(io.NewSectionReader(img, perm.Start(), perm.Size())); err != nil {
		return r, fmt.Errorf("/perm: %w", err)
	}
	return r, nil
}

// squashfsBytesUsed reads the size a SquashFS superblock records.
func squashfsBytesUsed(r io.ReaderAt) (int64, error) {
	sb := make([]byte, 96)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return 0, err
	}
	if string(sb[:4]) != "hsqs" {
		return 0, errors.New("no SquashFS superblock")
	}
	return int64(binary.LittleEndian.Uint64(sb[40:])), nil
}

// isExt4 checks the ext2/3/4 superblock magic.
func isExt4(r io.ReaderAt) error {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return err
	}
	if binary.LittleEndian.Uint16(sb[56:]) != 0xEF53 {
		return errors.New("no ext4 file system (the image build must format it)")
	}
	return nil
}
