package tlsca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCreateCAAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	opts := CAOptions{
		ServerName: "Outpost.Test.",
		Hostnames:  []string{testHostname, "outpost.test"},
		IPRanges:   []netip.Prefix{netip.MustParsePrefix("192.168.1.20/32")},
		Logger:     newTestLogger(t),
	}
	ca, err := LoadOrCreateCA(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if !c.IsCA || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("IsCA=%v MaxPathLen=%d zero=%v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", c.PublicKey)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 19*365*24*time.Hour {
		t.Errorf("root lifetime %v, want about 20 years", life)
	}
	if got, want := strings.Join(c.PermittedDNSDomains, ","), "outpost.test,outpost"; got != want {
		t.Errorf("PermittedDNSDomains = %q, want %q", got, want)
	}
	if !c.PermittedDNSDomainsCritical {
		t.Error("name constraints extension is not critical")
	}
	if len(c.PermittedIPRanges) != 1 || c.PermittedIPRanges[0].String() != "192.168.1.20/32" {
		t.Errorf("PermittedIPRanges = %v", c.PermittedIPRanges)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("root EKU = %v, want serverAuth only", c.ExtKeyUsage)
	}

	fi, err := os.Stat(filepath.Join(dir, rootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("CA dir holds %v, want only root.crt and root.key (no temp files)", ents)
	}

	fp := ca.Fingerprint()
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("fingerprint %q is not colon hex of 32 bytes", fp)
	}
	if !bytes.Contains(ca.RootPEM(), []byte("BEGIN CERTIFICATE")) {
		t.Error("RootPEM is not PEM")
	}

	// Loading again returns the same root, even when asked for more names: replacing a
	// trusted root must be explicit.
	opts.Hostnames = append(opts.Hostnames, "other.example")
	again, err := LoadOrCreateCA(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != fp {
		t.Fatal("reload produced a different root")
	}
	if got := again.Uncovered([]string{"outpost.test", "matrix.outpost.test", "other.example", "192.168.1.20", "192.168.1.21"}); strings.Join(got, ",") != "other.example,192.168.1.21" {
		t.Errorf("Uncovered = %v", got)
	}
}

func TestCANoIPsMeansNoIPs(t *testing.T) {
	ca, err := CreateCA(t.TempDir(), CAOptions{ServerName: testServerName, Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ca.Certificate().ExcludedIPRanges) != 2 {
		t.Fatalf("ExcludedIPRanges = %v, want all IPv4 and IPv6 excluded", ca.Certificate().ExcludedIPRanges)
	}
	for _, ip := range []string{"127.0.0.1", "10.0.0.1", "::1"} {
		if ca.Permits(ip) == nil {
			t.Errorf("root without IP ranges permits %s", ip)
		}
	}
	// And Go's verifier agrees: a leaf for an IP signed with this root's key is rejected.
	leafKey := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: mustSerial(t), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf := mustCreate(t, tmpl, ca.cert, &leafKey.PublicKey, ca.key)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(ca.cert)}); err == nil {
		t.Error("Go accepted an IP leaf under a root that excludes all IPs")
	}
}

func TestCAErrors(t *testing.T) {
	if _, err := CreateCA(t.TempDir(), CAOptions{}); err == nil {
		t.Error("CA without a server name was created (it would be unconstrained)")
	}
	if _, err := CreateCA(t.TempDir(), CAOptions{ServerName: "192.168.1.1"}); err == nil {
		t.Error("IP accepted as server name")
	}
	if _, err := CreateCA(t.TempDir(), CAOptions{ServerName: "bad_name.test"}); err == nil {
		t.Error("invalid DNS name accepted")
	}
	if _, err := CreateCA(t.TempDir(), CAOptions{ServerName: "a.test", IPRanges: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}); err == nil {
		t.Error("a /0 range was accepted")
	}

	if _, err := LoadCA(t.TempDir(), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCA of empty dir: %v, want fs.ErrNotExist", err)
	}
	dir := t.TempDir()
	if _, err := CreateCA(dir, CAOptions{ServerName: "a.test"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, rootKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir, CAOptions{ServerName: "a.test"}); !errors.Is(err, ErrCAKeyMissing) {
		t.Errorf("root without key: %v, want ErrCAKeyMissing", err)
	}
}

func TestIssuerSignsSANOnlyLeaves(t *testing.T) {
	ca := newBoxCA(t)
	iss := NewIssuer(ca, 0, newTestLogger(t))
	key := newKey(t)
	res, err := iss.Issue(context.Background(), csrFor(t, key, testServerName, "matrix.outpost.test", "127.0.0.1", "::1"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parsePEMCert(t, res.Certificate)
	if leaf.Subject.CommonName != "" {
		t.Errorf("leaf has Common Name %q; want none", leaf.Subject.CommonName)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("EKU = %v", leaf.ExtKeyUsage)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 30*24*time.Hour || life > 30*24*time.Hour+2*time.Hour {
		t.Errorf("leaf lifetime %v, want 30 days (plus a small backdate)", life)
	}
	for _, n := range []string{testServerName, "matrix.outpost.test", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: poolOf(ca.Certificate()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify %s: %v", n, err)
		}
	}
	if !strings.HasPrefix(iss.IssuerKey(), "outpost-box-ca-") {
		t.Errorf("IssuerKey %q", iss.IssuerKey())
	}
}

func TestIssuerRefusesNamesOutsideConstraints(t *testing.T) {
	ca := newBoxCA(t)
	iss := NewIssuer(ca, 0, newTestLogger(t))
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"evil.example"}, `may not sign for "evil.example"`},
		{[]string{testServerName, "notoutpost.test"}, `may not sign for "notoutpost.test"`},
		{[]string{"10.1.2.3"}, "may not sign for IP address 10.1.2.3"},
		{[]string{"::2"}, "may not sign for IP address ::2"},
	} {
		_, err := iss.Issue(context.Background(), csrFor(t, newKey(t), tc.names...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tc.names, err, tc.want)
		}
	}
	// A CSR carrying only a Common Name names nothing we sign.
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: testServerName}}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	if _, err := iss.Issue(context.Background(), csr); err == nil {
		t.Error("CN-only CSR was signed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := iss.Issue(ctx, csrFor(t, newKey(t), testServerName)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestOpenSSLVerifiesLeafUnderNameConstraints runs OpenSSL, which enforces name
// constraints, on a leaf from the Issuer (accepted) and on leaves signed with the root key
// for names outside its constraints (rejected): the constraints really bind.
func TestOpenSSLVerifiesLeafUnderNameConstraints(t *testing.T) {
	openssl := needTool(t, "openssl", "openssl")
	ca := newBoxCA(t)
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", ca.RootPEM())

	res, err := NewIssuer(ca, 0, newTestLogger(t)).Issue(context.Background(), csrFor(t, newKey(t), testServerName, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	leafFile := writeFile(t, dir, "leaf.pem", res.Certificate)
	out, err := run(t, 30*time.Second, nil, openssl, "verify", "-CAfile", rootFile, "-purpose", "sslserver", "-verify_hostname", testServerName, leafFile)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify rejected the issued leaf: %v\n%s", err, out)
	}
	out, err = run(t, 30*time.Second, nil, openssl, "verify", "-CAfile", rootFile, "-purpose", "sslserver", "-verify_ip", "127.0.0.1", leafFile)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify by IP rejected the issued leaf: %v\n%s", err, out)
	}

	for name, tmpl := range map[string]*x509.Certificate{
		"dns": {DNSNames: []string{"bank.example"}},
		"ip":  {IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}},
	} {
		tmpl.SerialNumber = mustSerial(t)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		k := newKey(t)
		rogue := mustCreate(t, tmpl, ca.cert, &k.PublicKey, ca.key)
		f := writeFile(t, dir, "rogue-"+name+".pem", pemCert(rogue.Raw))
		out, err := run(t, 30*time.Second, nil, openssl, "verify", "-CAfile", rootFile, "-purpose", "sslserver", f)
		if err == nil || !strings.Contains(out, "permitted subtree violation") {
			t.Errorf("%s: openssl accepted a leaf outside the root's constraints (err=%v):\n%s", name, err, out)
		}
	}
}

// TestRefusesToSignWithUnsetClock: a box that booted without a real-time clock reads 1970
// until time sync; nothing it signed then would ever verify.
func TestRefusesToSignWithUnsetClock(t *testing.T) {
	ca := newBoxCA(t) // made with the real clock
	saved := timeNow
	timeNow = func() time.Time { return time.Unix(42, 0) }
	defer func() { timeNow = saved }()

	if _, err := CreateCA(t.TempDir(), CAOptions{ServerName: testServerName}); !errors.Is(err, ErrClockNotSet) {
		t.Errorf("CreateCA at 1970: %v, want ErrClockNotSet", err)
	}
	if _, err := NewIssuer(ca, 0, nil).Issue(context.Background(), csrFor(t, newKey(t), testServerName)); !errors.Is(err, ErrClockNotSet) {
		t.Errorf("Issue at 1970: %v, want ErrClockNotSet", err)
	}
}
