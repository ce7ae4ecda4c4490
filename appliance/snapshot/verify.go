package snapshot

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/target"
)

// VerifyResult is what a test restore checked.
type VerifyResult struct {
	ID             string
	Files          int // state files whose checksum matched
	Databases      int // SQLite files that passed PRAGMA integrity_check
	Media          int // media objects present with the right size
	MediaDecrypted int // media objects downloaded, decrypted and checked in full
	Duration       time.Duration
}

// VerifyOptions choose how much media a verification reads in full. Presence and size of
// every object are always checked; decrypting all of them each night would read the whole
// media store over the network.
type VerifyOptions struct {
	AllMedia bool
	// MediaSince decrypts objects of media files newer than this (typically the previous
	// verification), so every object is read in full once.
	MediaSince time.Time
	Progress   func(Progress)
}

// Verify test-restores snapshot id into scratch space under scratch and checks it: signature,
// every checksum, every database's integrity, every media object's presence. The box's own
// key decrypts it.
func Verify(ctx context.Context, t target.Target, id string, keys Keys, scratch string, opt VerifyOptions) (VerifyResult, error) {
	start := time.Now()
	res := VerifyResult{ID: id}
	m, err := ReadManifest(ctx, t, id, keys.Box, keys.Signing.Public().(ed25519.PublicKey))
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(scratch, ".verify-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if err := fetchState(ctx, t, m, keys.Box, dir, opt.Progress); err != nil {
		return res, err
	}
	res.Files = len(m.State.Files)
	if res.Databases, err = checkDatabases(ctx, dir); err != nil {
		return res, fmt.Errorf("snapshot %s: %w", id, err)
	}
	objs, err := t.List(ctx, objectsDir)
	if err != nil {
		return res, fmt.Errorf("snapshot %s: list objects: %w", id, err)
	}
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[o.Name] = o.Size
	}
	for _, md := range m.Media {
		size, ok := sizes[md.Object]
		if !ok {
			return res, fmt.Errorf("snapshot %s: media %s: its object is missing on the target", id, md.Path)
		}
		if size != md.ObjectSize {
			return res, fmt.Errorf("snapshot %s: media %s: its object has %d bytes, expected %d", id, md.Path, size, md.ObjectSize)
		}
		res.Media++
		if opt.AllMedia || timeFromNanos(md.ModTime).After(opt.MediaSince) {
			if err := fetchMedia(ctx, t, md, keys.Box, ""); err != nil {
				return res, fmt.Errorf("snapshot %s: %w", id, err)
			}
			res.MediaDecrypted++
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// checkDatabases runs PRAGMA integrity_check on every SQLite file below dir.
func checkDatabases(ctx context.Context, dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".db") {
			return err
		}
		// JetStream keeps its own index.db files, which are not SQLite: check by header.
		if ok, err := isSQLite(p); err != nil || !ok {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: p}).String())
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		defer db.Close()
		var res string
		if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
			return fmt.Errorf("%s: integrity check: %w", rel, err)
		}
		if res != "ok" {
			return fmt.Errorf("%s: integrity check failed: %s", rel, res)
		}
		n++
		return nil
	})
	return n, err
}

func timeFromNanos(ns int64) time.Time { return time.Unix(0, ns) }

// isSQLite reports whether p starts with SQLite's file header.
func isSQLite(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	hdr := make([]byte, 16)
	n, _ := io.ReadFull(f, hdr)
	return string(hdr[:n]) == "SQLite format 3\x00", nil
}
