package boxtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/tlsca"
)

// TestNewRootCoversMovedBox: a root made before the box had its addresses (a box that has
// since moved to a new address) leaves them uncovered; replacing it covers them, keeps the old root
// aside, serves a leaf from the new root and is in the audit log.
func TestNewRootCoversMovedBox(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := settings.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Update(ctx, func(st *settings.Settings) error {
		st.SetupComplete, st.ServerName = true, "box.lan"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The root the box got before it had any of its addresses (as after a move).
	if _, err := tlsca.CreateCA(filepath.Join(dir, "tls", "ca"), tlsca.CAOptions{ServerName: "box.lan", Logger: log}); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, _ := store.Get(ctx)
	if err := s.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	before := s.Status("box.lan")
	if !slices.Contains(before.Uncovered, "127.0.0.1") || slices.Contains(before.Uncovered, "box.lan") {
		t.Fatalf("a root made without addresses: uncovered = %v; want 127.0.0.1 and not box.lan", before.Uncovered)
	}

	after, err := s.NewRoot(ctx, store, audit.Actor{UserID: "@alice:box.lan", Via: "console"})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Uncovered) != 0 || after.Fingerprint == before.Fingerprint {
		t.Fatalf("after NewRoot: uncovered %v, fingerprint %s (was %s)", after.Uncovered, after.Fingerprint, before.Fingerprint)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "tls", "ca.replaced-*"))
	if len(kept) != 1 {
		t.Fatalf("old root kept in %v", kept)
	}
	// A client trusting only the new root connects by name and by address.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake() //nolint:errcheck // the client reports
			c.Close()
		}
	}()
	blk, _ := pem.Decode([]byte(after.RootPEM))
	root, _ := x509.ParseCertificate(blk.Bytes)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	for _, name := range []string{"box.lan", "127.0.0.1"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("TLS to %s after NewRoot: %v", name, err)
		}
		c.Close()
	}
	entries, _ := audit.List(ctx, store.DB(), 10)
	if len(entries) == 0 || entries[0].Action != "tls.new-root" {
		t.Fatalf("audit: %+v", entries)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "ca", "root.crt")); err != nil {
		t.Fatal(err)
	}
}
