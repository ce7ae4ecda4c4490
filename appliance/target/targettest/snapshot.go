package targettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
)

// Snapshot takes a real snapshot of a small data directory (a SQLite database, a key,
// media) to t, verifies it by a test restore, restores it with the recovery key into a new
// directory, and compares. It proves a kind works for what it is for, beyond the contract.
func Snapshot(tt *testing.T, t target.Target) {
	tt.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := tt.TempDir()
	for _, d := range []string{"homeserver/db", "homeserver/media/ab/cd"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			tt.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(dir, "homeserver/db/roomserver.db")}).String())
	if err != nil {
		tt.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO events(body) VALUES ('hello'), ('world')`); err != nil {
		tt.Fatal(err)
	}
	db.Close()
	photo := make([]byte, 300_000)
	rand.Read(photo) //nolint:errcheck
	os.WriteFile(filepath.Join(dir, "homeserver/matrix_key.pem"), []byte("key"), 0o600)
	os.WriteFile(filepath.Join(dir, "homeserver/media/ab/cd/file"), photo, 0o600)

	box, seed, err := snapshot.NewBoxKeys()
	if err != nil {
		tt.Fatal(err)
	}
	recID, recPub, err := snapshot.NewRecoveryKey()
	if err != nil {
		tt.Fatal(err)
	}
	keys, err := snapshot.ParseKeys(box, seed, recPub, "")
	if err != nil {
		tt.Fatal(err)
	}
	src := snapshot.Source{DataDir: dir, Databases: []string{"homeserver/db/roomserver.db"},
		Files: []string{"homeserver/matrix_key.pem"}, Media: "homeserver/media"}
	res, err := snapshot.Create(ctx, t, src, keys, snapshot.Options{Reason: "test"})
	if err != nil {
		tt.Fatalf("snapshot to the target: %v", err)
	}
	if _, err := snapshot.Verify(ctx, t, res.ID, keys, tt.TempDir(), snapshot.VerifyOptions{AllMedia: true}); err != nil {
		tt.Fatalf("verify on the target: %v", err)
	}
	// A second snapshot finds the media already there.
	res2, err := snapshot.Create(ctx, t, src, keys, snapshot.Options{Reason: "test"})
	if err != nil || res2.MediaUploaded != 0 {
		tt.Fatalf("second snapshot: %+v, %v", res2, err)
	}
	identity, err := snapshot.ParseIdentity(recID)
	if err != nil {
		tt.Fatal(err)
	}
	out := tt.TempDir()
	if _, err := snapshot.Stage(ctx, t, res.ID, identity, nil, out, nil); err != nil {
		tt.Fatalf("restore from the target: %v", err)
	}
	if _, _, err := snapshot.Apply(out); err != nil {
		tt.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "homeserver/media/ab/cd/file"))
	if err != nil || !bytes.Equal(got, photo) {
		tt.Fatalf("restored media: %d bytes, %v", len(got), err)
	}
	rdb, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.Join(out, "homeserver/db/roomserver.db")}).String())
	if err != nil {
		tt.Fatal(err)
	}
	defer rdb.Close()
	var n int
	if err := rdb.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil || n != 2 {
		tt.Fatalf("restored database: %d rows, %v", n, err)
	}
	if _, err := snapshot.Prune(ctx, t, keys, snapshot.Retention{Daily: 1}); err != nil {
		tt.Fatalf("prune on the target: %v", err)
	}
}
