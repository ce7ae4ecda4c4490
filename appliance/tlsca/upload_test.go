package tlsca

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateUpload(t *testing.T) {
	pki := newTestPKI(t)
	now := time.Now()
	key := newKey(t)
	otherKey := newKey(t)
	good := pki.leaf(t, key, now.Add(-time.Hour), now.Add(90*24*time.Hour), testServerName, "127.0.0.1")
	soon := pki.leaf(t, key, now.Add(-time.Hour), now.Add(10*24*time.Hour), testServerName)
	expired := pki.leaf(t, key, now.Add(-60*24*time.Hour), now.Add(-24*time.Hour), testServerName)
	future := pki.leaf(t, key, now.Add(24*time.Hour), now.Add(90*24*time.Hour), testServerName)
	wrongName := pki.leaf(t, key, now.Add(-time.Hour), now.Add(90*24*time.Hour), "other.test")

	chain := func(leaf *x509.Certificate, withInter, withRoot bool) []byte {
		b := pemCert(leaf.Raw)
		if withInter {
			b = append(b, pemCert(pki.inter.Raw)...)
		}
		if withRoot {
			b = append(b, pemCert(pki.root.Raw)...)
		}
		return b
	}
	keyPEM := pemKey(t, key)
	opts := UploadOptions{ServerName: testServerName, OtherNames: []string{"127.0.0.1", testHostname}}

	for _, tc := range []struct {
		name      string
		cert, key []byte
		opts      UploadOptions
		want      []error // every one must be reported
		warn      []string
	}{
		{name: "good", cert: chain(good, true, true), key: keyPEM, opts: opts,
			warn: []string{`does not cover "outpost"`}},
		{name: "good-root-given-separately", cert: chain(good, true, false), key: keyPEM,
			opts: UploadOptions{ServerName: testServerName, ExtraRootsPEM: pemCert(pki.root.Raw)}},
		{name: "key-in-cert-file", cert: append(chain(good, true, true), keyPEM...), opts: opts,
			warn: []string{`does not cover "outpost"`}},
		{name: "expiring-soon-warns", cert: chain(soon, true, true), key: keyPEM, opts: UploadOptions{ServerName: testServerName},
			warn: []string{"expires on"}},
		{name: "mismatched-key", cert: chain(good, true, true), key: pemKey(t, otherKey), opts: opts,
			want: []error{ErrKeyMismatch}},
		{name: "wrong-name", cert: chain(wrongName, true, true), key: keyPEM, opts: opts,
			want: []error{ErrNameMismatch}},
		{name: "expired", cert: chain(expired, true, true), key: keyPEM, opts: opts,
			want: []error{ErrExpired}},
		{name: "not-yet-valid", cert: chain(future, true, true), key: keyPEM, opts: opts,
			want: []error{ErrNotYetValid}},
		{name: "missing-intermediate", cert: chain(good, false, true), key: keyPEM, opts: opts,
			want: []error{ErrChain}},
		{name: "several-problems-at-once", cert: chain(wrongName, false, true), key: pemKey(t, otherKey), opts: opts,
			want: []error{ErrKeyMismatch, ErrNameMismatch, ErrChain}},
		{name: "no-key", cert: chain(good, true, true), opts: opts, want: []error{ErrBadKey}},
		{name: "encrypted-key", cert: chain(good, true, true), opts: opts,
			key:  pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
			want: []error{ErrBadKey}},
		{name: "not-pem", cert: good.Raw, key: keyPEM, opts: opts, want: []error{ErrNoCertificate}},
		{name: "root-first", cert: append(pemCert(pki.root.Raw), chain(good, true, false)...), key: keyPEM, opts: opts,
			want: []error{ErrNotServerCert}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ValidateUpload(tc.cert, tc.key, tc.opts)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if u.Leaf.SerialNumber.Cmp(good.SerialNumber) != 0 && u.Leaf.SerialNumber.Cmp(soon.SerialNumber) != 0 {
					t.Error("wrong leaf")
				}
				if len(u.Certificate.Certificate) != 2 {
					t.Errorf("serving %d certificates, want leaf + intermediate (no root)", len(u.Certificate.Certificate))
				}
				if len(u.Warnings) != len(tc.warn) {
					t.Fatalf("warnings %q, want %d matching %q", u.Warnings, len(tc.warn), tc.warn)
				}
				for i, w := range tc.warn {
					if !strings.Contains(u.Warnings[i], w) {
						t.Errorf("warning %q, want it to mention %q", u.Warnings[i], w)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not report %q", err, w)
				}
			}
			// One line per problem, nothing reported twice.
			if lines := strings.Split(err.Error(), "\n"); len(lines) != len(tc.want) {
				t.Errorf("got %d error lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
		})
	}
}

// TestUploadServed stores a validated upload, loads it back and serves it; clients that
// trust the company root (and not the box's) verify it with Go, curl and OpenSSL.
func TestUploadServed(t *testing.T) {
	pki := newTestPKI(t)
	key := newKey(t)
	leaf := pki.leaf(t, key, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), testServerName, "127.0.0.1")
	bundle := append(append(pemCert(leaf.Raw), pemCert(pki.inter.Raw)...), pemCert(pki.root.Raw)...)
	opts := UploadOptions{ServerName: testServerName}
	u, err := ValidateUpload(bundle, pemKey(t, key), opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "upload")
	if err := SaveUpload(dir, u); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, uploadKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored key: %v %v", fi, err)
	}
	u, err = LoadUpload(dir, opts)
	if err != nil {
		t.Fatal(err)
	}

	m, err := NewManager(Options{StorageDir: t.TempDir(), Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Apply(context.Background(), Settings{Mode: ModeUpload, ServerName: testServerName, Upload: u}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, "127.0.0.1")
	roots := poolOf(pki.root)
	for _, sn := range []string{testServerName, ""} {
		cs, err := goHandshake(addr, sn, roots, 0)
		if err != nil {
			t.Fatalf("server name %q: %v", sn, err)
		}
		if !bytes.Equal(cs.PeerCertificates[0].Raw, leaf.Raw) {
			t.Fatalf("server name %q: not the uploaded certificate", sn)
		}
	}

	rootFile := writeFile(t, t.TempDir(), "company-root.pem", pemCert(pki.root.Raw))
	curl := needTool(t, "curl", "curl")
	port := portOf(t, addr)
	out, err := run(t, 30*time.Second, nil, curl, "--fail", "-sS", "--max-time", "20", "--noproxy", "*", "--cacert", rootFile,
		"--resolve", testServerName+":"+port+":127.0.0.1", "https://"+testServerName+":"+port+"/")
	if err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	openssl := needTool(t, "openssl", "openssl")
	out, err = run(t, 30*time.Second, strings.NewReader("Q\n"), openssl, "s_client", "-connect", addr, "-CAfile", rootFile,
		"-verify_return_error", "-brief", "-servername", testServerName, "-verify_hostname", testServerName)
	if err != nil || !strings.Contains(out, "Verification: OK") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}

	// An upload that does not cover the server name is refused by Apply too.
	other := pki.leaf(t, key, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), "other.test")
	bad := &Uploaded{Leaf: other, Certificate: tls.Certificate{Certificate: [][]byte{other.Raw}, PrivateKey: key, Leaf: other}}
	if err := m.Apply(context.Background(), Settings{Mode: ModeUpload, ServerName: testServerName, Upload: bad}); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("Apply with wrong-name upload: %v", err)
	}
}
