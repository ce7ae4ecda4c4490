package targetstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/target"
)

func TestSealedAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := settings.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := Open(dir, st.DB())
	if err != nil {
		t.Fatal(err)
	}
	c := target.Config{Name: "nas", Kind: target.KindSMB, Host: "10.0.0.5", Share: "backup", User: "outpost", Password: "correct horse battery staple"}
	if err := s.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "nas")
	if err != nil || got != c {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// The password is nowhere in the database files.
	st.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	for _, f := range []string{"settings.db", "settings.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte("correct horse")) {
			t.Fatalf("password in plaintext in %s", f)
		}
	}
	if err := s.Put(ctx, target.Config{Name: "x", Kind: "ftp"}); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) = %v", err)
	}
	// Another key cannot open it.
	os.Remove(filepath.Join(dir, KeyFile))
	s2, err := Open(dir, st.DB())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(ctx, "nas"); err == nil {
		t.Fatal("opened with a different key")
	}
	if err := s.Delete(ctx, "nas"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("List after delete = %v", list)
	}
}
