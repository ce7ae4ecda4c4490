// Package snapshot is Outpost's backup format and engine: a consistent cut of the homeserver
// and the settings, encrypted with age to the box's own key and the operator's recovery key,
// replicated to a target, verified by a test restore, restored onto a new box — and
// restorable by hand with Debian's age, zstd, tar and sha256sum (see docs/snapshot-format.md).
package snapshot

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

// Keys are what a box needs to write and check snapshots.
type Keys struct {
	// Box is the box's own X25519 identity: it can decrypt its snapshots for verification
	// and for a restore onto the same box. It travels inside the (encrypted) settings DB.
	Box *age.X25519Identity
	// Signing signs every manifest, so a restore can tell the box's snapshots from files
	// someone else encrypted to the same (public) recipients.
	Signing ed25519.PrivateKey
	// Recovery is the operator's recovery key (public half only) and Escrow an optional
	// company key; both can decrypt every snapshot.
	Recovery *age.X25519Recipient
	Escrow   *age.X25519Recipient
}

// NewBoxKeys generates the secrets a box keeps: an age identity and an Ed25519 seed, both as
// text for the settings store.
func NewBoxKeys() (identity, signingSeed string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", fmt.Errorf("snapshot: generate box key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", "", fmt.Errorf("snapshot: generate signing key: %w", err)
	}
	return id.String(), base64.StdEncoding.EncodeToString(priv.Seed()), nil
}

// NewRecoveryKey generates an operator recovery key. The identity (AGE-SECRET-KEY-1...) is
// shown once and never stored on the box; the recipient (age1...) is.
func NewRecoveryKey() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", fmt.Errorf("snapshot: generate recovery key: %w", err)
	}
	return id.String(), id.Recipient().String(), nil
}

// ParseKeys builds Keys from their settings text. escrow may be empty.
func ParseKeys(box, signingSeed, recovery, escrow string) (Keys, error) {
	var k Keys
	var err error
	if k.Box, err = age.ParseX25519Identity(strings.TrimSpace(box)); err != nil {
		return k, fmt.Errorf("snapshot: box key: %w", err)
	}
	if k.Signing, err = signingKey(signingSeed); err != nil {
		return k, err
	}
	if recovery == "" {
		return k, errors.New("snapshot: no recovery key is configured: set one up in the admin console (Snapshots) first, so that a snapshot can be restored without this box")
	}
	if k.Recovery, err = ParseRecipient(recovery); err != nil {
		return k, fmt.Errorf("snapshot: recovery key: %w", err)
	}
	if escrow != "" {
		if k.Escrow, err = ParseRecipient(escrow); err != nil {
			return k, fmt.Errorf("snapshot: escrow key: %w", err)
		}
	}
	return k, nil
}

func signingKey(seed string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(seed)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, errors.New("snapshot: signing key is malformed")
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// SigningPublicKey is the public half of a signing seed from the settings.
func SigningPublicKey(seed string) (ed25519.PublicKey, error) {
	k, err := signingKey(seed)
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// ParseRecipient parses a public age X25519 key, with an error that says what is expected.
// Post-quantum and passphrase recipients are refused on purpose: Debian's age 1.1.1 must be
// able to decrypt every snapshot.
func ParseRecipient(s string) (*age.X25519Recipient, error) {
	s = strings.TrimSpace(s)
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an age public key: expected age1... (from `age-keygen -y`); post-quantum and passphrase keys are not supported", abbreviate(s))
	}
	return r, nil
}

// ParseIdentity parses a private age key (the recovery key, or a box key) from text that may
// contain comments, as age-keygen writes it.
func ParseIdentity(text string) (*age.X25519Identity, error) {
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(strings.ToUpper(line), "AGE-SECRET-KEY-1") {
			id, err := age.ParseX25519Identity(strings.ToUpper(line))
			if err != nil {
				return nil, errors.New("the recovery key is damaged: check it against the recovery sheet (it starts with AGE-SECRET-KEY-1 and has 74 characters)")
			}
			return id, nil
		}
	}
	return nil, errors.New("no recovery key found: paste the line starting with AGE-SECRET-KEY-1 from the recovery sheet")
}

func abbreviate(s string) string {
	if len(s) > 16 {
		return s[:12] + "…"
	}
	return s
}

func (k Keys) recipients() []age.Recipient {
	rs := []age.Recipient{k.Box.Recipient(), k.Recovery}
	if k.Escrow != nil {
		rs = append(rs, k.Escrow)
	}
	return rs
}

// objectName names a media object so that the name reveals nothing about the content (not
// even its hash, which could confirm a guessed file) yet is stable: equal content gets the
// same name, which is what makes whole-file dedup exact. The key derives from the box
// identity, which a restored box keeps, so dedup survives a move to new hardware.
func (k Keys) objectName(plainSHA256 []byte) string {
	mac := hmac.New(sha256.New, []byte("outpost object name v1\x00"+k.Box.String()))
	mac.Write(plainSHA256)
	h := hex.EncodeToString(mac.Sum(nil))
	return "objects/" + h[:2] + "/" + h + ".age"
}

// SigningPublicPEM is the manifest signing key's public half as PEM, verifiable with
// `openssl pkeyutl -verify -pubin -rawin`.
func (k Keys) SigningPublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Signing.Public())
	if err != nil {
		panic(err) // ed25519 keys always marshal
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParseSigningPublicPEM reads a key written by SigningPublicPEM.
func ParseSigningPublicPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("signing key: no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("signing key: not an Ed25519 key")
	}
	return k, nil
}

// Fingerprint is a short, comparable form of a public signing key for the recovery sheet.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
