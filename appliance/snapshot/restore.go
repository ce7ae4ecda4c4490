package snapshot

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/outpost-im/outpost/appliance/atomicfile"
	"github.com/outpost-im/outpost/appliance/target"
)

// A restore happens in two steps so that a power cut at any moment leaves a box that starts:
//
//  1. Stage: download, decrypt and check everything into <data>/restore-pending, fix it up
//     for Matrix clients, then write restore-pending/READY. The live state is untouched.
//  2. Apply (at the next start of outpostd, before anything opens the data): move every live
//     item aside into <data>/pre-restore-<id>/ and the staged one into place. Each move is a
//     rename and is skipped when already done, so an interrupted Apply simply runs again.
const (
	pendingDir  = "restore-pending"
	readyMarker = "READY"
)

type readyInfo struct {
	ID       string    `json:"id"`
	StagedAt time.Time `json:"staged_at"`
	Snapshot time.Time `json:"snapshot_created"`
}

// RestoreResult says what a staged restore holds.
type RestoreResult struct {
	ID               string
	Created          time.Time
	ServerName       string
	Files, Media     int
	OneTimeKeys      int64 // unclaimed E2EE one-time keys removed
	SigningKeySource string
}

// Stage downloads snapshot id from t into dataDir/restore-pending, checks every checksum, and
// prepares it for the homeserver. signer nil trusts the key published on the target (a new
// box has nothing else); the caller should show Fingerprint of it.
func Stage(ctx context.Context, t target.Target, id string, identity age.Identity, signer ed25519.PublicKey, dataDir string, progress func(Progress)) (RestoreResult, error) {
	res := RestoreResult{ID: id}
	m, err := ReadManifest(ctx, t, id, identity, signer)
	if err != nil {
		return res, err
	}
	res.Created, res.ServerName = m.Created, m.ServerName
	dir := filepath.Join(dataDir, pendingDir)
	// A previous attempt that did not finish is discarded: staging is repeatable.
	if err := os.RemoveAll(dir); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if err := fetchState(ctx, t, m, identity, dir, progress); err != nil {
		return res, err
	}
	res.Files = len(m.State.Files)
	for i, md := range m.Media {
		if progress != nil {
			progress(Progress{Phase: "media", Done: int64(i), Total: int64(len(m.Media))})
		}
		if err := fetchMedia(ctx, t, md, identity, dir); err != nil {
			return res, fmt.Errorf("snapshot %s: %w", id, err)
		}
	}
	res.Media = len(m.Media)
	if res.OneTimeKeys, err = PrepareHomeserver(ctx, filepath.Join(dir, "homeserver", "db")); err != nil {
		return res, err
	}
	if err := os.RemoveAll(filepath.Join(dir, restoreMetaDir)); err != nil {
		return res, err
	}
	info, _ := json.Marshal(readyInfo{ID: id, StagedAt: time.Now().UTC(), Snapshot: m.Created})
	if err := syncTree(dir); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, readyMarker), info, 0o600); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	return res, nil
}

// streamAdvance moves every sync stream far past anything a client saw before the restore.
// Clients keep their sync tokens across a restore; without this, new messages would get
// positions the clients believe they already have, and would never reach them.
const streamAdvance = 10_000_000

// PrepareHomeserver fixes up restored homeserver databases in dbDir for clients that kept
// running against the newer state:
//   - unclaimed E2EE one-time keys are deleted: the snapshot holds keys that were handed
//     out after it was taken, and reusing one makes messages undecryptable. Clients see a
//     count of zero on their next sync and upload fresh ones.
//   - the sync streams jump forward (see streamAdvance).
//
// It returns how many one-time keys it removed.
func PrepareHomeserver(ctx context.Context, dbDir string) (int64, error) {
	entries, err := os.ReadDir(dbDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("restore: %w", err)
	}
	var removed int64
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".db") {
			continue
		}
		n, err := prepareDB(ctx, filepath.Join(dbDir, e.Name()))
		if err != nil {
			return removed, fmt.Errorf("restore: prepare %s: %w", e.Name(), err)
		}
		removed += n
	}
	return removed, nil
}

func prepareDB(ctx context.Context, path string) (int64, error) {
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path}).String()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	has := func(table string) (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n)
		return n > 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck
	var removed int64
	if ok, err := has("keyserver_one_time_keys"); err != nil {
		return 0, err
	} else if ok {
		r, err := tx.ExecContext(ctx, `DELETE FROM keyserver_one_time_keys`)
		if err != nil {
			return 0, err
		}
		removed, _ = r.RowsAffected()
	}
	if ok, err := has("syncapi_stream_id"); err != nil {
		return 0, err
	} else if ok {
		if _, err := tx.ExecContext(ctx, `UPDATE syncapi_stream_id SET stream_id = stream_id + ?`, streamAdvance); err != nil {
			return 0, err
		}
	}
	// Streams numbered by AUTOINCREMENT: send-to-device messages and device-list changes.
	for _, table := range []string{"syncapi_send_to_device", "keyserver_key_changes"} {
		ok, err := has(table)
		if err != nil || !ok {
			if err != nil {
				return 0, err
			}
			continue
		}
		var maxID int64
		if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT coalesce(max(rowid), 0) FROM %s`, table)).Scan(&maxID); err != nil {
			return 0, err
		}
		var seq sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = ?`, table).Scan(&seq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
		next := max(seq.Int64, maxID) + streamAdvance
		if seq.Valid {
			_, err = tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = ?`, next, table)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO sqlite_sequence(name, seq) VALUES(?, ?)`, table, next)
		}
		if err != nil {
			return 0, err
		}
	}
	return removed, tx.Commit()
}

// Pending reports whether a staged restore is waiting to be applied, and which snapshot.
func Pending(dataDir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, pendingDir, readyMarker))
	if err != nil {
		return "", false
	}
	var info readyInfo
	if json.Unmarshal(b, &info) != nil {
		return "", false
	}
	return info.ID, true
}

// Apply swaps a staged restore into dataDir. Nothing may have the data open (outpostd calls
// it at start, before opening the settings). It returns the ID applied and where the
// previous state was moved, or "" when nothing was pending. An incomplete staging (no READY
// marker, e.g. a power cut while downloading) is discarded.
func Apply(dataDir string) (id, oldDir string, err error) {
	dir := filepath.Join(dataDir, pendingDir)
	b, err := os.ReadFile(filepath.Join(dir, readyMarker))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr == nil {
			return "", "", os.RemoveAll(dir)
		}
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("restore: %w", err)
	}
	var info readyInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return "", "", fmt.Errorf("restore: %s is damaged: %w", readyMarker, err)
	}
	// Named by the staging time: unique per restore (restoring one snapshot twice must not
	// mix the two old states) and stable across an interrupted Apply.
	oldDir = filepath.Join(dataDir, "pre-restore-"+info.StagedAt.Format("20060102T150405.000000000Z"))
	if err := os.MkdirAll(oldDir, 0o700); err != nil {
		return "", "", fmt.Errorf("restore: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", "", fmt.Errorf("restore: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == readyMarker {
			continue
		}
		// A database's WAL and shared-memory files belong to the old database: left next
		// to the restored one, SQLite would try to replay them.
		for _, live := range []string{name, name + "-wal", name + "-shm", name + "-journal"} {
			if err := moveIfExists(filepath.Join(dataDir, live), filepath.Join(oldDir, live)); err != nil {
				return "", "", err
			}
		}
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(dataDir, name)); err != nil {
			return "", "", fmt.Errorf("restore: %w", err)
		}
	}
	if err := atomicfile.SyncDir(dataDir); err != nil {
		return "", "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", "", fmt.Errorf("restore: %w", err)
	}
	return info.ID, oldDir, atomicfile.SyncDir(dataDir)
}

// moveIfExists moves from to to unless from is gone (moved by an interrupted earlier run).
// An item already at to is kept: it is the older state, which must not be overwritten.
func moveIfExists(from, to string) error {
	if _, err := os.Lstat(from); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Lstat(to); err == nil {
		// Never delete state to make room: stop and let a person look.
		return fmt.Errorf("restore: both %s and %s exist; move one away by hand and start again", from, to)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// syncTree fsyncs every file under dir, so READY never points at data still in the page
// cache.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
