package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
)

// Pauser freezes and continues the homeserver (homeserver.Supervisor).
type Pauser interface {
	Pause() error
	Resume() error
}

// Source says what a snapshot copies from a data directory. All paths are relative to
// DataDir and slash-separated.
type Source struct {
	DataDir string
	// Databases are SQLite files. Each is copied as of the cut through SQLite's backup API,
	// from a read transaction opened while the homeserver is paused.
	Databases []string
	// Frozen are directories copied byte for byte while the homeserver is paused (the
	// JetStream store: events in flight between components).
	Frozen []string
	// Files are files or directories copied as they are (keys, certificates). A missing one
	// is skipped.
	Files []string
	// Media is the directory of write-once media files, copied after the cut so that every
	// file the databases reference is already there. MediaSkip lists subdirectories of it
	// that hold unfinished uploads.
	Media     string
	MediaSkip []string
	// Extra files go into the archive's outpost-restore/ directory (a homeserver config
	// for a restore by hand).
	Extra map[string][]byte
	// Pauser is nil when the homeserver is not running (nothing can change under us).
	Pauser Pauser
}

// cutWithStats copies Databases, Frozen and Files into dst as one consistent state and reports how
// long the homeserver was paused.
//
// Why it is short: during the pause we only open a read transaction on each database
// (WAL mode pins that instant for the reader while the writer continues) and copy the
// small JetStream store; the databases themselves are copied after the homeserver runs
// again, from those read transactions.
// cutStats splits the pause into its parts, for the log.
type cutStats struct {
	ReadTxns    time.Duration // opening a read transaction on every database
	FrozenCopy  time.Duration // copying the Frozen directories
	FrozenBytes int64
}

func cut(ctx context.Context, src Source, dst string) (pause time.Duration, st cutStats, err error) {
	type db struct {
		rel  string
		pool *sql.DB
		conn *sql.Conn
	}
	var dbs []db
	defer func() {
		for _, d := range dbs {
			if d.conn != nil {
				d.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // ends the read transaction; fails harmlessly if none
				d.conn.Close()
			}
			d.pool.Close()
		}
	}()
	for _, rel := range src.Databases {
		p := filepath.Join(src.DataDir, filepath.FromSlash(rel))
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a component that has not created its database yet
			}
			return 0, st, fmt.Errorf("snapshot: %w", err)
		}
		pool, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: p}).String()+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return 0, st, fmt.Errorf("snapshot: open %s: %w", rel, err)
		}
		d := db{rel: rel, pool: pool}
		dbs = append(dbs, d)
		if dbs[len(dbs)-1].conn, err = pool.Conn(ctx); err != nil {
			return 0, st, fmt.Errorf("snapshot: open %s: %w", rel, err)
		}
	}

	// The pause. Resume is deferred first thing, so no error path leaves the homeserver
	// frozen.
	if src.Pauser != nil {
		if err := src.Pauser.Pause(); err != nil {
			return 0, st, fmt.Errorf("snapshot: %w", err)
		}
	}
	start := time.Now()
	resumed := false
	resume := func() error {
		if resumed || src.Pauser == nil {
			return nil
		}
		resumed = true
		pause = time.Since(start)
		return src.Pauser.Resume()
	}
	defer func() {
		if rerr := resume(); rerr != nil && err == nil {
			err = fmt.Errorf("snapshot: %w", rerr)
		}
	}()
	for _, d := range dbs {
		if _, err := d.conn.ExecContext(ctx, "BEGIN"); err != nil {
			return 0, st, fmt.Errorf("snapshot: %s: begin: %w", d.rel, err)
		}
		// BEGIN is deferred: the first read fixes the snapshot the transaction sees.
		var n int
		if err := d.conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return 0, st, fmt.Errorf("snapshot: %s: read: %w", d.rel, err)
		}
	}
	st.ReadTxns = time.Since(start)
	// The frozen directories are read into memory during the pause and written out after
	// it: reads come from the page cache, while creating files on the box's disk (inodes,
	// journal) is what would stretch the pause.
	frozen, err := readTrees(ctx, src.DataDir, src.Frozen)
	if err != nil {
		return 0, st, err
	}
	st.FrozenCopy = time.Since(start) - st.ReadTxns
	if err := resume(); err != nil {
		return 0, st, fmt.Errorf("snapshot: %w", err)
	}
	if src.Pauser == nil {
		pause = time.Since(start)
	}
	for _, f := range frozen {
		out := filepath.Join(dst, filepath.FromSlash(f.rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			return pause, st, fmt.Errorf("snapshot: %w", err)
		}
		if err := os.WriteFile(out, f.data, 0o600); err != nil {
			return pause, st, fmt.Errorf("snapshot: %w", err)
		}
		st.FrozenBytes += int64(len(f.data))
	}

	for _, d := range dbs {
		out := filepath.Join(dst, filepath.FromSlash(d.rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			return pause, st, fmt.Errorf("snapshot: %w", err)
		}
		if err := backupDB(d.conn, out); err != nil {
			return pause, st, fmt.Errorf("snapshot: copy %s: %w", d.rel, err)
		}
	}
	for _, rel := range src.Files {
		if err := copyTree(ctx, src.DataDir, dst, rel); err != nil {
			return pause, st, err
		}
	}
	return pause, st, nil
}

// backupDB copies the database behind conn, as its open read transaction sees it, to out.
func backupDB(conn *sql.Conn, out string) error {
	return conn.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			return fmt.Errorf("driver %T has no backup API", dc)
		}
		bk, err := b.NewBackup(out)
		if err != nil {
			return err
		}
		// One step copies every page under the transaction we already hold; stepping in
		// pieces would let SQLite restart the copy whenever the homeserver writes.
		if _, err := bk.Step(-1); err != nil {
			bk.Finish() //nolint:errcheck
			return err
		}
		return bk.Finish()
	})
}

// copyTree copies the file or directory rel from srcRoot to dstRoot. A missing source is
// not an error (a component that has not written anything yet).
func copyTree(ctx context.Context, srcRoot, dstRoot, rel string) error {
	base := filepath.Join(srcRoot, filepath.FromSlash(rel))
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := filepath.Rel(srcRoot, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dstRoot, r)
		switch {
		case e.IsDir():
			return os.MkdirAll(out, 0o700)
		case e.Type().IsRegular():
			return copyFile(p, out)
		default:
			return nil // sockets, pipes: nothing to keep
		}
	})
	if err != nil {
		return fmt.Errorf("snapshot: copy %s: %w", rel, err)
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile (only possible for unfrozen, unimportant files)
		}
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm()|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type memFile struct {
	rel  string
	data []byte
}

// maxFrozen bounds what readTrees holds in memory. Dendrite's JetStream store keeps only
// messages not yet consumed by every component (interest retention), a few MB at most.
const maxFrozen = 256 << 20

// readTrees reads every regular file under the given directories (relative to root).
func readTrees(ctx context.Context, root string, dirs []string) ([]memFile, error) {
	var out []memFile
	var total int64
	for _, rel := range dirs {
		base := filepath.Join(root, filepath.FromSlash(rel))
		err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if !e.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if total += int64(len(b)); total > maxFrozen {
				return fmt.Errorf("%s holds more than %d MB", rel, maxFrozen>>20)
			}
			r, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, memFile{rel: filepath.ToSlash(r), data: b})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("snapshot: read %s: %w", rel, err)
		}
	}
	return out, nil
}
