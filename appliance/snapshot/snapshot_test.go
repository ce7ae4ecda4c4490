package snapshot

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/target/localdir"
)

func testKeys(t *testing.T) (Keys, string) {
	t.Helper()
	box, seed, err := NewBoxKeys()
	if err != nil {
		t.Fatal(err)
	}
	recID, recPub, err := NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKeys(box, seed, recPub, "")
	if err != nil {
		t.Fatal(err)
	}
	return k, recID
}

func openDB(t *testing.T, p string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: p}).String()+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fakeData builds a data directory shaped like a box's: two "component" databases that a
// writer keeps changing in lockstep, a JetStream dir, keys and media.
func fakeData(t *testing.T) (string, Source) {
	dir := t.TempDir()
	for _, d := range []string{"homeserver/db", "homeserver/jetstream/stream", "homeserver/media/aa/bb", "homeserver/media/tmp", "tls"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "homeserver/matrix_key.pem"), []byte("KEY"), 0o600)
	os.WriteFile(filepath.Join(dir, "tls/ca.key"), []byte("CA"), 0o600)
	os.WriteFile(filepath.Join(dir, "homeserver/jetstream/stream/1.blk"), []byte("events"), 0o600)
	// JetStream's own index files are named *.db but are not SQLite.
	os.WriteFile(filepath.Join(dir, "homeserver/jetstream/stream/index.db"), []byte("\x16\x02nats index"), 0o600)
	os.WriteFile(filepath.Join(dir, "homeserver/media/aa/bb/file"), bytes.Repeat([]byte("picture"), 1000), 0o600)
	os.WriteFile(filepath.Join(dir, "homeserver/media/aa/bb/copy"), bytes.Repeat([]byte("picture"), 1000), 0o600)
	os.WriteFile(filepath.Join(dir, "homeserver/media/tmp/partial"), []byte("half an upload"), 0o600)
	for _, p := range []string{"homeserver/db/a.db", "homeserver/db/b.db", "settings.db"} {
		db := openDB(t, filepath.Join(dir, p))
		if _, err := db.Exec(`CREATE TABLE msgs (n INTEGER PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
	}
	return dir, Source{
		DataDir:   dir,
		Databases: []string{"settings.db", "homeserver/db/a.db", "homeserver/db/b.db", "homeserver/db/missing.db"},
		Frozen:    []string{"homeserver/jetstream"},
		Files:     []string{"homeserver/matrix_key.pem", "tls", "credentials.key"},
		Media:     "homeserver/media",
		MediaSkip: []string{"tmp"},
		Extra:     map[string][]byte{"dendrite.yaml": []byte("config")},
	}
}

// pauser stops the fake homeserver's writer, like SIGSTOP stops dendrite.
type pauser struct {
	paused atomic.Bool
	n      atomic.Int32
}

func (p *pauser) Pause() error  { p.paused.Store(true); p.n.Add(1); return nil }
func (p *pauser) Resume() error { p.paused.Store(false); return nil }

func TestCreateVerifyRestore(t *testing.T) {
	ctx := context.Background()
	keys, recovery := testKeys(t)
	dataDir, src := fakeData(t)
	p := &pauser{}
	src.Pauser = p

	// A writer that inserts the same row into a.db then b.db, unless paused. A consistent
	// cut has b ⊆ a and at most one row of difference.
	a, b := openDB(t, filepath.Join(dataDir, "homeserver/db/a.db")), openDB(t, filepath.Join(dataDir, "homeserver/db/b.db"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			for p.paused.Load() {
				time.Sleep(100 * time.Microsecond)
			}
			a.Exec(`INSERT INTO msgs(n) VALUES(?)`, n)
			b.Exec(`INSERT INTO msgs(n) VALUES(?)`, n)
		}
	}()
	time.Sleep(50 * time.Millisecond)

	tgt, err := localdir.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Create(ctx, tgt, src, keys, Options{Reason: "manual", ServerName: "example.lan"})
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if p.n.Load() != 1 {
		t.Fatalf("paused %d times", p.n.Load())
	}
	if res.MediaFiles != 2 || res.MediaUploaded != 1 {
		t.Fatalf("media files %d uploaded %d; want 2 files, 1 object (same content)", res.MediaFiles, res.MediaUploaded)
	}
	t.Logf("pause %.2f ms, state %d bytes", res.PauseMillis, res.StateBytes)

	entries, err := List(ctx, tgt)
	if err != nil || len(entries) != 1 || !entries[0].Complete || entries[0].ID != res.ID {
		t.Fatalf("List = %+v, %v", entries, err)
	}
	v, err := Verify(ctx, tgt, res.ID, keys, t.TempDir(), VerifyOptions{AllMedia: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.Databases != 3 || v.Media != 2 || v.MediaDecrypted != 2 {
		t.Fatalf("verify = %+v", v)
	}

	// Restore with the recovery key onto a fresh data dir.
	rec, err := ParseIdentity("# created: now\n" + recovery + "\n")
	if err != nil {
		t.Fatal(err)
	}
	newDir := t.TempDir()
	os.WriteFile(filepath.Join(newDir, "settings.db"), []byte("old settings"), 0o600)
	os.WriteFile(filepath.Join(newDir, "settings.db-wal"), []byte("old wal"), 0o600)
	if _, err := Stage(ctx, tgt, res.ID, rec, nil, newDir, nil); err != nil {
		t.Fatal(err)
	}
	if id, ok := Pending(newDir); !ok || id != res.ID {
		t.Fatalf("Pending = %q %v", id, ok)
	}
	id, old, err := Apply(newDir)
	if err != nil || id != res.ID {
		t.Fatalf("Apply = %q, %v", id, err)
	}
	if b, _ := os.ReadFile(filepath.Join(old, "settings.db-wal")); string(b) != "old wal" {
		t.Fatal("the old WAL was not moved aside with the old state")
	}
	for _, f := range []string{"homeserver/matrix_key.pem", "tls/ca.key", "homeserver/jetstream/stream/1.blk", "homeserver/media/aa/bb/file", "homeserver/media/aa/bb/copy"} {
		want, _ := os.ReadFile(filepath.Join(dataDir, f))
		got, err := os.ReadFile(filepath.Join(newDir, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s not restored: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(newDir, "homeserver/media/tmp/partial")); err == nil {
		t.Fatal("an unfinished upload was snapshotted")
	}
	na, nb := count(t, filepath.Join(newDir, "homeserver/db/a.db")), count(t, filepath.Join(newDir, "homeserver/db/b.db"))
	if na == 0 || na-nb > 1 || nb > na {
		t.Fatalf("inconsistent cut: a has %d rows, b has %d", na, nb)
	}
	if _, ok := Pending(newDir); ok {
		t.Fatal("still pending after Apply")
	}

	// A second snapshot uploads nothing new for unchanged media.
	res2, err := Create(ctx, tgt, src, keys, Options{Reason: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.MediaUploaded != 0 || res2.MediaFiles != 2 {
		t.Fatalf("second snapshot: %+v", res2)
	}
}

func count(t *testing.T, p string) int {
	db := openDB(t, p)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM msgs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTamperingIsDetected(t *testing.T) {
	ctx := context.Background()
	keys, _ := testKeys(t)
	_, src := fakeData(t)
	root := t.TempDir()
	tgt, _ := localdir.Open(root)
	res, err := Create(ctx, tgt, src, keys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte of the state archive.
	p := filepath.Join(root, statePath(res.ID))
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, err := Verify(ctx, tgt, res.ID, keys, t.TempDir(), VerifyOptions{}); err == nil {
		t.Fatal("a damaged state archive verified")
	}
	// A manifest signed by another key.
	other, _ := testKeys(t)
	other.Box = keys.Box
	res2, err := Create(ctx, tgt, src, other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, tgt, res2.ID, keys, t.TempDir(), VerifyOptions{}); !errors.Is(err, ErrSignature) {
		t.Fatalf("foreign signature: err = %v", err)
	}
}

func TestCleanupRemovesInterruptedRuns(t *testing.T) {
	ctx := context.Background()
	keys, _ := testKeys(t)
	_, src := fakeData(t)
	root := t.TempDir()
	tgt, _ := localdir.Open(root)
	good, err := Create(ctx, tgt, src, keys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// An old run that died after writing its state and a temporary file.
	old := newID(time.Now().Add(-3 * time.Hour))
	os.MkdirAll(filepath.Join(root, "snapshots", old), 0o755)
	os.WriteFile(filepath.Join(root, statePath(old)), []byte("x"), 0o644)
	tmp := filepath.Join(root, "objects", ".x.age.outpost-tmp-abc")
	os.WriteFile(tmp, []byte("x"), 0o644)
	past := time.Now().Add(-3 * time.Hour)
	os.Chtimes(tmp, past, past)
	n, err := Cleanup(ctx, tgt, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("Cleanup = %d, %v; want 2 files", n, err)
	}
	if _, err := Verify(ctx, tgt, good.ID, keys, t.TempDir(), VerifyOptions{}); err != nil {
		t.Fatalf("cleanup damaged a complete snapshot: %v", err)
	}
}

func TestRetention(t *testing.T) {
	var ids []string
	start := time.Date(2026, 1, 1, 2, 30, 0, 0, time.UTC)
	for d := 0; d < 120; d++ {
		ids = append(ids, newID(start.AddDate(0, 0, d)))
	}
	kept := DefaultRetention.keep(ids)
	// 7 dailies (days 113-119), weekly and monthly picks add a few more; never all.
	if !kept[ids[119]] || !kept[ids[113]] || kept[ids[112]] && !isSunday(ids[112]) {
		t.Fatalf("dailies wrong: %v", kept)
	}
	if len(kept) < 7 || len(kept) > 7+4+6 {
		t.Fatalf("kept %d snapshots", len(kept))
	}
	if !kept[ids[0]] == (len(ids) <= 31*6) {
		// January 1st is the newest of January only if no later January snapshot exists.
		t.Logf("kept %d", len(kept))
	}
	for _, s := range []string{"7d 4w 6m", "7d,4w", "1d"} {
		if _, err := ParseRetention(s); err != nil {
			t.Errorf("ParseRetention(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "7x", "0d", "7d 8d", "seven"} {
		if _, err := ParseRetention(s); err == nil {
			t.Errorf("ParseRetention(%q) accepted", s)
		}
	}
}

func isSunday(id string) bool { t, _ := ParseID(id); return t.Weekday() == time.Sunday }

func TestPruneKeepsReferencedObjects(t *testing.T) {
	ctx := context.Background()
	keys, _ := testKeys(t)
	dataDir, src := fakeData(t)
	root := t.TempDir()
	tgt, _ := localdir.Open(root)
	first, err := Create(ctx, tgt, src, keys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// New media only in the second snapshot, then the first file is purged.
	os.WriteFile(filepath.Join(dataDir, "homeserver/media/aa/bb/new"), []byte("new picture"), 0o600)
	os.Remove(filepath.Join(dataDir, "homeserver/media/aa/bb/file"))
	os.Remove(filepath.Join(dataDir, "homeserver/media/aa/bb/copy"))
	time.Sleep(1100 * time.Millisecond) // distinct IDs by second
	second, err := Create(ctx, tgt, src, keys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Prune(ctx, tgt, keys, Retention{Daily: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 1 || res.Deleted[0] != first.ID || res.ObjectsDeleted != 1 {
		t.Fatalf("prune = %+v", res)
	}
	if _, err := Verify(ctx, tgt, second.ID, keys, t.TempDir(), VerifyOptions{AllMedia: true}); err != nil {
		t.Fatalf("prune broke the kept snapshot: %v", err)
	}
	entries, _ := List(ctx, tgt)
	if len(entries) != 1 {
		t.Fatalf("entries after prune: %+v", entries)
	}
	var names []string
	infos, _ := tgt.List(ctx, "")
	for _, i := range infos {
		names = append(names, i.Name)
	}
	if !strings.Contains(fmt.Sprint(names), ReadmeName) {
		t.Fatalf("README gone: %v", names)
	}
}
