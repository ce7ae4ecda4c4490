package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

// idPeACMEIdentifier is the acmeIdentifier certificate extension of RFC 8737.
var idPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// withIPTLSALPN wraps certmagic's GetCertificate to answer tls-alpn-01 challenges for IP
// identifiers correctly. acmez v3.1.3 puts the address of an IP identifier in a DNS-name
// SAN of the challenge certificate, but RFC 8738 section 6 requires an iPAddress SAN, and
// a conforming CA (pebble, at least) rejects the DNS form. The box has LAN addresses among
// its names, so without this an ACME CA that picks tls-alpn-01 fails every IP certificate.
func withIPTLSALPN(next func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if slices.Contains(hello.SupportedProtos, acmez.ACMETLS1Protocol) {
			// certmagic keys an IP identifier's tls-alpn-01 challenge by the reverse-DNS
			// name the CA sends as SNI (RFC 8738), e.g. 1.0.0.127.in-addr.arpa.
			if chal, ok := certmagic.GetACMEChallenge(hello.ServerName); ok &&
				chal.Type == acme.ChallengeTypeTLSALPN01 && chal.Identifier.Type == "ip" {
				return ipTLSALPNCert(chal.Challenge)
			}
		}
		return next(hello)
	}
}

// ipTLSALPNCert builds the RFC 8737/8738 validation certificate for an IP identifier.
func ipTLSALPNCert(chal acme.Challenge) (*tls.Certificate, error) {
	ip := net.ParseIP(chal.Identifier.Value)
	if ip == nil {
		return nil, fmt.Errorf("tlsca: tls-alpn-01 challenge for malformed IP %q", chal.Identifier.Value)
	}
	sum := sha256.Sum256([]byte(chal.KeyAuthorization))
	extValue, err := asn1.Marshal(sum[:])
	if err != nil {
		return nil, fmt.Errorf("tlsca: tls-alpn-01 extension: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsca: tls-alpn-01 key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ACME challenge"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{ip},
		// Critical, as RFC 8737 requires, so no other software will ever accept it.
		ExtraExtensions: []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: extValue}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: tls-alpn-01 certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
