package provisioning

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Company signing keys, as text files. The private key stays at headquarters; the public
// key is pinned in the image, and then every manifest must carry a valid signature.
const (
	privatePrefix = "OUTPOST-PROVISIONING-PRIVATE-KEY-V1 "
	publicPrefix  = "outpost-provisioning-ed25519 "
	sigPrefix     = "outpost-provisioning-signature-v1 "
)

// SigSuffix is appended to a manifest's file name for its detached signature.
const SigSuffix = ".sig"

// ErrUnsigned means a key is pinned and the manifest has no signature.
var ErrUnsigned = errors.New("this box only accepts manifests signed by the company key pinned in its image, and this one is not signed (outpost provision sign)")

// NewKey generates a company signing key pair as text.
func NewKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", "", err
	}
	return privatePrefix + base64.StdEncoding.EncodeToString(priv.Seed()) + "\n",
		publicPrefix + base64.StdEncoding.EncodeToString(pub) + "\n", nil
}

// ParsePrivateKey reads a private key file.
func ParsePrivateKey(text string) (ed25519.PrivateKey, error) {
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, privatePrefix) {
		return nil, errors.New("not an Outpost provisioning private key (made by `outpost provision keygen`)")
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, privatePrefix))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("the provisioning private key is damaged")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads a public key file.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, publicPrefix) {
		return nil, errors.New("not an Outpost provisioning public key (made by `outpost provision keygen`)")
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, publicPrefix))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("the provisioning public key is damaged")
	}
	return ed25519.PublicKey(pub), nil
}

// KeyFingerprint identifies a public key in messages.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Sign returns the detached signature file's content for manifest bytes. The signature
// covers the exact bytes, so it is made after the manifest is final.
func Sign(priv ed25519.PrivateKey, manifest []byte) []byte {
	return []byte(sigPrefix + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, manifest)) + "\n")
}

// Verify checks a detached signature (nil sig: unsigned) against pub.
func Verify(pub ed25519.PublicKey, manifest, sig []byte) error {
	if sig == nil {
		return ErrUnsigned
	}
	s := strings.TrimSpace(string(sig))
	if !strings.HasPrefix(s, sigPrefix) {
		return errors.New("the manifest's signature file is not an Outpost provisioning signature")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, sigPrefix))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return errors.New("the manifest's signature is damaged")
	}
	if !ed25519.Verify(pub, manifest, raw) {
		return fmt.Errorf("the manifest's signature does not match the pinned company key %s: it was changed after signing, or signed with another key", KeyFingerprint(pub))
	}
	return nil
}
