package tlsca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-im/outpost/appliance/testenv"
)

// TestACMEModeAgainstPebble runs Let's Encrypt's pebble, a real ACME server, on loopback
// and has the Manager obtain certificates from it through certmagic's ACME issuer. Pebble
// validates the challenges for real (no PEBBLE_VA_ALWAYS_VALID): it resolves the box's name
// through a DNS server this test runs and connects to the test's gateway listeners, which
// answer with Manager.HTTPChallengeHandler and Manager.TLSConfig as the real gateway will.
func TestACMEModeAgainstPebble(t *testing.T) {
	pebbleBin := buildPebble(t)
	log := newTestLogger(t)

	// Pebble's own HTTPS certificate, from a CA only this test (and the Manager) trusts.
	pki := newTestPKI(t)
	pebbleKey := newKey(t)
	pebbleCert := pki.leaf(t, pebbleKey, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), "127.0.0.1", "localhost")
	dir := t.TempDir()
	certFile := writeFile(t, dir, "pebble.crt", append(pemCert(pebbleCert.Raw), pemCert(pki.inter.Raw)...))
	keyFile := writeFile(t, dir, "pebble.key", pemKey(t, pebbleKey))
	acmeTrust := pemCert(pki.root.Raw)

	dnsAddr := startDNS(t, map[string]string{testServerName + ".": "127.0.0.1"})

	// The gateway's two listeners; pebble validates on exactly these ports. They serve
	// whichever Manager is current, so a later phase can start from empty storage.
	var cur atomic.Pointer[Manager]
	var httpChallenges, alpnChallenges atomic.Int32
	httpLn := listenLoopback(t)
	httpSrv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				httpChallenges.Add(1)
			}
			cur.Load().HTTPChallengeHandler(http.NotFoundHandler()).ServeHTTP(w, r)
		})}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })

	tlsLn := listenLoopback(t)
	tlsSrv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				if slices.Contains(h.SupportedProtos, "acme-tls/1") {
					alpnChallenges.Add(1)
				}
				return cur.Load().TLSConfig().GetConfigForClient(h)
			},
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello over %s\n", r.Proto) })}
	go tlsSrv.ServeTLS(tlsLn, "", "")
	t.Cleanup(func() { tlsSrv.Close() })
	addr := tlsLn.Addr().String()

	ports := testenv.FreePorts(t, 2)
	acmePort, mgmtPort := portOf(t, ports[0]), portOf(t, ports[1])
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           "127.0.0.1:" + acmePort,
		"managementListenAddress": "127.0.0.1:" + mgmtPort,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                tcpPort(t, httpLn),
		"tlsPort":                 tcpPort(t, tlsLn),
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
	}}
	cfgJSON, _ := json.Marshal(cfg)
	cfgFile := writeFile(t, dir, "pebble.json", cfgJSON)
	pebbleLog := startPebble(t, pebbleBin, cfgFile, dnsAddr)

	trust := x509.NewCertPool()
	trust.AppendCertsFromPEM(acmeTrust)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: trust}, Proxy: nil,
	}}
	directory := "https://127.0.0.1:" + acmePort + "/dir"
	waitHTTP(t, client, directory, pebbleLog)

	// Pebble's issuing root is generated at its start; clients trust only that.
	resp, err := client.Get("https://127.0.0.1:" + mgmtPort + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	issuingRoot, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pebble root: %v %d", err, resp.StatusCode)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(issuingRoot) {
		t.Fatalf("pebble root is not PEM: %q", issuingRoot)
	}
	rootFile := writeFile(t, dir, "pebble-root.pem", issuingRoot)

	acmeSettings := func(disableHTTP, disableALPN bool) Settings {
		return Settings{
			Mode:       ModeACME,
			ServerName: testServerName,
			Names:      []string{"127.0.0.1"},
			ACME: ACMEConfig{
				DirectoryURL:            directory,
				RootPEM:                 acmeTrust,
				ListenHost:              "127.0.0.1",
				HTTPPort:                tcpPort(t, httpLn),
				TLSALPNPort:             tcpPort(t, tlsLn),
				DisableHTTPChallenge:    disableHTTP,
				DisableTLSALPNChallenge: disableALPN,
			},
		}
	}
	newManager := func() *Manager {
		m, err := NewManager(Options{StorageDir: t.TempDir(), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	verifyServed := func(t *testing.T) {
		t.Helper()
		for _, sn := range []string{testServerName, ""} {
			cs, err := goHandshake(addr, sn, roots, 0)
			if err != nil {
				t.Fatalf("Go client (server name %q) with pebble's root: %v", sn, err)
			}
			if cs.NegotiatedProtocol != "h2" {
				t.Errorf("ALPN %q", cs.NegotiatedProtocol)
			}
		}
		curl := needTool(t, "curl", "curl")
		port := portOf(t, addr)
		out, err := run(t, 30*time.Second, nil, curl, "--fail", "-sS", "--max-time", "20", "--noproxy", "*", "--cacert", rootFile,
			"--resolve", testServerName+":"+port+":127.0.0.1", "https://"+testServerName+":"+port+"/")
		if err != nil || !strings.Contains(out, "hello over HTTP/2.0") {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		openssl := needTool(t, "openssl", "openssl")
		out, err = run(t, 30*time.Second, strings.NewReader("Q\n"), openssl, "s_client", "-connect", addr, "-CAfile", rootFile,
			"-verify_return_error", "-brief", "-noservername", "-verify_ip", "127.0.0.1")
		if err != nil || !strings.Contains(out, "Verification: OK") {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
	}

	// Phase 1, the mode switch the console makes: the box serves its own CA's
	// certificate, then switches to ACME. tls-alpn-01 only, so the CA's validation
	// handshake must reach the configuration still being applied, not the one serving.
	t.Run("switch-from-box-ca/tls-alpn-01", func(t *testing.T) {
		m := newManager()
		cur.Store(m)
		if err := m.Apply(context.Background(), Settings{Mode: ModeBoxCA, ServerName: testServerName,
			Names: []string{"127.0.0.1"}, CA: newBoxCA(t)}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := m.Apply(ctx, acmeSettings(true, false)); err != nil {
			t.Fatalf("Apply ACME: %v\npebble log:\n%s", err, pebbleLog)
		}
		if m.Mode() != ModeACME {
			t.Fatalf("mode %q", m.Mode())
		}
		if alpnChallenges.Load() == 0 || httpChallenges.Load() != 0 {
			t.Fatalf("tls-alpn-01 handshakes %d, http-01 requests %d; want only tls-alpn-01", alpnChallenges.Load(), httpChallenges.Load())
		}
		verifyServed(t)
	})

	// Phase 2: fresh storage, http-01 only, answered by the port-80 handler.
	t.Run("fresh/http-01", func(t *testing.T) {
		alpnChallenges.Store(0)
		m := newManager()
		cur.Store(m)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := m.Apply(ctx, acmeSettings(false, true)); err != nil {
			t.Fatalf("Apply ACME: %v\npebble log:\n%s", err, pebbleLog)
		}
		if httpChallenges.Load() == 0 || alpnChallenges.Load() != 0 {
			t.Fatalf("http-01 requests %d, tls-alpn-01 handshakes %d; want only http-01", httpChallenges.Load(), alpnChallenges.Load())
		}
		verifyServed(t)
	})

	if strings.Contains(pebbleLog.String(), "Skipping real validation") {
		t.Fatal("pebble skipped validation; this test means to exercise real challenges")
	}
}

// buildPebble compiles pebble from the module pinned in testdata/pebble (a module of its
// own, so pebble's dependencies stay out of the appliance's go.mod).
func buildPebble(t *testing.T) string {
	t.Helper()
	goBin := needTool(t, "go", "golang (or put the Go toolchain on PATH)")
	modDir, err := filepath.Abs(filepath.Join("testdata", "pebble"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pebble")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/letsencrypt/pebble/v2/cmd/pebble")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building pebble (the ACME test server) in %s: %v\n%s", modDir, err, b)
	}
	return out
}

// lockedBuf collects a subprocess's output for error messages.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startPebble(t *testing.T, bin, cfgFile, dnsAddr string) *lockedBuf {
	t.Helper()
	out := &lockedBuf{}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // no random 0-15 s pause before each validation
		"PEBBLE_WFE_NONCEREJECT=0", // no deliberately rejected nonces: keep the run deterministic
		"PEBBLE_AUTHZREUSE=0",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	return out
}

func waitHTTP(t *testing.T, c *http.Client, url string, log *lockedBuf) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer %s: %v\n%s", url, err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startDNS answers A queries for the given names (FQDN -> IPv4) and nothing else, on a
// loopback UDP port: pebble's validation authority resolves the box's name through it.
func startDNS(t *testing.T, a map[string]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		for _, question := range q.Question {
			ip, ok := a[strings.ToLower(question.Name)]
			if !ok {
				r.Rcode = dns.RcodeNameError
				continue
			}
			if question.Qtype == dns.TypeA {
				r.Answer = append(r.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.ParseIP(ip).To4(),
				})
			}
		}
		_ = w.WriteMsg(r)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func tcpPort(t *testing.T, ln net.Listener) int {
	t.Helper()
	return ln.Addr().(*net.TCPAddr).Port
}
