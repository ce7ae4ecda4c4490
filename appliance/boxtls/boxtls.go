// Package boxtls puts the box on HTTPS once it is set up: it derives the names and
// addresses to serve from the settings and the machine, keeps the per-box root CA, drives
// the certificate manager (package tlsca), and serves the plain-HTTP side, which after
// setup only offers the trust page, the root certificate and redirects to HTTPS.
package boxtls

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/tlsca"
)

// Service owns the box's TLS state.
type Service struct {
	dir string
	log *slog.Logger
	mgr *tlsca.Manager

	mu     sync.Mutex
	ca     atomic.Pointer[tlsca.CA]
	active atomic.Bool
	gw     http.Handler
}

// New prepares TLS under dataDir/tls. Nothing is served until Apply succeeds.
func New(dataDir string, log *slog.Logger) (*Service, error) {
	dir := filepath.Join(dataDir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	mgr, err := tlsca.NewManager(tlsca.Options{StorageDir: filepath.Join(dir, "certmagic"), Logger: log})
	if err != nil {
		return nil, err
	}
	return &Service{dir: dir, log: log, mgr: mgr}, nil
}

// Names are what clients use to reach the box.
type Names struct {
	ServerName string   // DNS name or IP literal, without port
	Hostnames  []string // further DNS names
	IPs        []netip.Addr
}

// All lists every name as certmagic manages them.
func (n Names) All() []string {
	out := append([]string{}, n.Hostnames...)
	for _, ip := range n.IPs {
		out = append(out, ip.String())
	}
	return out
}

// DeriveNames collects the names to serve: the server name (without port), the machine's
// host name, its LAN addresses and loopback (so the box itself and a laptop can connect).
func DeriveNames(serverName string) Names {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	n := Names{ServerName: host}
	seen := map[string]bool{host: true}
	addIP := func(ip netip.Addr) {
		ip = ip.Unmap()
		if !seen[ip.String()] {
			seen[ip.String()] = true
			n.IPs = append(n.IPs, ip)
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		addIP(ip)
	}
	if h, err := os.Hostname(); err == nil {
		h = strings.ToLower(h)
		if !seen[h] && h != "localhost" && isDNSName(h) {
			seen[h] = true
			n.Hostnames = append(n.Hostnames, h)
		}
	}
	for _, ip := range platform.LANAddresses() {
		if a, ok := netip.AddrFromSlice(ip); ok {
			addIP(a)
		}
	}
	addIP(netip.MustParseAddr("127.0.0.1"))
	addIP(netip.IPv6Loopback())
	return n
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Apply makes the settings' TLS mode serve. The root CA is created on first use and kept
// for good: devices trust it.
func (s *Service) Apply(ctx context.Context, st settings.Settings) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := DeriveNames(st.ServerName)
	var prefixes []netip.Prefix
	for _, ip := range names.IPs {
		prefixes = append(prefixes, netip.PrefixFrom(ip, ip.BitLen()))
	}
	var caHosts []string
	if _, err := netip.ParseAddr(names.ServerName); err == nil {
		// An IP server name is covered by the IP constraints; the DNS constraint still needs
		// a name, and the host name (or a name of our own) serves.
		caHosts = names.Hostnames
	} else {
		caHosts = append([]string{names.ServerName}, names.Hostnames...)
	}
	if len(caHosts) == 0 {
		caHosts = []string{"outpost.internal"}
	}
	ca, err := tlsca.LoadOrCreateCA(filepath.Join(s.dir, "ca"), tlsca.CAOptions{
		ServerName: caHosts[0],
		Hostnames:  caHosts[1:],
		IPRanges:   prefixes,
		Logger:     s.log,
	})
	if err != nil {
		return fmt.Errorf("tls: root CA: %w", err)
	}
	s.ca.Store(ca)
	mode := tlsca.Mode(st.TLSMode)
	if mode == "" {
		mode = tlsca.ModeBoxCA
	}
	cfg := tlsca.Settings{Mode: mode, ServerName: names.ServerName, Names: names.All(), CA: ca}
	switch mode {
	case tlsca.ModeBoxCA:
		// Only names the root can vouch for: a new LAN address needs a new root (see docs).
		var covered []string
		for _, n := range cfg.Names {
			if ca.Permits(n) == nil {
				covered = append(covered, n)
			}
		}
		cfg.Names = covered
	case tlsca.ModeACME:
		cfg.ACME = tlsca.ACMEConfig{DirectoryURL: st.ACMEDirectory, RootPEM: []byte(st.ACMERootPEM)}
	case tlsca.ModeUpload:
		up, err := tlsca.LoadUpload(filepath.Join(s.dir, "upload"), tlsca.UploadOptions{ServerName: names.ServerName})
		if err != nil {
			return fmt.Errorf("tls: uploaded certificate: %w", err)
		}
		cfg.Upload = up
	default:
		return fmt.Errorf("tls: unknown mode %q", mode)
	}
	if err := s.mgr.Apply(ctx, cfg); err != nil {
		return err
	}
	s.active.Store(true)
	s.log.Info("TLS serving", "mode", mode, "names", cfg.Names, "root_fingerprint", ca.Fingerprint())
	return nil
}

// ValidateUpload checks an uploaded certificate and key for the box and stores them; the
// caller then switches the mode to upload.
func (s *Service) ValidateUpload(serverName string, certPEM, keyPEM []byte) ([]string, error) {
	names := DeriveNames(serverName)
	up, err := tlsca.ValidateUpload(certPEM, keyPEM, tlsca.UploadOptions{ServerName: names.ServerName})
	if err != nil {
		return nil, err
	}
	if err := tlsca.SaveUpload(filepath.Join(s.dir, "upload"), up); err != nil {
		return nil, err
	}
	return up.Warnings, nil
}

// Active reports whether HTTPS is serving.
func (s *Service) Active() bool { return s.active.Load() }

// TLSConfig serves the current certificate; it follows later Apply calls.
func (s *Service) TLSConfig() *tls.Config { return s.mgr.TLSConfig() }

// Fingerprint is the root's SHA-256 fingerprint, or "" before the root exists.
func (s *Service) Fingerprint() string {
	if ca := s.ca.Load(); ca != nil {
		return ca.Fingerprint()
	}
	return ""
}

// Mode is the serving mode, or "" before Apply.
func (s *Service) Mode() string {
	if !s.Active() {
		return ""
	}
	return string(s.mgr.Mode())
}

// RootPEM is the root certificate, or nil.
func (s *Service) RootPEM() []byte {
	if ca := s.ca.Load(); ca != nil {
		return ca.RootPEM()
	}
	return nil
}

// Close stops renewal.
func (s *Service) Close() error { return s.mgr.Close() }

// ErrNotActive is returned by actions that need HTTPS to be up.
var ErrNotActive = errors.New("TLS is not serving yet: finish setup first")

// HTTPHandler is the plain-HTTP side. Before TLS is up (setup not done) it is the gateway
// itself; afterwards it serves the trust page, /ca.crt, the iOS profile, ACME HTTP
// challenges and redirects everything else to HTTPS.
func (s *Service) HTTPHandler(gw http.Handler, httpsPort int) http.Handler {
	s.gw = gw
	trust := s.trustHandler(httpsPort)
	return s.mgr.HTTPChallengeHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.Active() {
			gw.ServeHTTP(w, r)
			return
		}
		trust.ServeHTTP(w, r)
	}))
}

// ModeRequest changes where the certificate comes from.
type ModeRequest struct {
	Mode          string `json:"mode"` // box-ca, acme, upload
	ACMEDirectory string `json:"acme_directory,omitempty"`
	ACMERootPEM   string `json:"acme_root_pem,omitempty"`
	// CertPEM and KeyPEM are required for upload (the chain may follow the leaf).
	CertPEM string `json:"cert_pem,omitempty"`
	KeyPEM  string `json:"key_pem,omitempty"`
}

// Status describes what is served.
type Status struct {
	Mode        string   `json:"mode"`
	Fingerprint string   `json:"root_fingerprint"`
	RootPEM     string   `json:"root_pem"`
	Names       []string `json:"names"`
	// Uncovered are names and addresses of the box that its root may not vouch for (it
	// was made before the box had them): in box-CA mode, clients using them get
	// certificate errors until the root is replaced (NewRoot).
	Uncovered []string `json:"uncovered,omitempty"`
}

// Status reports the mode, the root and the names served for serverName.
func (s *Service) Status(serverName string) Status {
	n := DeriveNames(serverName)
	st := Status{Mode: s.Mode(), Fingerprint: s.Fingerprint(), RootPEM: string(s.RootPEM()), Names: append([]string{n.ServerName}, n.All()...)}
	if ca := s.ca.Load(); ca != nil && st.Mode == string(tlsca.ModeBoxCA) {
		for _, name := range ca.Uncovered(st.Names) {
			if name != "" && !slices.Contains(st.Uncovered, name) {
				st.Uncovered = append(st.Uncovered, name)
			}
		}
	}
	return st
}

// NewRoot replaces the box's root with one made for the names and addresses the box has
// now (after a move to a new address, say). Every device must then trust the new root; the
// old one is kept under tls/ca.replaced-TIME and is put back if the new one fails.
func (s *Service) NewRoot(ctx context.Context, store *settings.Store, actor audit.Actor) (Status, error) {
	st, err := store.Get(ctx)
	if err != nil {
		return Status{}, err
	}
	if !st.SetupComplete || !s.Active() {
		return Status{}, ErrNotActive
	}
	oldFP := s.Fingerprint()
	caDir := filepath.Join(s.dir, "ca")
	kept := filepath.Join(s.dir, "ca.replaced-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(caDir, kept); err != nil {
		return Status{}, fmt.Errorf("tls: set the old root aside: %w", err)
	}
	if err := s.Apply(ctx, st); err != nil {
		os.RemoveAll(caDir) //nolint:errcheck // the half-made new root
		if rerr := os.Rename(kept, caDir); rerr != nil {
			return Status{}, errors.Join(err, fmt.Errorf("tls: put the old root back from %s: %w", kept, rerr))
		}
		return Status{}, errors.Join(err, s.Apply(ctx, st))
	}
	newFP := s.Fingerprint()
	if err := audit.Record(ctx, store.DB(), actor.String(), "tls.new-root", newFP, "replaced "+oldFP); err != nil {
		return Status{}, err
	}
	s.log.Warn("box root replaced: every device must trust the new one", "fingerprint", newFP, "replaced", oldFP, "by", actor.String())
	return s.Status(st.ServerName), nil
}

// ChangeMode switches the certificate source. The new source must work (certificates
// obtained and loaded) before anything is stored, so a failed change leaves the box serving
// exactly as before. The change and its audit record are one transaction.
func (s *Service) ChangeMode(ctx context.Context, store *settings.Store, actor audit.Actor, req ModeRequest) (warnings []string, err error) {
	cur, err := store.Get(ctx)
	if err != nil {
		return nil, err
	}
	if !cur.SetupComplete || !s.Active() {
		return nil, ErrNotActive
	}
	next := cur
	next.TLSMode = req.Mode
	switch tlsca.Mode(req.Mode) {
	case tlsca.ModeBoxCA:
	case tlsca.ModeACME:
		u, perr := url.Parse(req.ACMEDirectory)
		if perr != nil || u.Scheme != "https" || u.Host == "" {
			return nil, &accounts.FieldError{Field: "acme_directory", Message: "give the ACME directory as an https:// URL, e.g. https://ca.lan/acme/acme/directory"}
		}
		if !strings.Contains(req.ACMERootPEM, "BEGIN CERTIFICATE") {
			return nil, &accounts.FieldError{Field: "acme_root_pem", Message: "paste the root certificate (PEM) of the ACME CA, so the box can trust it"}
		}
		next.ACMEDirectory, next.ACMERootPEM = req.ACMEDirectory, req.ACMERootPEM
	case tlsca.ModeUpload:
		if req.CertPEM == "" || req.KeyPEM == "" {
			return nil, &accounts.FieldError{Field: "cert_pem", Message: "give both the certificate (with its chain) and the private key, in PEM"}
		}
		if warnings, err = s.ValidateUpload(cur.ServerName, []byte(req.CertPEM), []byte(req.KeyPEM)); err != nil {
			return nil, &accounts.FieldError{Field: "cert_pem", Message: err.Error()}
		}
	default:
		return nil, &accounts.FieldError{Field: "mode", Message: "choose box-ca, acme or upload"}
	}
	actx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := s.Apply(actx, next); err != nil {
		// Apply switched nothing; the old certificate keeps serving.
		return nil, fmt.Errorf("the new certificate source does not work, so nothing changed: %w", err)
	}
	if err := store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		st.TLSMode, st.ACMEDirectory, st.ACMERootPEM = next.TLSMode, next.ACMEDirectory, next.ACMERootPEM
		return audit.Record(ctx, tx, actor.String(), "tls.mode", st.ServerName, "mode="+req.Mode)
	}); err != nil {
		// Serve what the settings say, so a restart does not change behaviour.
		if rerr := s.Apply(context.WithoutCancel(ctx), cur); rerr != nil {
			s.log.Error("cannot restore the previous TLS mode", "err", rerr)
		}
		return nil, err
	}
	return warnings, nil
}
