package tlsca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
)

// Mode says where the box's serving certificate comes from.
type Mode string

const (
	// ModeBoxCA (the default) signs leaves with the per-box root CA.
	ModeBoxCA Mode = "box-ca"
	// ModeACME obtains certificates from an ACME CA on the local network.
	ModeACME Mode = "acme"
	// ModeUpload serves a certificate and key the user uploaded.
	ModeUpload Mode = "upload"
)

// Options are fixed for a Manager's life.
type Options struct {
	// StorageDir is certmagic's file storage (certificates, keys, ACME accounts, locks).
	StorageDir string
	// Logger receives this package's and certmagic's logs; nil means slog.Default().
	Logger *slog.Logger
	// RenewCheckInterval is how often certmagic looks for certificates to renew; zero
	// means certmagic's default (10 minutes). Tests shorten it together with LeafLifetime.
	RenewCheckInterval time.Duration
}

// Settings select the mode and the names to serve. Apply takes a complete Settings each
// time; the daemon derives it from the settings store.
type Settings struct {
	Mode Mode
	// ServerName is the box's primary name. It is always managed, and it is the
	// certificate clients get when they send no SNI and connect to an address that has no
	// certificate of its own.
	ServerName string
	// Names are further host names and IP literals to manage (box-CA and ACME modes).
	Names []string

	// CA signs leaves in ModeBoxCA.
	CA *CA
	// LeafLifetime of box-CA leaves; zero means DefaultLeafLifetime. certmagic renews a
	// leaf when a third of its life is left, so a short lifetime makes renewal observable.
	LeafLifetime time.Duration

	// ACME configures ModeACME.
	ACME ACMEConfig

	// Upload is served in ModeUpload; see ValidateUpload.
	Upload *Uploaded
}

// ACMEConfig points certmagic's ACME issuer at a CA on the local network.
type ACMEConfig struct {
	// DirectoryURL is the CA's ACME directory, e.g. https://ca.lan/acme/acme/directory.
	DirectoryURL string
	// RootPEM is the root(s) that the CA's own HTTPS endpoint chains to. The box has no
	// public roots worth trusting for an internal CA, so this is required.
	RootPEM []byte
	// Email is the optional account contact.
	Email string
	// ListenHost, HTTPPort and TLSALPNPort are where certmagic would start its own
	// challenge listeners. When the gateway already listens there (the normal case), certmagic
	// finds the port taken and relies on Manager.HTTPChallengeHandler and Manager.TLSConfig
	// answering the challenges instead. Zero ports mean 80 and 443.
	ListenHost  string
	HTTPPort    int
	TLSALPNPort int
	// DisableHTTPChallenge and DisableTLSALPNChallenge turn one challenge type off, e.g.
	// when the CA cannot reach the box on port 80. At least one must stay on.
	DisableHTTPChallenge    bool
	DisableTLSALPNChallenge bool
}

// Manager serves the box's certificate through certmagic. Its TLSConfig stays valid across
// Apply calls: a new mode is made to work completely before it replaces the old one, so
// changing mode never leaves the box without a working certificate.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // serialises Apply and Close
	closed  bool
	active  atomic.Pointer[state]
	pending atomic.Pointer[state] // being applied: may need to answer ACME challenges
}

// state is one applied Settings: its own certmagic cache and config.
type state struct {
	mode       Mode
	serverName string
	names      []string
	cache      *certmagic.Cache
	magic      *certmagic.Config
	acme       *certmagic.ACMEIssuer
	tls        *tls.Config
}

// NewManager returns a Manager that serves nothing until Apply succeeds.
func NewManager(o Options) (*Manager, error) {
	if o.StorageDir == "" {
		return nil, errors.New("tlsca: Manager needs a storage directory")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Manager{opts: o, log: o.Logger}, nil
}

// Apply makes s the served configuration. It obtains (or loads from storage) certificates
// for every name before switching, and returns without switching if that fails, so the
// previous configuration keeps serving. Renewal afterwards is certmagic's own.
func (m *Manager) Apply(ctx context.Context, s Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("tlsca: Manager is closed")
	}
	st, err := m.build(ctx, s)
	if err != nil {
		return fmt.Errorf("tlsca: apply %s mode: %w", s.Mode, err)
	}
	old := m.active.Swap(st)
	if old != nil {
		old.cache.Stop()
	}
	m.log.Info("TLS configuration applied", "mode", st.mode, "server_name", st.serverName, "names", st.names)
	return nil
}

// Mode returns the mode being served, or "" before the first successful Apply.
func (m *Manager) Mode() Mode {
	if st := m.active.Load(); st != nil {
		return st.mode
	}
	return ""
}

// TLSConfig returns the configuration for the HTTPS listener: TLS 1.2 minimum (1.3
// preferred by Go), only forward-secret AEAD suites for 1.2, h2 and http/1.1 over ALPN.
// Set it as http.Server.TLSConfig and call ServeTLS(ln, "", "") so HTTP/2 is enabled.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2", "http/1.1"},
		GetConfigForClient: m.configForClient,
	}
}

func (m *Manager) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	// An ACME CA validating tls-alpn-01 while a new ACME configuration is being applied
	// must reach that configuration: the active one knows nothing of the challenge.
	if slices.Contains(hello.SupportedProtos, acmez.ACMETLS1Protocol) {
		if p := m.pending.Load(); p != nil && p.acme != nil {
			return p.tls, nil
		}
	}
	st := m.active.Load()
	if st == nil {
		return nil, errors.New("tlsca: no TLS certificate configured yet")
	}
	return st.tls, nil
}

// HTTPChallengeHandler answers ACME http-01 challenges for the configuration being
// applied or served, and passes every other request to next. Wrap the port-80 handler
// with it.
func (m *Manager) HTTPChallengeHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certmagic.LooksLikeHTTPChallenge(r) {
			for _, st := range []*state{m.pending.Load(), m.active.Load()} {
				if st != nil && st.acme != nil && st.acme.HandleHTTPChallenge(w, r) {
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops certmagic's maintenance (renewal) goroutine; it waits for an Apply in
// progress. The TLS config fails handshakes afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if st := m.active.Swap(nil); st != nil {
		st.cache.Stop()
	}
	return nil
}

func (m *Manager) build(ctx context.Context, s Settings) (_ *state, err error) {
	names, err := managedNames(s.ServerName, s.Names)
	if err != nil {
		return nil, err
	}
	log := m.log.With("mode", s.Mode)
	zl := zapToSlog(log)
	st := &state{mode: s.Mode, serverName: names[0], names: names}

	// Each state gets its own cache, so the old configuration's certificates keep being
	// served, and only stop being renewed, once the new one has fully taken over.
	var magic *certmagic.Config
	st.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: m.opts.RenewCheckInterval,
		Logger:             zl,
	})
	defer func() {
		if err != nil {
			st.cache.Stop()
		}
	}()
	tmpl := certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: m.opts.StorageDir},
		DefaultServerName: st.serverName,
		Logger:            zl,
	}

	switch s.Mode {
	case ModeBoxCA:
		if s.CA == nil {
			return nil, errors.New("no box CA given")
		}
		if missing := s.CA.Uncovered(names); len(missing) > 0 {
			return nil, fmt.Errorf("the box root CA may not sign for %v (it was created for other names); create a new root and have devices trust it again", missing)
		}
		tmpl.Issuers = []certmagic.Issuer{NewIssuer(s.CA, s.LeafLifetime, log)}
		// Our leaves name no OCSP responder and carry no ARI: skip both lookups.
		tmpl.OCSP = certmagic.OCSPConfig{DisableStapling: true}
		tmpl.DisableARI = true
		magic = certmagic.New(st.cache, tmpl)
	case ModeACME:
		if err := checkClock(timeNow()); err != nil {
			// ACME would fail on certificate validity checks anyway, less clearly.
			return nil, err
		}
		if s.ACME.DirectoryURL == "" {
			return nil, errors.New("no ACME directory URL given")
		}
		u, err := url.Parse(s.ACME.DirectoryURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("ACME directory URL %q must be an https URL", s.ACME.DirectoryURL)
		}
		if s.ACME.DisableHTTPChallenge && s.ACME.DisableTLSALPNChallenge {
			return nil, errors.New("both ACME challenge types are disabled")
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(s.ACME.RootPEM) {
			return nil, errors.New("no usable root certificate given for the ACME CA")
		}
		// A placeholder until the real issuer exists (it needs the Config): left empty,
		// certmagic.New would fill in its default, Let's Encrypt.
		tmpl.Issuers = []certmagic.Issuer{noIssuer{}}
		magic = certmagic.New(st.cache, tmpl)
		st.acme = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA:                      s.ACME.DirectoryURL,
			TestCA:                  s.ACME.DirectoryURL, // never fall back to a public staging CA
			Email:                   s.ACME.Email,
			Agreed:                  true, // the operator chose this CA; nobody is there to click "agree"
			TrustedRoots:            roots,
			ListenHost:              s.ACME.ListenHost,
			AltHTTPPort:             s.ACME.HTTPPort,
			AltTLSALPNPort:          s.ACME.TLSALPNPort,
			DisableHTTPChallenge:    s.ACME.DisableHTTPChallenge,
			DisableTLSALPNChallenge: s.ACME.DisableTLSALPNChallenge,
			Logger:                  zl,
		})
		magic.Issuers = []certmagic.Issuer{nonInteractiveACME{st.acme}}
	case ModeUpload:
		if s.Upload == nil || s.Upload.Leaf == nil || s.Upload.Certificate.PrivateKey == nil {
			return nil, errors.New("no validated uploaded certificate given (use ValidateUpload or LoadUpload)")
		}
		if err := s.Upload.Leaf.VerifyHostname(st.serverName); err != nil {
			return nil, fmt.Errorf("%w %q", ErrNameMismatch, st.serverName)
		}
		// An upload is renewed by nobody: certmagic's OCSP fetches would only reach for
		// the internet the box does not have.
		tmpl.OCSP = certmagic.OCSPConfig{DisableStapling: true}
		tmpl.DisableARI = true
		tmpl.Issuers = []certmagic.Issuer{noIssuer{}}
		magic = certmagic.New(st.cache, tmpl)
	default:
		return nil, fmt.Errorf("unknown TLS mode %q", s.Mode)
	}
	st.magic = magic

	st.tls = magic.TLSConfig()
	st.tls.MinVersion = tls.VersionTLS12
	st.tls.NextProtos = []string{"h2", "http/1.1"}
	if st.acme != nil {
		st.tls.NextProtos = append(st.tls.NextProtos, acmez.ACMETLS1Protocol)
		st.tls.GetCertificate = withIPTLSALPN(st.tls.GetCertificate)
	}
	st.tls.CipherSuites = tls12Suites
	// Go's defaults include the post-quantum hybrid key exchange; certmagic's list
	// would drop it.
	st.tls.CurvePreferences = nil

	if s.Mode == ModeUpload {
		if _, err := magic.CacheUnmanagedTLSCertificate(ctx, s.Upload.Certificate, []string{"upload"}); err != nil {
			return nil, fmt.Errorf("load uploaded certificate: %w", err)
		}
		if left := time.Until(s.Upload.Leaf.NotAfter); left < ExpiryWarning {
			log.Warn("uploaded certificate expires soon and cannot be renewed by the box", "not_after", s.Upload.Leaf.NotAfter)
		}
		return st, nil
	}

	m.pending.Store(st)
	defer m.pending.CompareAndSwap(st, nil)
	if err := magic.ManageSync(ctx, names); err != nil {
		return nil, fmt.Errorf("obtain certificates for %v: %w", names, err)
	}
	return st, nil
}

// tls12Suites are the TLS 1.2 suites offered: ECDHE (forward secrecy) with AEAD ciphers
// only. TLS 1.3 suites are not configurable and all strong.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// noIssuer stands where certmagic insists on an issuer but none may be used: an empty
// Issuers list would make certmagic fall back to Let's Encrypt.
type noIssuer struct{}

func (noIssuer) Issue(context.Context, *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	return nil, errors.New("tlsca: this TLS mode obtains no certificates (an uploaded certificate is replaced by uploading a new one)")
}

func (noIssuer) IssuerKey() string { return "outpost-no-issuer" }

// nonInteractiveACME keeps certmagic from ever prompting on stdin. ManageSync counts as
// "interactive", and with no email address certmagic's pre-check would then ask for one
// on the console of a box that has no one in front of it.
type nonInteractiveACME struct{ *certmagic.ACMEIssuer }

func (a nonInteractiveACME) PreCheck(ctx context.Context, names []string, _ bool) error {
	return a.ACMEIssuer.PreCheck(ctx, names, false)
}

// managedNames returns the server name first, then the other names, normalized (lower
// case, canonical IP literals) and without duplicates.
func managedNames(serverName string, others []string) ([]string, error) {
	if _, err := netip.ParseAddr(serverName); err == nil {
		return nil, fmt.Errorf("server name %q must be a DNS name", serverName)
	}
	sn, err := normalizeDNSName(serverName)
	if err != nil {
		return nil, fmt.Errorf("server name: %w", err)
	}
	out := []string{sn}
	for _, n := range others {
		var norm string
		if ip, err := netip.ParseAddr(n); err == nil {
			if ip.Zone() != "" {
				return nil, fmt.Errorf("IP address %q: zoned addresses cannot be in a certificate", n)
			}
			norm = ip.Unmap().String()
		} else if norm, err = normalizeDNSName(n); err != nil {
			return nil, err
		}
		if !slices.Contains(out, norm) {
			out = append(out, norm)
		}
	}
	return out, nil
}
