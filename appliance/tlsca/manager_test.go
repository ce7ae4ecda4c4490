package tlsca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

// boxManager applies box-CA mode for the standard test names and returns the manager.
func boxManager(t *testing.T, ca *CA, lifetime, renewCheck time.Duration) *Manager {
	t.Helper()
	m, err := NewManager(Options{StorageDir: t.TempDir(), Logger: newTestLogger(t), RenewCheckInterval: renewCheck})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := []string{testHostname, "127.0.0.1"}
	if hasIPv6Loopback() {
		names = append(names, "::1")
	}
	if err := m.Apply(ctx, Settings{Mode: ModeBoxCA, ServerName: testServerName, Names: names, CA: ca, LeafLifetime: lifetime}); err != nil {
		t.Fatal(err)
	}
	if m.Mode() != ModeBoxCA {
		t.Fatalf("Mode() = %q", m.Mode())
	}
	return m
}

// TestBoxCAServesVerifiableTLS is the whole default path: a box root, certmagic obtaining
// leaves through our Issuer, a real HTTPS server, and real clients (Go, OpenSSL, curl)
// that trust nothing but the box root, by name and by IP.
func TestBoxCAServesVerifiableTLS(t *testing.T) {
	ca := newBoxCA(t)
	m := boxManager(t, ca, 0, 0)
	addr := serveTLS(t, m, "127.0.0.1")
	port := portOf(t, addr)
	roots := poolOf(ca.Certificate())
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", ca.RootPEM())

	t.Run("go/by-name", func(t *testing.T) {
		cs, err := goHandshake(addr, testServerName, roots, 0)
		if err != nil {
			t.Fatal(err)
		}
		leaf := cs.PeerCertificates[0]
		if leaf.Subject.CommonName != "" {
			t.Errorf("served leaf has CN %q", leaf.Subject.CommonName)
		}
		if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "h2" {
			t.Errorf("version %x proto %q, want TLS 1.3 and h2", cs.Version, cs.NegotiatedProtocol)
		}
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 29*24*time.Hour {
			t.Errorf("leaf lifetime %v, want 30 days", life)
		}
	})
	t.Run("go/by-name-tls12", func(t *testing.T) {
		cs, err := goHandshake(addr, testHostname, roots, tls.VersionTLS12)
		if err != nil {
			t.Fatal(err)
		}
		if cs.Version != tls.VersionTLS12 {
			t.Errorf("version %x", cs.Version)
		}
	})
	t.Run("go/by-ip-no-sni", func(t *testing.T) {
		// Go sends no SNI when ServerName is an IP, like a browser opening https://<ip>/.
		if _, err := goHandshake(addr, "", roots, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("go/ipv6", func(t *testing.T) {
		if !hasIPv6Loopback() {
			t.Skip("no ::1 on this machine (IPv6 disabled in the kernel); the IPv4 cases cover the same code")
		}
		addr6 := serveTLS(t, m, "::1")
		if _, err := goHandshake(addr6, "", roots, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("go/rejects-tls11", func(t *testing.T) {
		_, err := goHandshake(addr, testServerName, roots, tls.VersionTLS11)
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("TLS 1.1 handshake: %v, want the server's protocol_version alert", err)
		}
	})
	t.Run("go/system-roots-do-not-trust-box", func(t *testing.T) {
		if _, err := goHandshake(addr, testServerName, x509.NewCertPool(), 0); err == nil {
			t.Fatal("handshake verified without the box root")
		}
	})

	t.Run("openssl", func(t *testing.T) {
		openssl := needTool(t, "openssl", "openssl")
		for _, tc := range []struct {
			name string
			args []string
			ok   bool
		}{
			{"by-ip-no-sni", []string{"-noservername", "-verify_ip", "127.0.0.1"}, true},
			{"by-name", []string{"-servername", testServerName, "-verify_hostname", testServerName}, true},
			{"by-short-name", []string{"-servername", testHostname, "-verify_hostname", testHostname}, true},
			// The control: OpenSSL really checks the name, so the cases above mean something.
			{"wrong-name-fails", []string{"-servername", testServerName, "-verify_hostname", "other.test"}, false},
			// SECLEVEL=0 lets OpenSSL offer TLS 1.1 at all; the box must still refuse.
			{"no-tls11", []string{"-servername", testServerName, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"}, false},
			{"no-cbc-suites", []string{"-servername", testServerName, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append([]string{"s_client", "-connect", addr, "-CAfile", rootFile, "-verify_return_error", "-brief"}, tc.args...)
				out, err := run(t, 30*time.Second, strings.NewReader("Q\n"), openssl, args...)
				if tc.ok && (err != nil || !strings.Contains(out, "Verification: OK")) {
					t.Fatalf("openssl %v: %v\n%s", args, err, out)
				}
				if !tc.ok && err == nil {
					t.Fatalf("openssl %v succeeded, want failure:\n%s", args, out)
				}
			})
		}
	})

	t.Run("curl", func(t *testing.T) {
		curl := needTool(t, "curl", "curl")
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"by-ip", []string{"https://127.0.0.1:" + port + "/"}},
			{"by-name", []string{"--resolve", testServerName + ":" + port + ":127.0.0.1", "https://" + testServerName + ":" + port + "/"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append([]string{"--fail", "--silent", "--show-error", "--max-time", "20", "--noproxy", "*",
					"--cacert", rootFile, "--write-out", "|%{http_version}|%{ssl_verify_result}"}, tc.args...)
				out, err := run(t, 30*time.Second, nil, curl, args...)
				if err != nil || !strings.Contains(out, "hello over HTTP/2.0") || !strings.HasSuffix(out, "|2|0") {
					t.Fatalf("curl %v: %v\n%s", args, err, out)
				}
			})
		}
	})

	t.Run("default-server-name", func(t *testing.T) {
		// A client without SNI on an address that has no certificate of its own (the box
		// got a new DHCP lease, say) gets the server name's certificate.
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("cannot listen on 127.0.0.2: %v", err)
		}
		addr2 := serveTLSOn(t, m, ln)
		conn, err := tls.Dial("tcp", addr2, &tls.Config{InsecureSkipVerify: true}) // we verify by hand below
		if err != nil {
			t.Fatal(err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: testServerName, Roots: roots}); err != nil {
			t.Fatalf("no-SNI default certificate is not the server name's: %v (names %v %v)", err, leaf.DNSNames, leaf.IPAddresses)
		}
	})
}

// TestCertmagicRenewsShortLivedLeaf gives leaves a few seconds of life and watches
// certmagic's own maintenance replace the served certificate before it expires.
func TestCertmagicRenewsShortLivedLeaf(t *testing.T) {
	ca := newBoxCA(t)
	const lifetime = 6 * time.Second
	m := boxManager(t, ca, lifetime, 250*time.Millisecond)
	addr := serveTLS(t, m, "127.0.0.1")
	roots := poolOf(ca.Certificate())

	cs, err := goHandshake(addr, testServerName, roots, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := cs.PeerCertificates[0]
	if life := first.NotAfter.Sub(first.NotBefore); life > lifetime+time.Second {
		t.Fatalf("leaf lifetime %v, want %v", life, lifetime)
	}
	deadline := time.Now().Add(3 * lifetime)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		cs, err := goHandshake(addr, testServerName, roots, 0)
		if err != nil {
			// Verification failing means certmagic let the leaf expire: the renewal failed.
			t.Fatalf("handshake during renewal window: %v", err)
		}
		leaf := cs.PeerCertificates[0]
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Fatalf("renewed leaf expires %v, not after the old one's %v", leaf.NotAfter, first.NotAfter)
			}
			if time.Now().After(first.NotAfter) {
				t.Fatalf("renewal came only after the old leaf expired")
			}
			return
		}
	}
	t.Fatalf("certmagic did not renew the %v leaf within %v", lifetime, 3*lifetime)
}

// TestApplyFailureKeepsServing: switching to a mode that cannot obtain a certificate must
// leave the previous certificate in service.
func TestApplyFailureKeepsServing(t *testing.T) {
	ca := newBoxCA(t)
	m := boxManager(t, ca, 0, 0)
	addr := serveTLS(t, m, "127.0.0.1")
	roots := poolOf(ca.Certificate())

	// Nothing listens on port 1; with a short deadline certmagic gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pki := newTestPKI(t)
	err := m.Apply(ctx, Settings{Mode: ModeACME, ServerName: testServerName, ACME: ACMEConfig{
		DirectoryURL: "https://127.0.0.1:1/dir", RootPEM: pemCert(pki.root.Raw),
	}})
	if err == nil {
		t.Fatal("Apply with an unreachable ACME CA succeeded")
	}
	if m.Mode() != ModeBoxCA {
		t.Fatalf("mode after failed Apply = %q", m.Mode())
	}
	if _, err := goHandshake(addr, testServerName, roots, 0); err != nil {
		t.Fatalf("box stopped serving its certificate after a failed mode change: %v", err)
	}

	// Names the root cannot sign for are refused before anything changes.
	err = m.Apply(context.Background(), Settings{Mode: ModeBoxCA, ServerName: testServerName, Names: []string{"other.example"}, CA: ca})
	if err == nil || !strings.Contains(err.Error(), "other.example") {
		t.Fatalf("Apply with a name outside the root: %v", err)
	}
	if _, err := goHandshake(addr, testServerName, roots, 0); err != nil {
		t.Fatal(err)
	}

	for _, s := range []Settings{
		{Mode: "nonsense", ServerName: testServerName},
		{Mode: ModeBoxCA, ServerName: testServerName},
		{Mode: ModeBoxCA, ServerName: "127.0.0.1", CA: ca},
		{Mode: ModeACME, ServerName: testServerName, ACME: ACMEConfig{DirectoryURL: "http://ca.test/dir", RootPEM: pemCert(pki.root.Raw)}},
		{Mode: ModeACME, ServerName: testServerName, ACME: ACMEConfig{DirectoryURL: "https://ca.test/dir"}},
		{Mode: ModeUpload, ServerName: testServerName},
	} {
		if err := m.Apply(context.Background(), s); err == nil {
			t.Errorf("Apply(%+v) succeeded", s)
		}
	}
	if m.Mode() != ModeBoxCA {
		t.Fatalf("mode = %q", m.Mode())
	}
}

// TestNewRootReissues: after the root is replaced (new names, or a lost key), leaves from
// the old root in certmagic's storage must not be served again.
func TestNewRootReissues(t *testing.T) {
	storage := t.TempDir()
	m, err := NewManager(Options{StorageDir: storage, Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := serveTLS(t, m, "127.0.0.1")
	for i := range 2 {
		ca := newBoxCA(t)
		if err := m.Apply(context.Background(), Settings{Mode: ModeBoxCA, ServerName: testServerName, Names: []string{"127.0.0.1"}, CA: ca}); err != nil {
			t.Fatal(err)
		}
		for _, sn := range []string{testServerName, ""} {
			if _, err := goHandshake(addr, sn, poolOf(ca.Certificate()), 0); err != nil {
				t.Fatalf("root %d, server name %q: %v", i, sn, err)
			}
		}
	}
}

// TestRestartReusesStoredLeaves: after a reboot the box serves the leaves certmagic
// stored, rather than signing new ones at every start.
func TestRestartReusesStoredLeaves(t *testing.T) {
	storage, caDir := t.TempDir(), t.TempDir()
	opts := CAOptions{ServerName: testServerName, Logger: newTestLogger(t)}
	var serials []string
	for boot := range 2 {
		ca, err := LoadOrCreateCA(caDir, opts)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewManager(Options{StorageDir: storage, Logger: newTestLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(context.Background(), Settings{Mode: ModeBoxCA, ServerName: testServerName, CA: ca}); err != nil {
			t.Fatal(err)
		}
		addr := serveTLS(t, m, "127.0.0.1")
		cs, err := goHandshake(addr, testServerName, poolOf(ca.Certificate()), 0)
		if err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		serials = append(serials, cs.PeerCertificates[0].SerialNumber.String())
		m.Close()
	}
	if serials[0] != serials[1] {
		t.Fatalf("leaf re-signed at restart: serials %v", serials)
	}
}

func TestManagerNeedsApply(t *testing.T) {
	m, err := NewManager(Options{StorageDir: t.TempDir(), Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := serveTLS(t, m, "127.0.0.1")
	if _, err := goHandshake(addr, testServerName, nil, 0); err == nil {
		t.Fatal("handshake succeeded before any Apply")
	}
	if _, err := NewManager(Options{}); err == nil {
		t.Fatal("NewManager without storage dir succeeded")
	}
}
