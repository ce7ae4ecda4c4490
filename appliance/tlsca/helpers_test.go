package tlsca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The names every test box uses. ".test" is reserved (RFC 2606) and never resolves.
const (
	testServerName = "outpost.test"
	testHostname   = "outpost"
)

// testLog collects log output and prints it only when the test fails; certmagic logs from
// background goroutines that may outlive the test, so t.Log cannot be used directly.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newTestLogger(t *testing.T) *slog.Logger {
	t.Helper()
	l := &testLog{}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() && os.Getenv("TLSCA_TEST_LOG") != "" {
			l.mu.Lock()
			t.Logf("log output:\n%s", l.buf.String())
			l.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newBoxCA creates a root for the standard test names in a temporary directory.
func newBoxCA(t *testing.T) *CA {
	t.Helper()
	ca, err := CreateCA(t.TempDir(), CAOptions{
		ServerName: testServerName,
		Hostnames:  []string{testHostname},
		IPRanges:   []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")},
		Logger:     newTestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// needTool fails (never skips) when an external program the tests rely on is missing.
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: these tests use the real tool; install it with `apt-get install -y %s`", name, debianPackage)
	}
	return p
}

// run runs a command with a deadline and returns its combined output.
func run(t *testing.T, timeout time.Duration, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s timed out after %v: %w", name, timeout, ctx.Err())
	}
	return string(out), err
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrFor builds a CSR the way certmagic does: SANs only.
func csrFor(t *testing.T, key crypto.Signer, names ...string) *x509.CertificateRequest {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func parsePEMCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatalf("no PEM in %q", p)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testPKI is a conventional CA hierarchy (root -> intermediate -> leaves) standing in for
// a company CA or an ACME server's TLS certificate.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{rootKey: newKey(t), interKey: newKey(t)}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: mustSerial(t), Subject: pkix.Name{CommonName: "Test Company Root"},
		NotBefore: now.Add(-365 * 24 * time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	p.root = mustCreate(t, rootTmpl, rootTmpl, &p.rootKey.PublicKey, p.rootKey)
	interTmpl := &x509.Certificate{
		SerialNumber: mustSerial(t), Subject: pkix.Name{CommonName: "Test Company Intermediate"},
		NotBefore: now.Add(-365 * 24 * time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	p.inter = mustCreate(t, interTmpl, p.root, &p.interKey.PublicKey, p.rootKey)
	return p
}

// leaf signs a server certificate for names with the intermediate.
func (p *testPKI) leaf(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time, names ...string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: mustSerial(t), NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return mustCreate(t, tmpl, p.inter, key.Public(), p.interKey)
}

func mustSerial(t *testing.T) *big.Int {
	t.Helper()
	s, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveTLS runs an HTTPS server with m's TLS config on a fresh loopback port, the way the
// gateway will: http.Server.TLSConfig plus ServeTLS, so HTTP/2 is negotiated.
func serveTLS(t *testing.T, m *Manager, listenIP string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	return serveTLSOn(t, m, ln)
}

func serveTLSOn(t *testing.T, m *Manager, ln net.Listener) string {
	t.Helper()
	srv := &http.Server{
		TLSConfig:         m.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(newTestLogger(t).Handler(), slog.LevelDebug),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello over %s\n", r.Proto)
		}),
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// goHandshake connects with crypto/tls trusting only roots. serverName "" means connect
// by address: Go sends no SNI for an IP and verifies the IP against the certificate.
func goHandshake(addr, serverName string, roots *x509.CertPool, maxVersion uint16) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	cfg := &tls.Config{
		RootCAs:    roots,
		ServerName: serverName,
		NextProtos: []string{"h2", "http/1.1"},
		MaxVersion: maxVersion,
	}
	if maxVersion != 0 && maxVersion < tls.VersionTLS12 {
		// Go clients refuse old versions themselves by default; really offer them, so
		// that a failure is the server's refusal.
		cfg.MinVersion = tls.VersionTLS10
	}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
