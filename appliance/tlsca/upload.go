package tlsca

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/atomicfile"
)

// ExpiryWarning is how close to its end an uploaded certificate may be before
// ValidateUpload warns: nobody on the box can renew it, so the user must act in time.
const ExpiryWarning = 30 * 24 * time.Hour

// Upload validation failures. ValidateUpload wraps each with the detail, and joins them
// when several apply, so the console can show one clear line per problem.
var (
	ErrNoCertificate = errors.New("no certificate found")
	ErrBadKey        = errors.New("private key unusable")
	ErrKeyMismatch   = errors.New("private key does not match the certificate")
	ErrChain         = errors.New("certificate chain does not verify")
	ErrNotServerCert = errors.New("certificate is not valid for TLS servers")
	ErrNameMismatch  = errors.New("certificate does not cover the server name")
	ErrExpired       = errors.New("certificate has expired")
	ErrNotYetValid   = errors.New("certificate is not valid yet")
)

// UploadOptions says what an uploaded certificate must satisfy.
type UploadOptions struct {
	// ServerName must be covered by the certificate.
	ServerName string
	// OtherNames (hostnames, IP literals) only warn when not covered: clients using them
	// would see an error, but the server name is what the box cannot work without.
	OtherNames []string
	// ExtraRootsPEM are roots the chain may end in besides self-signed certificates
	// included in the upload (e.g. the company CA pasted separately). When neither is
	// given, the system roots are used.
	ExtraRootsPEM []byte
	// Now is the time to check validity at; zero means time.Now().
	Now time.Time
}

// Uploaded is a validated user-supplied certificate with its key.
type Uploaded struct {
	// Certificate is ready for serving: leaf and intermediates (roots omitted), key, Leaf set.
	Certificate tls.Certificate
	// Leaf is the server certificate.
	Leaf *x509.Certificate
	// CertPEM (leaf, intermediates, then any included roots) and KeyPEM (PKCS#8) are the
	// normalized upload, for SaveUpload.
	CertPEM, KeyPEM []byte
	// Warnings are problems that do not stop serving, e.g. expiring within ExpiryWarning.
	Warnings []string
}

// ValidateUpload checks a certificate chain and key in PEM: the key matches the first
// certificate (the leaf), the chain verifies to an included or extra root, the leaf covers
// the server name and is valid now. keyPEM may be empty if certPEM also holds the key.
// All failures are reported together, each wrapping one of the Err* values above.
func ValidateUpload(certPEM, keyPEM []byte, o UploadOptions) (*Uploaded, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	certs, keyBlock, err := splitPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if len(keyPEM) > 0 {
		_, kb, err := splitPEM(keyPEM)
		if err != nil {
			return nil, err
		}
		if kb != nil {
			keyBlock = kb
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: paste the server certificate (BEGIN CERTIFICATE) first, then any intermediates", ErrNoCertificate)
	}
	leaf := certs[0]
	if leaf.IsCA {
		// Every other check would fail too and only bury the actual mistake.
		return nil, fmt.Errorf("%w: the first certificate (%q) is a CA certificate; put the server certificate first, then intermediates",
			ErrNotServerCert, leaf.Subject.CommonName)
	}
	var errs []error
	var warnings []string

	key, err := parseKey(keyBlock)
	if err != nil {
		errs = append(errs, err)
	} else if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		errs = append(errs, fmt.Errorf("%w: the key belongs to a different certificate (the first certificate in the upload must be the server's)", ErrKeyMismatch))
	}

	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		errs = append(errs, fmt.Errorf("%w: its extended key usage lacks serverAuth", ErrNotServerCert))
	}

	switch {
	case now.After(leaf.NotAfter):
		errs = append(errs, fmt.Errorf("%w: it expired on %s", ErrExpired, leaf.NotAfter.UTC().Format(time.DateTime)))
	case now.Before(leaf.NotBefore):
		errs = append(errs, fmt.Errorf("%w: it becomes valid on %s (check the box's clock)", ErrNotYetValid, leaf.NotBefore.UTC().Format(time.DateTime)))
	case leaf.NotAfter.Sub(now) < ExpiryWarning:
		warnings = append(warnings, fmt.Sprintf("certificate expires on %s, in %d days; nothing on the box can renew it, upload a new one before then",
			leaf.NotAfter.UTC().Format(time.DateOnly), int(leaf.NotAfter.Sub(now).Hours()/24)))
	}

	if o.ServerName == "" {
		errs = append(errs, fmt.Errorf("%w: no server name configured to check against", ErrNameMismatch))
	} else if err := leaf.VerifyHostname(o.ServerName); err != nil {
		errs = append(errs, fmt.Errorf("%w %q: it is for %s", ErrNameMismatch, o.ServerName, certNames(leaf)))
	}
	for _, n := range o.OtherNames {
		if leaf.VerifyHostname(n) != nil {
			warnings = append(warnings, fmt.Sprintf("certificate does not cover %q; clients using that name or address will see a certificate error", n))
		}
	}

	// The chain: self-signed certificates in the upload are the roots it claims; the rest
	// are intermediates. Expiry is reported above, so verify at a moment inside the
	// leaf's validity to report only what is wrong with the chain itself.
	roots := x509.NewCertPool()
	haveRoots := false
	intermediates := x509.NewCertPool()
	var served, includedRoots []*x509.Certificate
	served = append(served, leaf)
	for _, c := range certs[1:] {
		if isSelfSigned(c) {
			roots.AddCert(c)
			includedRoots = append(includedRoots, c)
			haveRoots = true
			continue
		}
		intermediates.AddCert(c)
		served = append(served, c)
	}
	if len(o.ExtraRootsPEM) > 0 {
		if !roots.AppendCertsFromPEM(o.ExtraRootsPEM) {
			errs = append(errs, fmt.Errorf("%w: the extra root certificates could not be read", ErrChain))
		}
		haveRoots = true
	}
	if !haveRoots {
		if sys, err := x509.SystemCertPool(); err == nil {
			roots = sys
		}
	}
	at := now
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter.Add(-time.Second)
	} else if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore.Add(time.Second)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		hint := "include the intermediate certificates and the root (or give the root separately)"
		errs = append(errs, fmt.Errorf("%w: %v; %s", ErrChain, err, hint))
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	var chainPEM []byte
	tc := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range served {
		tc.Certificate = append(tc.Certificate, c.Raw)
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	// Included roots are kept in CertPEM (so LoadUpload can verify the chain again) but
	// not served: a client that trusts the root has it already.
	for _, c := range includedRoots {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &Uploaded{
		Certificate: tc,
		Leaf:        leaf,
		CertPEM:     chainPEM,
		KeyPEM:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Warnings:    warnings,
	}, nil
}

// File names SaveUpload and LoadUpload use.
const (
	uploadCertFile = "upload.crt"
	uploadKeyFile  = "upload.key"
)

// SaveUpload stores a validated upload in dir (key 0600, atomic writes), so the box
// serves it again after a reboot.
func SaveUpload(dir string, u *Uploaded) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tlsca: create upload dir: %w", err)
	}
	// Key first: a certificate without its key is useless, the reverse is just retried.
	if err := atomicfile.Write(filepath.Join(dir, uploadKeyFile), u.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("tlsca: store uploaded key: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, uploadCertFile), u.CertPEM, 0o644); err != nil {
		return fmt.Errorf("tlsca: store uploaded certificate: %w", err)
	}
	return nil
}

// LoadUpload reads an upload stored by SaveUpload and validates it again with o, so an
// upload that expired while the box was off is reported rather than served.
func LoadUpload(dir string, o UploadOptions) (*Uploaded, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, uploadCertFile))
	if err != nil {
		return nil, fmt.Errorf("tlsca: load uploaded certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, uploadKeyFile))
	if err != nil {
		return nil, fmt.Errorf("tlsca: load uploaded key: %w", err)
	}
	u, err := ValidateUpload(certPEM, keyPEM, o)
	if err != nil {
		return nil, fmt.Errorf("tlsca: stored upload: %w", err)
	}
	return u, nil
}

// splitPEM returns the certificates and the first private-key block in data, and rejects
// input that is not PEM at all (a DER file, say) with a clear error.
func splitPEM(data []byte) ([]*x509.Certificate, *pem.Block, error) {
	var certs []*x509.Certificate
	var key *pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: certificate %d cannot be parsed: %v", ErrNoCertificate, len(certs)+1, err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			if key == nil {
				key = b
			}
		}
	}
	if len(certs) == 0 && key == nil && len(strings.TrimSpace(string(data))) > 0 {
		return nil, nil, fmt.Errorf("%w: the input is not PEM (expected -----BEGIN CERTIFICATE----- blocks)", ErrNoCertificate)
	}
	return certs, key, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: no private key found (expected -----BEGIN PRIVATE KEY-----)", ErrBadKey)
	}
	// Legacy OpenSSL encryption marks the block with a Proc-Type header; PKCS#8 has its
	// own block type. Either way the box has no passphrase to give.
	if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, fmt.Errorf("%w: the key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem)", ErrBadKey)
	}
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrBadKey, k)
	}
	return s, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.IsCA && string(c.RawSubject) == string(c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

func certNames(c *x509.Certificate) string {
	var n []string
	n = append(n, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		n = append(n, ip.String())
	}
	if len(n) == 0 {
		if c.Subject.CommonName != "" {
			return fmt.Sprintf("no subject alternative names (only the Common Name %q, which clients ignore)", c.Subject.CommonName)
		}
		return "no names at all"
	}
	return strings.Join(n, ", ")
}
