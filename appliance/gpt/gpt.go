// Package gpt reads the GUID partition table of an Outpost image or disk and grows its last
// partition to the end of the device.
//
// A flashed image carries the partition table of the image file, not of the (usually larger)
// disk it was written to: the backup table sits in the middle of the disk and /perm ends
// where the image ended. Growing rewrites both tables so that the last partition spans the
// disk; the kernel and the file system are told separately (appliance/permgrow).
package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// SectorSize is the logical sector size of every device gokrazy images are written to.
const SectorSize = 512

var signature = []byte("EFI PART")

// Partition is one used entry of the table.
type Partition struct {
	Number   int // 1-based, as in /dev/sda4
	TypeGUID [16]byte
	GUID     [16]byte
	FirstLBA uint64
	LastLBA  uint64 // inclusive
}

// Start is the partition's offset in bytes.
func (p Partition) Start() int64 { return int64(p.FirstLBA) * SectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Table is a parsed primary GPT.
type Table struct {
	header      []byte // the primary header sector, as read
	entries     []byte // the whole entries array, as read
	AltLBA      uint64
	FirstUsable uint64
	LastUsable  uint64
	EntriesLBA  uint64
	NumEntries  uint32
	EntrySize   uint32
	Partitions  []Partition
}

// Read parses the primary GPT of a device or image and checks its checksums.
func Read(r io.ReaderAt) (*Table, error) {
	hdr := make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if !bytes.Equal(hdr[:8], signature) {
		return nil, errors.New("no GPT header at LBA 1")
	}
	hsize := binary.LittleEndian.Uint32(hdr[12:])
	if hsize < 92 || hsize > SectorSize {
		return nil, fmt.Errorf("GPT header size %d out of range", hsize)
	}
	if got, want := headerCRC(hdr[:hsize]), binary.LittleEndian.Uint32(hdr[16:]); got != want {
		return nil, fmt.Errorf("GPT header checksum mismatch (%08x, want %08x)", got, want)
	}
	t := &Table{
		header:      hdr,
		AltLBA:      binary.LittleEndian.Uint64(hdr[32:]),
		FirstUsable: binary.LittleEndian.Uint64(hdr[40:]),
		LastUsable:  binary.LittleEndian.Uint64(hdr[48:]),
		EntriesLBA:  binary.LittleEndian.Uint64(hdr[72:]),
		NumEntries:  binary.LittleEndian.Uint32(hdr[80:]),
		EntrySize:   binary.LittleEndian.Uint32(hdr[84:]),
	}
	if t.EntrySize < 128 || t.NumEntries == 0 || uint64(t.NumEntries)*uint64(t.EntrySize) > 1<<20 {
		return nil, fmt.Errorf("GPT entries %d x %d out of range", t.NumEntries, t.EntrySize)
	}
	t.entries = make([]byte, int(t.NumEntries)*int(t.EntrySize))
	if _, err := r.ReadAt(t.entries, int64(t.EntriesLBA)*SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT entries: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(t.entries), binary.LittleEndian.Uint32(hdr[88:]); got != want {
		return nil, fmt.Errorf("GPT entries checksum mismatch (%08x, want %08x)", got, want)
	}
	for i := 0; i < int(t.NumEntries); i++ {
		e := t.entries[i*int(t.EntrySize):]
		var p Partition
		copy(p.TypeGUID[:], e[0:16])
		if p.TypeGUID == ([16]byte{}) {
			continue
		}
		copy(p.GUID[:], e[16:32])
		p.Number = i + 1
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:])
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

// Partition returns partition n (1-based).
func (t *Table) Partition(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

func headerCRC(h []byte) uint32 {
	c := append([]byte(nil), h...)
	binary.LittleEndian.PutUint32(c[16:], 0)
	return crc32.ChecksumIEEE(c)
}

func (t *Table) entriesSectors() uint64 {
	return (uint64(len(t.entries)) + SectorSize - 1) / SectorSize
}

// Grow plans the table for a device of devBytes: the last partition (which must be number
// last) ends where the backup table of the device begins. It returns the writes to make, in
// order, and the partition as grown; no writes means there is nothing to grow (less than
// minGrow bytes to gain).
func (t *Table) Grow(devBytes int64, last int, minGrow int64) ([]Write, Partition, error) {
	p, ok := t.Partition(last)
	if !ok {
		return nil, Partition{}, fmt.Errorf("no partition %d", last)
	}
	for _, q := range t.Partitions {
		if q.Number != last && q.LastLBA > p.LastLBA {
			return nil, Partition{}, fmt.Errorf("partition %d is not the last one on the disk", last)
		}
	}
	devSectors := uint64(devBytes / SectorSize)
	if devSectors < t.AltLBA+1 {
		return nil, Partition{}, fmt.Errorf("device (%d sectors) is smaller than its partition table says (%d)", devSectors, t.AltLBA+1)
	}
	altLBA := devSectors - 1
	lastUsable := altLBA - t.entriesSectors() - 1
	if lastUsable <= p.LastLBA || int64(lastUsable-p.LastLBA)*SectorSize < minGrow {
		return nil, p, nil
	}
	entries := append([]byte(nil), t.entries...)
	e := entries[(last-1)*int(t.EntrySize):]
	binary.LittleEndian.PutUint64(e[40:], lastUsable)
	entriesCRC := crc32.ChecksumIEEE(entries)

	primary := append([]byte(nil), t.header...)
	hsize := binary.LittleEndian.Uint32(primary[12:])
	binary.LittleEndian.PutUint64(primary[32:], altLBA)
	binary.LittleEndian.PutUint64(primary[48:], lastUsable)
	binary.LittleEndian.PutUint32(primary[88:], entriesCRC)
	binary.LittleEndian.PutUint32(primary[16:], headerCRC(primary[:hsize]))

	backup := append([]byte(nil), primary...)
	backupEntriesLBA := altLBA - t.entriesSectors()
	binary.LittleEndian.PutUint64(backup[24:], altLBA)
	binary.LittleEndian.PutUint64(backup[32:], 1)
	binary.LittleEndian.PutUint64(backup[72:], backupEntriesLBA)
	binary.LittleEndian.PutUint32(backup[16:], headerCRC(backup[:hsize]))

	p.LastLBA = lastUsable
	// The backup goes first: until the primary header is rewritten, the old table stays the
	// valid one, and a torn primary write leaves a valid backup where the kernel looks for it.
	return []Write{
		{Offset: int64(backupEntriesLBA) * SectorSize, Data: entries},
		{Offset: int64(altLBA) * SectorSize, Data: backup},
		{Offset: int64(t.EntriesLBA) * SectorSize, Data: entries},
		{Offset: SectorSize, Data: primary},
	}, p, nil
}

// Write is one block of bytes to put at an offset of the device.
type Write struct {
	Offset int64
	Data   []byte
}

// Apply performs writes in order.
func Apply(w io.WriterAt, writes []Write) error {
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.Data, wr.Offset); err != nil {
			return fmt.Errorf("write %d bytes at %d: %w", len(wr.Data), wr.Offset, err)
		}
	}
	return nil
}
