package s3

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

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/targettest"
	"github.com/outpost-im/outpost/appliance/testenv"
)

const (
	testAccess = "outpost-test-access"
	testSecret = "outpost-test-secret-0123456789"
)

// TestS3 runs the target contract against a real S3 server (versitygw, posix backend) on
// 127.0.0.1, over plain HTTP and over HTTPS with a private CA.
func TestS3(t *testing.T) {
	bin := buildVersitygw(t)

	t.Run("http", func(t *testing.T) {
		srv := startVersitygw(t, bin, nil)
		cfg := srv.config()

		// Region empty: minio-go asks the endpoint itself for the bucket's location.
		makeBucket(t, cfg, "outpost")
		cfg.Bucket, cfg.Dir = "outpost", "boxes/branch-1"
		tgt := open(t, cfg)
		targettest.Run(t, tgt)

		// The key prefix is honoured: everything the contract left is below Dir.
		entries, err := os.ReadDir(filepath.Join(srv.root, "outpost"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "boxes" && !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("object %s outside the configured dir", e.Name())
			}
		}

		t.Run("bucket-root", func(t *testing.T) {
			cfg := srv.config()
			cfg.Region = "us-east-1"
			makeBucket(t, cfg, "rootbucket")
			cfg.Bucket = "rootbucket"
			tgt := open(t, cfg)
			targettest.Run(t, tgt)
			// A real snapshot, verified and restored, through this target.
			targettest.Snapshot(t, tgt)
		})

		t.Run("wrong-secret", func(t *testing.T) {
			cfg := srv.config()
			cfg.Bucket = "outpost"
			cfg.SecretKey = "not-the-secret-key-at-all"
			_, err := Open(context.Background(), cfg)
			if err == nil {
				t.Fatal("Open with a wrong secret key succeeded")
			}
			t.Logf("wrong secret: %v", err)
			if !strings.Contains(err.Error(), "secret key") {
				t.Errorf("error does not say the secret key is wrong: %v", err)
			}
			if strings.Contains(err.Error(), cfg.SecretKey) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("error contains a secret: %v", err)
			}
		})

		t.Run("wrong-access-key", func(t *testing.T) {
			cfg := srv.config()
			cfg.Bucket = "outpost"
			cfg.AccessKey = "nobody"
			_, err := Open(context.Background(), cfg)
			if err == nil {
				t.Fatal("Open with an unknown access key succeeded")
			}
			t.Logf("unknown access key: %v", err)
			if !strings.Contains(err.Error(), "does not know the access key") {
				t.Errorf("error does not mention the access key: %v", err)
			}
		})

		t.Run("missing-bucket", func(t *testing.T) {
			cfg := srv.config()
			cfg.Bucket = "no-such-bucket"
			_, err := Open(context.Background(), cfg)
			if err == nil {
				t.Fatal("Open of a missing bucket succeeded")
			}
			t.Logf("missing bucket: %v", err)
			if !strings.Contains(err.Error(), `"no-such-bucket"`) || !strings.Contains(err.Error(), "does not exist") {
				t.Errorf("error does not name the missing bucket: %v", err)
			}
		})

		// The contract's files fit in one PUT; a large stream goes multipart.
		t.Run("multipart", func(t *testing.T) {
			ctx := context.Background()
			big := make([]byte, partSize+smallPut+123) // two parts, the second short
			rand.Read(big)
			if err := tgt.Put(ctx, "large", onlyReader{bytes.NewReader(big)}); err != nil {
				t.Fatal(err)
			}
			rc, err := tgt.Get(ctx, "large")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(big))
			}
			if err := tgt.Delete(ctx, "large"); err != nil {
				t.Fatal(err)
			}

			// The source fails after the first part was uploaded: no object, no upload left.
			failing := io.MultiReader(bytes.NewReader(big[:partSize+1]), errReader{})
			if err := tgt.Put(ctx, "broken", failing); err == nil {
				t.Fatal("Put with a failing source succeeded")
			}
			if _, err := tgt.Stat(ctx, "broken"); !errors.Is(err, target.ErrNotExist) {
				t.Fatalf("failed multipart Put left an object: %v", err)
			}
			for u := range tgt.client.ListIncompleteUploads(ctx, "outpost", "", true) {
				t.Errorf("multipart upload left behind: %+v", u)
			}
		})

		t.Run("cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := tgt.Stat(ctx, "x"); !errors.Is(err, context.Canceled) {
				t.Errorf("Stat with a cancelled context: %v", err)
			}
		})
	})

	t.Run("https", func(t *testing.T) {
		ca := targettest.NewCA(t)
		srv := startVersitygw(t, bin, ca)
		cfg := srv.config()
		cfg.CAPEM = string(ca.PEM)
		makeBucket(t, cfg, "outpost")
		cfg.Bucket = "outpost"
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

// makeBucket creates a bucket as the operator would, before the target is added.
func makeBucket(t *testing.T, cfg target.Config, bucket string) {
	t.Helper()
	tr, err := transport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: !cfg.HTTP,
		Transport: tr, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("MakeBucket(%s): %v", bucket, err)
	}
	tr.CloseIdleConnections()
}

// buildVersitygw compiles versitygw from the module pinned in testdata/versitygw (a module
// of its own, so its many dependencies stay out of the appliance's go.mod). With Go's build
// cache warm this is a link (about 10 s); a cold cache compiles some 300 packages (about
// 6 minutes on one core).
func buildVersitygw(t *testing.T) string {
	t.Helper()
	goBin := testenv.Tool(t, "go", "golang")
	modDir, err := filepath.Abs(filepath.Join("testdata", "versitygw"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "versitygw")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/versity/versitygw/cmd/versitygw")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building versitygw (the S3 test server) in %s: %v\n%s", modDir, err, b)
	}
	t.Logf("built versitygw in %v", time.Since(start).Round(100*time.Millisecond))
	return out
}

type server struct {
	addr   string
	root   string
	secure bool
}

func (s *server) config() target.Config {
	return target.Config{
		Name: "test", Kind: target.KindS3, Endpoint: s.addr,
		AccessKey: testAccess, SecretKey: testSecret, HTTP: !s.secure,
	}
}

// startVersitygw runs versitygw with the posix backend on a fresh directory, listening on
// 127.0.0.1 only, over HTTPS when ca is set.
func startVersitygw(t *testing.T, bin string, ca *targettest.CA) *server {
	t.Helper()
	root := t.TempDir() // absolute: versitygw does not resolve a relative backend path
	port := strconv.Itoa(targettest.FreePort(t))
	s := &server{addr: "127.0.0.1:" + port, root: root, secure: ca != nil}
	args := []string{"--port", s.addr, "--quiet"}
	if ca != nil {
		certFile, keyFile := ca.LeafFiles(t)
		args = append(args, "--cert", certFile, "--key", keyFile)
	}
	args = append(args, "posix", root)
	cmd := exec.Command(bin, args...)
	// Credentials through the environment, not argv, as a real deployment would.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+testAccess, "ROOT_SECRET_KEY="+testSecret)
	out := &targettest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child, by PID
		<-exited
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	targettest.WaitListening(t, s.addr, exited, out.String)
	return s
}
