// Package targettest is the behaviour every target kind must show, run by each kind's tests
// against a real server.
package targettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/target"
)

// Run checks t against the target contract. t must start empty.
func Run(tt *testing.T, t target.Target) {
	tt.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	big := make([]byte, 3<<20+17) // spans several protocol chunks
	if _, err := rand.Read(big); err != nil {
		tt.Fatal(err)
	}
	files := map[string][]byte{
		"README-RESTORE.txt":            []byte("hello\n"),
		"snapshots/a/manifest.age":      []byte("manifest a"),
		"snapshots/a/state.tar.zst.age": big,
		"objects/ab/abcdef.age":         []byte("media"),
		"empty":                         {},
	}
	for name, data := range files {
		if err := t.Put(ctx, name, bytes.NewReader(data)); err != nil {
			tt.Fatalf("Put(%s): %v", name, err)
		}
	}
	for name, data := range files {
		if got := get(ctx, tt, t, name); !bytes.Equal(got, data) {
			tt.Fatalf("Get(%s) = %d bytes, want %d", name, len(got), len(data))
		}
		fi, err := t.Stat(ctx, name)
		if err != nil || fi.Size != int64(len(data)) || fi.Name != name {
			tt.Fatalf("Stat(%s) = %+v, %v; want size %d", name, fi, err, len(data))
		}
	}

	// Overwrite replaces the content entirely.
	if err := t.Put(ctx, "snapshots/a/manifest.age", bytes.NewReader([]byte("v2"))); err != nil {
		tt.Fatalf("overwrite: %v", err)
	}
	if got := get(ctx, tt, t, "snapshots/a/manifest.age"); string(got) != "v2" {
		tt.Fatalf("after overwrite: %q", got)
	}

	// A Put whose reader fails must not leave a file under the final name.
	err := t.Put(ctx, "snapshots/b/state.tar.zst.age", io.MultiReader(bytes.NewReader(big[:1<<20]), failingReader{}))
	if err == nil {
		tt.Fatal("Put with a failing reader succeeded")
	}
	if _, err := t.Stat(ctx, "snapshots/b/state.tar.zst.age"); !errors.Is(err, target.ErrNotExist) {
		tt.Fatalf("interrupted Put left a visible file: Stat err = %v", err)
	}

	// List is recursive, scoped to dir, and ignores temporaries only by name.
	all := names(ctx, tt, t, "")
	want := []string{"README-RESTORE.txt", "empty", "objects/ab/abcdef.age", "snapshots/a/manifest.age", "snapshots/a/state.tar.zst.age"}
	if !equal(all, want) {
		tt.Fatalf("List(\"\") = %v, want %v", all, want)
	}
	if got := names(ctx, tt, t, "snapshots"); !equal(got, want[3:]) {
		tt.Fatalf("List(snapshots) = %v", got)
	}
	if got := names(ctx, tt, t, "nothing-here"); len(got) != 0 {
		tt.Fatalf("List(missing dir) = %v, want empty", got)
	}

	// Missing files.
	if _, err := t.Get(ctx, "no/such/file"); !errors.Is(err, target.ErrNotExist) {
		tt.Fatalf("Get(missing) err = %v, want ErrNotExist", err)
	}
	if _, err := t.Stat(ctx, "no-such-file"); !errors.Is(err, target.ErrNotExist) {
		tt.Fatalf("Stat(missing) err = %v, want ErrNotExist", err)
	}
	if err := t.Delete(ctx, "no-such-file"); err != nil {
		tt.Fatalf("Delete(missing) = %v, want nil", err)
	}

	// Names that escape the root are refused before any I/O.
	for _, bad := range []string{"../x", "/etc/passwd", "a/../../b", "", "a//b"} {
		if err := t.Put(ctx, bad, bytes.NewReader(nil)); err == nil {
			tt.Fatalf("Put(%q) succeeded", bad)
		}
	}

	for name := range files {
		if err := t.Delete(ctx, name); err != nil {
			tt.Fatalf("Delete(%s): %v", name, err)
		}
	}
	if err := target.Probe(ctx, t); err != nil {
		tt.Fatalf("Probe: %v", err)
	}
	for _, n := range names(ctx, tt, t, "") {
		if !target.IsTemp(n) {
			tt.Fatalf("file %s left after deleting everything", n)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("source failed on purpose") }

func get(ctx context.Context, tt *testing.T, t target.Target, name string) []byte {
	tt.Helper()
	rc, err := t.Get(ctx, name)
	if err != nil {
		tt.Fatalf("Get(%s): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tt.Fatalf("read %s: %v", name, err)
	}
	return b
}

func names(ctx context.Context, tt *testing.T, t target.Target, dir string) []string {
	tt.Helper()
	infos, err := t.List(ctx, dir)
	if err != nil {
		tt.Fatalf("List(%q): %v", dir, err)
	}
	var out []string
	for _, fi := range infos {
		if !target.IsTemp(fi.Name) {
			out = append(out, fi.Name)
		}
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
