package tlsca

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// DefaultLeafLifetime is the validity of a leaf signed by the box CA. Short enough that a
// leaked leaf key is soon useless and that Apple's limits (825 days for private roots) are
// met by a wide margin; certmagic renews it with a third of its life left.
const DefaultLeafLifetime = 30 * 24 * time.Hour

// maxLeafBackdate caps how far a leaf's NotBefore is set in the past, to tolerate clients
// whose clocks run behind the box's.
const maxLeafBackdate = time.Hour

// Issuer signs leaf certificates with the box CA. It implements certmagic.Issuer, so
// certmagic decides when to obtain and renew and keeps the results in its storage.
type Issuer struct {
	ca       *CA
	lifetime time.Duration
	log      *slog.Logger
}

var _ certmagic.Issuer = (*Issuer)(nil)

// NewIssuer returns an Issuer for ca that signs leaves valid for lifetime (zero means
// DefaultLeafLifetime). Tests use a lifetime of seconds to watch certmagic renew.
func NewIssuer(ca *CA, lifetime time.Duration, log *slog.Logger) *Issuer {
	if lifetime <= 0 {
		lifetime = DefaultLeafLifetime
	}
	if log == nil {
		log = ca.log
	}
	return &Issuer{ca: ca, lifetime: lifetime, log: log}
}

// IssuerKey identifies this issuer in certmagic's storage. It includes the root's
// fingerprint so that leaves signed by a replaced root are never loaded and served again.
func (i *Issuer) IssuerKey() string {
	return "outpost-box-ca-" + strings.ToLower(strings.ReplaceAll(i.ca.Fingerprint(), ":", "")[:16])
}

// Issue signs a leaf for the names in csr. The leaf has no Common Name: OpenSSL checks
// a CN that looks like a host name against the root's name constraints too and rejects
// it, and browsers ignore the CN anyway. Names outside the constraints are refused here
// with a clear error rather than producing a certificate every client would reject.
func (i *Issuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("tlsca: CSR signature: %w", err)
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return nil, errors.New("tlsca: the box CA signs only DNS names and IP addresses")
	}
	if len(csr.DNSNames) == 0 && len(csr.IPAddresses) == 0 {
		return nil, errors.New("tlsca: CSR names no DNS names or IP addresses (a Common Name alone is not signed)")
	}
	var names []string
	var bad []error
	tmpl := &x509.Certificate{
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, d := range csr.DNSNames {
		n, err := normalizeDNSName(d)
		if err == nil {
			err = i.ca.Permits(n)
		}
		if err != nil {
			bad = append(bad, err)
			continue
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
		names = append(names, n)
	}
	for _, ip := range csr.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			bad = append(bad, fmt.Errorf("tlsca: malformed IP address in CSR"))
			continue
		}
		a = a.Unmap()
		if err := i.ca.Permits(a.String()); err != nil {
			bad = append(bad, err)
			continue
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
		names = append(names, a.String())
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("tlsca: refusing to sign: %w", errors.Join(bad...))
	}
	if _, isRSA := csr.PublicKey.(*rsa.PublicKey); isRSA {
		// TLS 1.2 RSA key exchange needs it; harmless otherwise.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	now := timeNow()
	if err := checkClock(now); err != nil {
		return nil, err
	}
	backdate := min(i.lifetime/30, maxLeafBackdate)
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(i.lifetime)
	if caEnd := i.ca.cert.NotAfter; tmpl.NotAfter.After(caEnd) {
		// A leaf may not outlive its root; clients would reject the chain anyway.
		i.log.Warn("box root CA expires before a full leaf lifetime; leaf shortened", "root_not_after", caEnd)
		tmpl.NotAfter = caEnd
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca.cert, csr.PublicKey, i.ca.key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: sign leaf for %v: %w", names, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsca: parse new leaf: %w", err)
	}
	// Verify what we just made with Go's own verifier, name constraints included: a
	// certificate that every client would reject is better caught here, loudly.
	if err := i.verify(leaf, names, now); err != nil {
		return nil, err
	}
	i.log.Info("box CA issued leaf certificate", "names", names, "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter)
	return &certmagic.IssuedCertificate{
		// The leaf alone: the root is its direct issuer, and clients that trust the box
		// have the root already, so sending it would only add bytes to every handshake.
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Metadata:    map[string]string{"issuer": "outpost-box-ca", "root_fingerprint": i.ca.Fingerprint()},
	}, nil
}

func (i *Issuer) verify(leaf *x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(i.ca.cert)
	for _, n := range names {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:     n,
			Roots:       roots,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("tlsca: new leaf for %q does not verify against the box root: %w", n, err)
		}
	}
	return nil
}
