// Package tlsca gives the box real TLS without the internet: a per-box root CA that is
// name-constrained to the box's own names and addresses, a certmagic Issuer that signs
// short-lived leaf certificates from it, and a Manager that serves them (or an ACME CA's,
// or an uploaded certificate's) through certmagic, which owns storage and renewal.
//
// Browsers refuse service workers, WebRTC and WebCrypto on plain HTTP from a LAN address,
// and Let's Encrypt cannot reach the box, so the box must be its own CA. The name
// constraints are what make asking a user to trust that root acceptable: even if the
// box's CA key leaks, the root cannot vouch for any other site.
package tlsca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/atomicfile"
)

// File names inside a CA directory.
const (
	RootCertFile = "root.crt"
	rootKeyFile  = "root.key"
)

// DefaultCAValidity is how long a new root is valid. A root is installed by hand on every
// phone and laptop, so replacing it is expensive for the user; a long life is the point.
const DefaultCAValidity = 20 * 365 * 24 * time.Hour

// caBackdate makes a new root valid slightly in the past, so a device whose clock runs a
// little behind the box's still accepts it.
const caBackdate = time.Hour

// ErrClockNotSet reports a system clock too far in the past to sign anything. A Raspberry
// Pi without a real-time clock boots in 1970 until NTP answers; a root made then would have
// expired decades ago, and leaves would be rejected by every client.
var ErrClockNotSet = errors.New("tlsca: the system clock is not set (it reads a date before 2025); wait for time synchronisation before creating or signing certificates")

// minPlausibleTime is earlier than any real moment this code runs at.
var minPlausibleTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// timeNow is the clock; tests replace it to simulate a box that has not synced its clock.
var timeNow = time.Now

func checkClock(now time.Time) error {
	if now.Before(minPlausibleTime) {
		return fmt.Errorf("%w (now %s)", ErrClockNotSet, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// ErrCAKeyMissing reports a CA directory that holds a root certificate but no key: the
// root may already be trusted by devices, so it is not silently replaced.
var ErrCAKeyMissing = errors.New("tlsca: root certificate present but its private key is missing")

// CAOptions names what a new root may vouch for. The root can never sign for anything
// else, so list every name and address clients use to reach the box.
type CAOptions struct {
	// ServerName is the box's primary DNS name (the Matrix server name), e.g. "outpost.lan".
	// Required: a root with no DNS constraint would be able to sign for any name.
	ServerName string
	// Hostnames are further DNS names of the box, e.g. "outpost" or "outpost.local". Each
	// also permits its subdomains, as RFC 5280 name constraints do.
	Hostnames []string
	// IPRanges are the addresses the root may sign for. A single address (/32, /128) is
	// the tightest choice; a whole LAN prefix survives a DHCP address change without a new
	// root, at the price of letting the root vouch for other hosts on that LAN. Empty
	// means the root signs for no IP address at all.
	IPRanges []netip.Prefix
	// Validity of the root; zero means DefaultCAValidity.
	Validity time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// CA is a loaded per-box root: its certificate and private key.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	log     *slog.Logger
}

// LoadOrCreateCA loads the root stored in dir, or creates one from o if dir holds none.
// An existing root is loaded as is, even if o names more than it permits: replacing a root
// breaks every device that trusts it, so that is an explicit decision (see CA.Uncovered
// and CreateCA), never a side effect of a settings change.
func LoadOrCreateCA(dir string, o CAOptions) (*CA, error) {
	ca, err := LoadCA(dir, o.Logger)
	if err == nil {
		if missing := ca.Uncovered(o.names()); len(missing) > 0 {
			ca.log.Warn("box root CA does not cover all configured names; clients using them will see certificate errors until a new root is created",
				"uncovered", missing, "fingerprint", ca.Fingerprint())
		}
		return ca, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return CreateCA(dir, o)
}

// CreateCA makes a new root in dir, replacing any root stored there. Devices that trusted
// the old root must be given the new one.
func CreateCA(dir string, o CAOptions) (*CA, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	dns, err := o.dnsConstraints()
	if err != nil {
		return nil, err
	}
	ipRanges, err := ipConstraints(o.IPRanges)
	if err != nil {
		return nil, err
	}
	validity := o.Validity
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsca: generate root key: %w", err)
	}
	now := timeNow()
	if err := checkClock(now); err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			// The CN is what a user sees in a trust-store list; make it say which box.
			CommonName:   "Outpost " + dns[0] + " root CA " + now.UTC().Format("2006-01-02"),
			Organization: []string{"Outpost"},
		},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// No intermediates: the root signs leaves directly, and a path length of zero
		// stops a leaked key from minting a sub-CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		// An EKU on the root limits what it vouches for (Go, NSS and Chrome honour it):
		// TLS servers only, no code signing or S/MIME.
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         dns,
	}
	if len(ipRanges) > 0 {
		tmpl.PermittedIPRanges = ipRanges
	} else {
		// With no IP subtree at all, RFC 5280 leaves IP SANs unconstrained; excluding
		// every address is how "no IP addresses" is said.
		tmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: sign root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsca: parse new root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: encode root key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsca: create CA dir: %w", err)
	}
	// Key before certificate: LoadCA treats "no certificate" as "no CA", so a crash
	// between the two writes leaves a state that is simply created again, whereas a
	// certificate without its key could already have been handed to devices.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := atomicfile.Write(filepath.Join(dir, rootKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("tlsca: store root key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Write(filepath.Join(dir, RootCertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("tlsca: store root certificate: %w", err)
	}
	ca := &CA{cert: cert, certPEM: certPEM, key: key, log: log}
	log.Info("created box root CA", "dir", dir, "dns", dns, "ip_ranges", o.IPRanges,
		"not_after", cert.NotAfter, "fingerprint", ca.Fingerprint())
	return ca, nil
}

// LoadCA loads the root stored in dir. It returns an error wrapping fs.ErrNotExist when
// dir holds no root certificate.
func LoadCA(dir string, log *slog.Logger) (*CA, error) {
	if log == nil {
		log = slog.Default()
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("tlsca: load root certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, rootKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", ErrCAKeyMissing, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("tlsca: load root key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tlsca: %s: no PEM certificate", RootCertFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tlsca: parse root certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("tlsca: %s: no PEM key", rootKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tlsca: parse root key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("tlsca: root key is %T, want ECDSA", k)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("tlsca: root key does not match root certificate")
	}
	if !cert.IsCA {
		return nil, errors.New("tlsca: stored root is not a CA certificate")
	}
	if timeNow().After(cert.NotAfter) {
		return nil, fmt.Errorf("tlsca: root expired on %s", cert.NotAfter.Format(time.DateOnly))
	}
	return &CA{cert: cert, certPEM: pem.EncodeToMemory(cb), key: key, log: log}, nil
}

// Certificate returns the root certificate. Do not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// RootPEM returns the root certificate in PEM, as served at /ca.crt.
func (ca *CA) RootPEM() []byte { return bytes.Clone(ca.certPEM) }

// Fingerprint returns the root's SHA-256 fingerprint as colon-separated upper-case hex,
// the way browsers and OS trust dialogs show it, so users can compare it by eye.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.cert) }

// Fingerprint returns cert's SHA-256 fingerprint as colon-separated upper-case hex.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// Permits reports whether the root's name constraints allow a certificate for name (a DNS
// name or an IP literal), and if not, why.
func (ca *CA) Permits(name string) error {
	if ip, err := netip.ParseAddr(name); err == nil {
		ip = ip.Unmap()
		for _, r := range ca.cert.ExcludedIPRanges {
			if ipNetContains(r, ip) {
				return fmt.Errorf("tlsca: the box CA may not sign for IP address %s (excluded by its name constraints)", ip)
			}
		}
		if len(ca.cert.PermittedIPRanges) == 0 {
			return nil
		}
		for _, r := range ca.cert.PermittedIPRanges {
			if ipNetContains(r, ip) {
				return nil
			}
		}
		return fmt.Errorf("tlsca: the box CA may not sign for IP address %s: it is constrained to %s",
			ip, joinNets(ca.cert.PermittedIPRanges))
	}
	n, err := normalizeDNSName(name)
	if err != nil {
		return err
	}
	for _, c := range ca.cert.ExcludedDNSDomains {
		if dnsWithin(n, c) {
			return fmt.Errorf("tlsca: the box CA may not sign for %q (excluded by its name constraints)", n)
		}
	}
	if len(ca.cert.PermittedDNSDomains) == 0 {
		return nil
	}
	for _, c := range ca.cert.PermittedDNSDomains {
		if dnsWithin(n, c) {
			return nil
		}
	}
	return fmt.Errorf("tlsca: the box CA may not sign for %q: it is constrained to %s",
		n, strings.Join(ca.cert.PermittedDNSDomains, ", "))
}

// Uncovered returns the names among names that the root may not sign for, so the caller
// can tell the user that a new root (and re-trusting it on every device) is needed.
func (ca *CA) Uncovered(names []string) []string {
	var out []string
	for _, n := range names {
		if ca.Permits(n) != nil {
			out = append(out, n)
		}
	}
	return out
}

// names lists the DNS names and IP ranges' addresses of o for coverage checks.
func (o CAOptions) names() []string {
	out := append([]string{o.ServerName}, o.Hostnames...)
	for _, p := range o.IPRanges {
		out = append(out, p.Addr().String())
	}
	return out
}

func (o CAOptions) dnsConstraints() ([]string, error) {
	if strings.TrimSpace(o.ServerName) == "" {
		return nil, errors.New("tlsca: a server name is required to constrain the root CA")
	}
	var out []string
	for _, raw := range append([]string{o.ServerName}, o.Hostnames...) {
		if _, err := netip.ParseAddr(raw); err == nil {
			return nil, fmt.Errorf("tlsca: %q is an IP address; put it in IPRanges", raw)
		}
		n, err := normalizeDNSName(raw)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func ipConstraints(prefixes []netip.Prefix) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("tlsca: invalid IP range %v", p)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if p.Bits() == 0 {
			return nil, fmt.Errorf("tlsca: IP range %v would permit every address", p)
		}
		out = append(out, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	return out, nil
}

// normalizeDNSName lower-cases name, drops a trailing dot and rejects what cannot be a
// host name in a certificate.
func normalizeDNSName(name string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if n == "" {
		return "", errors.New("tlsca: empty DNS name")
	}
	if len(n) > 253 {
		return "", fmt.Errorf("tlsca: DNS name %q is too long", n)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("tlsca: %q is not a valid DNS name", n)
		}
		for i, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(label)-1
			if !ok {
				return "", fmt.Errorf("tlsca: %q is not a valid DNS name (letters, digits and inner hyphens only; use punycode for IDNs)", n)
			}
		}
	}
	return n, nil
}

// dnsWithin applies RFC 5280's dNSName constraint rule: the name itself or any subdomain.
func dnsWithin(name, constraint string) bool {
	constraint = strings.ToLower(strings.TrimPrefix(constraint, "."))
	return name == constraint || strings.HasSuffix(name, "."+constraint)
}

func ipNetContains(n *net.IPNet, ip netip.Addr) bool {
	// net.IPNet.Contains would match an IPv4 address against a 16-byte IPv4-mapped
	// network; name constraints compare address families strictly.
	if (len(n.IP) == net.IPv4len) != ip.Is4() {
		return false
	}
	return n.Contains(net.IP(ip.AsSlice()))
}

func joinNets(ns []*net.IPNet) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.String()
	}
	return strings.Join(s, ", ")
}

func randomSerial() (*big.Int, error) {
	// 128 random bits, as CA/B Forum practice asks for at least 64.
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("tlsca: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
