// Package target is where snapshots are replicated to: a USB drive, an SMB share, an SFTP
// server, an S3-compatible bucket or a WebDAV server. Each kind lives in its own package and
// implements Target; package snapshot only ever sees this interface.
//
// Names are slash-separated paths relative to the target's root ("snapshots/x/manifest.age").
// Put is atomic: a reader sees either no file, the previous content or the complete new one,
// never a partial write. Kinds without an atomic rename (S3) get that from the protocol itself.
package target

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// ErrNotExist is returned (wrapped) by Get and Stat for a missing file.
var ErrNotExist = errors.New("file does not exist on the target")

// Info describes one file on a target.
type Info struct {
	Name    string // slash-separated, relative to the target root
	Size    int64
	ModTime time.Time
}

// Target is one replication destination.
type Target interface {
	// Put stores the content of r as name, creating parent directories. It writes to a
	// temporary name (see TempName) and renames, so an interrupted Put leaves at most a
	// temporary file that a later Clean removes.
	Put(ctx context.Context, name string, r io.Reader) error
	// Get opens name for reading. A missing file gives an error wrapping ErrNotExist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Stat describes name. A missing file gives an error wrapping ErrNotExist.
	Stat(ctx context.Context, name string) (Info, error)
	// List returns every file below dir (recursively; "" is the root), temporary files
	// included, in no particular order. A missing dir is an empty list.
	List(ctx context.Context, dir string) ([]Info, error)
	// Delete removes name. Deleting a missing file is not an error.
	Delete(ctx context.Context, name string) error
	// Close releases connections.
	Close() error
}

// tempMarker is part of every temporary name, so leftovers of an interrupted Put can be
// recognised by name alone on every kind of target.
const tempMarker = ".outpost-tmp-"

// TempName returns a fresh temporary name next to name.
func TempName(name string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	dir, file := path.Split(name)
	return dir + "." + file + tempMarker + hex.EncodeToString(b[:])
}

// IsTemp reports whether name is a temporary file left by Put.
func IsTemp(name string) bool { return strings.Contains(path.Base(name), tempMarker) }

// CheckName rejects names that could escape the target root or that no target can store.
func CheckName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("invalid target file name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid target file name %q", name)
		}
	}
	return nil
}

// ProbeName is the file the "test target" action writes, reads back and deletes.
const ProbeName = "outpost-probe.txt"

// Probe checks that t is usable: it writes a small random file, lists it, reads it back,
// compares and deletes it. The error says which step failed.
func Probe(ctx context.Context, t Target) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	want := []byte("Outpost target probe " + hex.EncodeToString(b[:]) + "\n")
	if err := t.Put(ctx, ProbeName, bytes.NewReader(want)); err != nil {
		return fmt.Errorf("write a test file: %w", err)
	}
	defer t.Delete(context.WithoutCancel(ctx), ProbeName) //nolint:errcheck // best effort; reported below on the normal path
	rc, err := t.Get(ctx, ProbeName)
	if err != nil {
		return fmt.Errorf("read the test file back: %w", err)
	}
	got, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	rc.Close()
	if err != nil {
		return fmt.Errorf("read the test file back: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the test file read back differs from what was written (%d bytes instead of %d)", len(got), len(want))
	}
	if err := t.Delete(ctx, ProbeName); err != nil {
		return fmt.Errorf("delete the test file: %w", err)
	}
	if _, err := t.Stat(ctx, ProbeName); !errors.Is(err, ErrNotExist) {
		return fmt.Errorf("the test file is still there after deleting it (%v)", err)
	}
	return nil
}

// ContextReader stops reading r once ctx is done, so a cancelled Put does not go on reading
// (and encrypting) a large source only to throw it away.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// WriterOnly hides a writer's ReadFrom, so a bufio.Writer in front of it fills whole
// buffers instead of handing the source straight to the (slow, per-call round trip) file.
type WriterOnly struct{ W io.Writer }

func (w WriterOnly) Write(p []byte) (int, error) { return w.W.Write(p) }
