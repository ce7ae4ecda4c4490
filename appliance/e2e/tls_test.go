package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func boxRoot(t *testing.T, dataDir string) (*x509.CertPool, []byte) {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("root.crt holds no certificate")
	}
	return pool, pemBytes
}

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this test: apt-get install %s", name, pkg)
	}
	return p
}

// TestTLSGateway checks the box's HTTPS with real clients: Go's crypto/tls, curl and
// OpenSSL (which enforces the root's name constraints), by IP (no SNI) and by name.
func TestTLSGateway(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	d.setup("box.lan")
	pool, rootPEM := boxRoot(t, dataDir)
	rootFile := filepath.Join(dataDir, "tls", "ca", "root.crt")
	_, port, _ := net.SplitHostPort(d.saddr)

	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", d.saddr)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.(*tls.Conn).ConnectionState(), nil
	}

	// By IP, as a browser typed the address: no SNI is sent, the IP is verified.
	cs, err := dial(&tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("by IP with the box root: %v", err)
	}
	if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "h2" {
		t.Errorf("version %x, ALPN %q; want TLS 1.3 and h2", cs.Version, cs.NegotiatedProtocol)
	}
	leaf := cs.PeerCertificates[0]
	if leaf.Subject.CommonName != "" {
		t.Errorf("leaf has a Common Name %q (OpenSSL rejects CN under name constraints)", leaf.Subject.CommonName)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 31*24*time.Hour {
		t.Errorf("leaf lifetime %s, want 30 days", life)
	}
	// By name.
	if _, err := dial(&tls.Config{RootCAs: pool, ServerName: "box.lan"}); err != nil {
		t.Fatalf("by name with the box root: %v", err)
	}
	// Without the box root, nothing verifies.
	if _, err := dial(&tls.Config{ServerName: "box.lan"}); err == nil {
		t.Fatal("verified without the box root")
	}
	// Old protocol versions and weak TLS 1.2 suites are refused.
	if _, err := dial(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	for _, suite := range tls.InsecureCipherSuites() {
		if _, err := dial(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite.ID}}); err == nil {
			t.Errorf("insecure suite %s accepted", suite.Name)
		}
	}
	for _, suite := range tls.CipherSuites() {
		if strings.Contains(suite.Name, "CBC") || strings.HasPrefix(suite.Name, "TLS_RSA_") {
			if _, err := dial(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite.ID}}); err == nil {
				t.Errorf("weak TLS 1.2 suite %s accepted (no forward secrecy or CBC)", suite.Name)
			}
		}
	}
	if cs, err := dial(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}); err != nil || cs.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 with a strong suite refused: %v", err)
	}

	// curl, by IP and by name, trusting only the box root.
	curl := needTool(t, "curl", "curl")
	for _, args := range [][]string{
		{"https://127.0.0.1:" + port + "/_matrix/client/versions"},
		{"--resolve", "box.lan:" + port + ":127.0.0.1", "https://box.lan:" + port + "/_matrix/client/versions"},
	} {
		out, err := exec.Command(curl, append([]string{"-sS", "--fail", "--cacert", rootFile}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"versions"`) {
			t.Errorf("curl %v: %v %s", args, err, out)
		}
	}
	if out, err := exec.Command(curl, "-sS", "--fail", "https://127.0.0.1:"+port+"/").CombinedOutput(); err == nil {
		t.Errorf("curl trusted the box without its root: %s", out)
	}

	// OpenSSL checks name constraints and fails on any verification error.
	openssl := needTool(t, "openssl", "openssl")
	sclient := func(extra ...string) (string, error) {
		args := append([]string{"s_client", "-connect", "127.0.0.1:" + port, "-CAfile", rootFile, "-verify_return_error", "-brief"}, extra...)
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sclient("-verify_ip", "127.0.0.1"); err != nil || !strings.Contains(out, "Verification: OK") {
		t.Errorf("openssl by IP: %v\n%s", err, out)
	}
	if out, err := sclient("-servername", "box.lan", "-verify_hostname", "box.lan"); err != nil || !strings.Contains(out, "Verification: OK") {
		t.Errorf("openssl by name: %v\n%s", err, out)
	}
	if out, err := sclient("-servername", "box.lan", "-verify_hostname", "evil.example"); err == nil {
		t.Errorf("openssl accepted a wrong host name:\n%s", out)
	}
	for _, weak := range [][]string{{"-tls1_1"}, {"-tls1"}, {"-tls1_2", "-cipher", "AES128-SHA"}, {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"}} {
		if out, err := sclient(weak...); err == nil {
			t.Errorf("openssl %v connected:\n%s", weak, out)
		}
	}
	// OpenSSL's own chain check of the leaf against the name-constrained root.
	leafFile := filepath.Join(t.TempDir(), "leaf.pem")
	os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600) //nolint:errcheck
	if out, err := exec.Command(openssl, "verify", "-CAfile", rootFile, "-purpose", "sslserver", leafFile).CombinedOutput(); err != nil {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}

	// Plain HTTP after setup: the trust page, the root, the iOS profile, else a redirect.
	status := d.status()
	code, body := get(t, d.url("/"))
	if code != 200 || !strings.Contains(body, status.RootFingerprint) || !strings.Contains(body, d.surl("/")) {
		t.Errorf("trust page: %d, fingerprint %s missing", code, status.RootFingerprint)
	}
	if code, body := get(t, d.url("/ca.crt")); code != 200 || body != string(rootPEM) {
		t.Errorf("/ca.crt: %d", code)
	}
	resp, err := http.Get(d.url("/outpost.mobileconfig"))
	if err != nil {
		t.Fatal(err)
	}
	profile, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-apple-aspen-config" || !bytes.Contains(profile, []byte("com.apple.security.root")) {
		t.Errorf("mobileconfig: %s", resp.Header.Get("Content-Type"))
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Post(d.url("/_matrix/client/v3/login?x=1"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != d.surl("/_matrix/client/v3/login?x=1") {
		t.Errorf("plain HTTP API call: %d -> %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// HSTS over HTTPS, and discovery points at HTTPS.
	resp, err = httpClientFrom("127.0.0.1").Get(d.surl("/.well-known/matrix/client"))
	if err != nil {
		t.Fatal(err)
	}
	wk, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") || !strings.Contains(string(wk), `"base_url":"https://`) {
		t.Errorf("HSTS %q, well-known %s", resp.Header.Get("Strict-Transport-Security"), wk)
	}
	if status.TLSMode != "box-ca" || status.HTTPSURL != d.surl("/") {
		t.Errorf("status: mode %q, https %q", status.TLSMode, status.HTTPSURL)
	}
	if !strings.Contains(d.console(), status.RootFingerprint) {
		t.Errorf("the console does not show the root fingerprint:\n%s", d.console())
	}

	// A restart keeps the same root: devices that trust it keep working.
	d.stop()
	d.start()
	waitFor(t, 60*time.Second, "HTTPS after restart", func() bool {
		_, err := dial(&tls.Config{RootCAs: pool, ServerName: "box.lan"})
		return err == nil
	})
	if d.status().RootFingerprint != status.RootFingerprint {
		t.Fatal("root changed across a restart")
	}
}

// testCA makes an outside CA, as a company's own PKI would be, and a leaf for names.
func testCA(t *testing.T, names ...string) (pool *x509.CertPool, chainPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Company Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(20 * time.Hour),
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	return pool, chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// TestTLSModes switches the certificate source through the CLI: bad uploads and a broken
// ACME CA are refused and leave the box serving as before; a good upload is served, also
// after a restart; and the box CA comes back.
func TestTLSModes(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	d.setup("box.lan")
	boxPool, _ := boxRoot(t, dataDir)
	servedBy := func(pool *x509.CertPool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := (&tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "box.lan"}}).DialContext(ctx, "tcp", d.saddr)
		if err == nil {
			conn.Close()
		}
		return err
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	companyPool, chain, key := testCA(t, "box.lan")
	_, _, otherKey := testCA(t, "box.lan")
	_, wrongChain, wrongKey := testCA(t, "other.lan")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mismatched key", []string{"tls", "upload", "--cert", write("chain.pem", chain), "--key", write("other.key", otherKey)}, "key"},
		{"wrong name", []string{"tls", "upload", "--cert", write("wrong.pem", wrongChain), "--key", write("wrong.key", wrongKey)}, "box.lan"},
		{"not PEM", []string{"tls", "upload", "--cert", write("junk.pem", []byte("hello")), "--key", write("junk.key", []byte("x"))}, "cert_pem"},
		{"unreachable ACME CA", []string{"tls", "acme", "--directory", "https://127.0.0.1:1/directory", "--root", write("company.pem", chain)}, "nothing changed"},
		{"ACME over http", []string{"tls", "acme", "--directory", "http://ca.lan/dir", "--root", write("company2.pem", chain)}, "https://"},
	} {
		_, errOut, code := d.cli("", tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, %q; want an error mentioning %q", tc.name, code, errOut, tc.want)
		}
		if err := servedBy(boxPool); err != nil {
			t.Fatalf("after the refused %s the box CA no longer serves: %v", tc.name, err)
		}
	}
	if st := d.status(); st.TLSMode != "box-ca" {
		t.Fatalf("mode after refused changes: %q", st.TLSMode)
	}

	d.mustCLI("", "tls", "upload", "--cert", write("chain.pem", chain), "--key", write("good.key", key))
	if err := servedBy(companyPool); err != nil {
		t.Fatalf("uploaded certificate not served: %v", err)
	}
	if err := servedBy(boxPool); err == nil {
		t.Fatal("still served by the box CA after the upload")
	}
	d.stop()
	d.start()
	waitFor(t, 60*time.Second, "the uploaded certificate after a restart", func() bool { return servedBy(companyPool) == nil })
	if out := d.mustCLI("", "tls"); !strings.Contains(out, "upload") {
		t.Fatalf("tls status after restart: %s", out)
	}
	d.mustCLI("", "tls", "box-ca")
	if err := servedBy(boxPool); err != nil {
		t.Fatalf("box CA not back: %v", err)
	}
	if root := d.mustCLI("", "tls", "root"); !strings.Contains(root, "BEGIN CERTIFICATE") {
		t.Fatalf("tls root: %q", root)
	}
	if audit := d.mustCLI("", "audit"); strings.Count(audit, "tls.mode") != 2 {
		t.Errorf("audit should hold the two accepted changes:\n%s", audit)
	}
}
