package settings

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestOpenGeneratesSecretsOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.RegistrationSharedSecret) < 40 || len(first.TURNSharedSecret) < 40 {
		t.Fatalf("secrets too short: %q %q", first.RegistrationSharedSecret, first.TURNSharedSecret)
	}
	if first.RegistrationSharedSecret == first.TURNSharedSecret {
		t.Fatal("secrets must be independent")
	}
	s.Close()

	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again, _ := s.Get(ctx)
	if again.RegistrationSharedSecret != first.RegistrationSharedSecret {
		t.Fatal("secret regenerated on reopen")
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("settings db mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	err = s.Update(ctx, func(st *Settings) error {
		st.ServerName = "half.example"
		st.SetupComplete = true
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	got, _ := s.Get(ctx)
	if got.ServerName != "" || got.SetupComplete {
		t.Fatalf("failed update leaked: %+v", got)
	}
	if err := s.Update(ctx, func(st *Settings) error {
		st.ServerName = "chat.example"
		st.Federation = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx)
	if got.ServerName != "chat.example" || !got.Federation {
		t.Fatalf("update lost: %+v", got)
	}
}

func TestConcurrentUpdatesSerialise(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Each update appends one character; lost updates would show as a shorter string.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Update(ctx, func(st *Settings) error {
				st.ServerName += "x"
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := s.Get(ctx)
	if len(got.ServerName) != 20 {
		t.Fatalf("lost updates: %q", got.ServerName)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA user_version = 999`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, dir); err == nil {
		t.Fatal("opened a database from the future")
	}
}
