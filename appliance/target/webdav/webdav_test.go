package webdav

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/targettest"
	"github.com/outpost-im/outpost/appliance/testenv"
)

const (
	testUser = "u"
	testPass = "p-outpost-test-password"
)

// TestWebDAV runs the target contract against `rclone serve webdav` on 127.0.0.1, over
// plain HTTP and over HTTPS with a private CA.
func TestWebDAV(t *testing.T) {
	rclone := testenv.Tool(t, "rclone", "rclone")

	t.Run("http", func(t *testing.T) {
		srv := startRclone(t, rclone, nil)
		cfg := srv.config()
		cfg.Dir = "outpost/branch-1" // missing: Open creates both levels
		tgt := open(t, cfg)
		if fi, err := os.Stat(filepath.Join(srv.root, "outpost", "branch-1")); err != nil || !fi.IsDir() {
			t.Fatalf("dir not created: %v", err)
		}
		targettest.Run(t, tgt)
		// A real snapshot, verified and restored, through this target.
		targettest.Snapshot(t, tgt)
		// Open again on the existing dir (MKCOL answers 405, which is fine).
		open(t, cfg)

		t.Run("streamed", func(t *testing.T) {
			ctx := context.Background()
			big := make([]byte, 3*smallPut+5) // larger than the read-ahead: sent chunked
			rand.Read(big)
			if err := tgt.Put(ctx, "media/large", onlyReader{bytes.NewReader(big)}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(srv.root, "outpost", "branch-1", "media", "large"))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("stored %d bytes (%v), want %d", len(got), err, len(big))
			}
			if err := tgt.Delete(ctx, "media/large"); err != nil {
				t.Fatal(err)
			}

			// The source fails after the read-ahead: nothing under the final name, and the
			// temporary upload is cleaned up.
			failing := io.MultiReader(bytes.NewReader(big[:2*smallPut]), errReader{})
			if err := tgt.Put(ctx, "media/broken", failing); err == nil {
				t.Fatal("Put with a failing source succeeded")
			}
			if _, err := tgt.Stat(ctx, "media/broken"); !errors.Is(err, target.ErrNotExist) {
				t.Fatalf("failed Put left a visible file: %v", err)
			}
			infos, err := tgt.List(ctx, "media")
			if err != nil {
				t.Fatal(err)
			}
			for _, fi := range infos {
				t.Errorf("left after a failed Put: %s", fi.Name)
			}
		})

		t.Run("wrong-password", func(t *testing.T) {
			cfg := srv.config()
			cfg.Password = "not-the-password"
			_, err := Open(context.Background(), cfg)
			if err == nil {
				t.Fatal("Open with a wrong password succeeded")
			}
			t.Logf("wrong password: %v", err)
			if !strings.Contains(err.Error(), "refused the user name") {
				t.Errorf("error does not say the credentials were refused: %v", err)
			}
			if strings.Contains(err.Error(), cfg.Password) || strings.Contains(err.Error(), testPass) {
				t.Errorf("error contains the password: %v", err)
			}
		})

		t.Run("cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := tgt.Stat(ctx, "x"); !errors.Is(err, context.Canceled) {
				t.Errorf("Stat with a cancelled context: %v", err)
			}
			if err := tgt.Put(ctx, "x", bytes.NewReader([]byte("x"))); !errors.Is(err, context.Canceled) {
				t.Errorf("Put with a cancelled context: %v", err)
			}
			if err := tgt.Delete(ctx, "x"); !errors.Is(err, context.Canceled) {
				t.Errorf("Delete with a cancelled context: %v", err)
			}
		})
	})

	t.Run("https", func(t *testing.T) {
		ca := targettest.NewCA(t)
		srv := startRclone(t, rclone, ca)
		cfg := srv.config()
		cfg.CAPEM = string(ca.PEM)
		targettest.Run(t, open(t, cfg))

		cfg.CAPEM = ""
		_, err := Open(context.Background(), cfg)
		if err == nil {
			t.Fatal("Open trusted a certificate from an unknown CA")
		}
		t.Logf("untrusted: %v", err)
		if !strings.Contains(err.Error(), "not trusted") {
			t.Errorf("error does not say the certificate is not trusted: %v", err)
		}
	})
}

// onlyReader hides bytes.Reader's other methods, as an encrypting stream would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("source failed on purpose") }

func open(t *testing.T, cfg target.Config) *Target {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tgt, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

type server struct {
	url  string
	root string
}

func (s *server) config() target.Config {
	return target.Config{Name: "test", Kind: target.KindWebDAV, URL: s.url, User: testUser, Password: testPass}
}

// startRclone serves a fresh directory over WebDAV on 127.0.0.1, over HTTPS when ca is set.
// rclone gets an empty private config and cache directory, so it neither reads nor writes
// the user's.
func startRclone(t *testing.T, bin string, ca *targettest.CA) *server {
	t.Helper()
	root, private := t.TempDir(), t.TempDir()
	conf := filepath.Join(private, "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(targettest.FreePort(t))
	scheme := "http"
	args := []string{"serve", "webdav", root, "--addr", addr, "--user", testUser, "--pass", testPass,
		"--config", conf, "--cache-dir", filepath.Join(private, "cache")}
	if ca != nil {
		certFile, keyFile := ca.LeafFiles(t)
		args = append(args, "--cert", certFile, "--key", keyFile)
		scheme = "https"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+private, "XDG_CONFIG_HOME="+private, "XDG_CACHE_HOME="+private)
	out := &targettest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rclone: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child, by PID
		<-exited
		if t.Failed() {
			t.Logf("rclone output:\n%s", out.String())
		}
	})
	targettest.WaitListening(t, addr, exited, out.String)
	return &server{url: scheme + "://" + addr + "/", root: root}
}
