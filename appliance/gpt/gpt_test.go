package gpt

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// makeDisk writes a gokrazy-like GPT (boot, root A, root B, perm to the end) into a file of
// size bytes.
func makeDisk(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	const n, esz = 128, 128
	sectors := uint64(size / SectorSize)
	last := sectors - 1
	lastUsable := last - 33
	entries := make([]byte, n*esz)
	parts := [][2]uint64{{8192, 8192 + 204800 - 1}, {212992, 212992 + 1024000 - 1}, {1236992, 1236992 + 1024000 - 1}, {2260992, lastUsable}}
	for i, p := range parts {
		e := entries[i*esz:]
		e[0] = 0xAF // any non-zero type GUID
		e[16] = byte(i + 1)
		binary.LittleEndian.PutUint64(e[32:], p[0])
		binary.LittleEndian.PutUint64(e[40:], p[1])
	}
	hdr := make([]byte, SectorSize)
	copy(hdr, "EFI PART")
	binary.LittleEndian.PutUint32(hdr[8:], 0x00010000)
	binary.LittleEndian.PutUint32(hdr[12:], 92)
	binary.LittleEndian.PutUint64(hdr[24:], 1)
	binary.LittleEndian.PutUint64(hdr[32:], last)
	binary.LittleEndian.PutUint64(hdr[40:], 34)
	binary.LittleEndian.PutUint64(hdr[48:], lastUsable)
	binary.LittleEndian.PutUint64(hdr[72:], 2)
	binary.LittleEndian.PutUint32(hdr[80:], n)
	binary.LittleEndian.PutUint32(hdr[84:], esz)
	binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(hdr[16:], headerCRC(hdr[:92]))
	f.WriteAt(hdr, SectorSize)       //nolint:errcheck
	f.WriteAt(entries, 2*SectorSize) //nolint:errcheck
	return f
}

func TestGrow(t *testing.T) {
	const small, big = 1342177280, 4 << 30
	f := makeDisk(t, small)
	defer f.Close()
	tab, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 4 {
		t.Fatalf("%d partitions", len(tab.Partitions))
	}
	// "Flash" the image onto a bigger disk.
	if err := f.Truncate(big); err != nil {
		t.Fatal(err)
	}
	writes, p4, err := tab.Grow(big, 4, 64<<20)
	if err != nil || len(writes) == 0 {
		t.Fatalf("grow: %v (%d writes)", err, len(writes))
	}
	if err := Apply(f, writes); err != nil {
		t.Fatal(err)
	}
	again, err := Read(f)
	if err != nil {
		t.Fatalf("re-read: %v", err)
	}
	got, _ := again.Partition(4)
	if got != p4 || got.LastLBA != uint64(big/SectorSize)-34 {
		t.Fatalf("partition 4 after grow: %+v (planned %+v)", got, p4)
	}
	for n := 1; n <= 3; n++ {
		a, _ := tab.Partition(n)
		b, _ := again.Partition(n)
		if a != b {
			t.Fatalf("partition %d changed: %+v -> %+v", n, a, b)
		}
	}
	// The backup header sits in the last sector, points back at the primary and checks out.
	bak := make([]byte, SectorSize)
	f.ReadAt(bak, big-SectorSize) //nolint:errcheck
	if !bytes.Equal(bak[:8], signature) || binary.LittleEndian.Uint64(bak[24:]) != uint64(big/SectorSize)-1 ||
		binary.LittleEndian.Uint64(bak[32:]) != 1 || headerCRC(bak[:92]) != binary.LittleEndian.Uint32(bak[16:]) {
		t.Fatal("backup header is wrong")
	}
	bentries := make([]byte, len(tab.entries))
	f.ReadAt(bentries, int64(binary.LittleEndian.Uint64(bak[72:]))*SectorSize) //nolint:errcheck
	if crc32.ChecksumIEEE(bentries) != binary.LittleEndian.Uint32(bak[88:]) {
		t.Fatal("backup entries checksum")
	}
	// Growing again is a no-op.
	if w, _, err := again.Grow(big, 4, 64<<20); err != nil || len(w) != 0 {
		t.Fatalf("second grow: %v, %d writes", err, len(w))
	}
}

func TestGrowRefuses(t *testing.T) {
	f := makeDisk(t, 1342177280)
	defer f.Close()
	tab, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tab.Grow(1342177280, 2, 0); err == nil {
		t.Fatal("grew a partition that is not the last one")
	}
	if _, _, err := tab.Grow(1<<30, 4, 0); err == nil {
		t.Fatal("grew onto a smaller device")
	}
	if w, _, err := tab.Grow(1342177280+32<<20, 4, 64<<20); err != nil || len(w) != 0 {
		t.Fatalf("a 32 MiB gain: %v, %d writes (want none)", err, len(w))
	}
}

func TestReadRejectsCorruption(t *testing.T) {
	f := makeDisk(t, 1342177280)
	defer f.Close()
	f.WriteAt([]byte{0x12}, 2*SectorSize+40) //nolint:errcheck // flip a byte in entry 1
	if _, err := Read(f); err == nil {
		t.Fatal("read a table whose entries checksum is wrong")
	}
}
