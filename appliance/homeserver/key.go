package homeserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/outpost-im/outpost/appliance/atomicfile"
)

// keyIDAlphabet is what Dendrite accepts in a key ID after "ed25519:".
const keyIDAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// EnsureSigningKey creates the server's ed25519 signing key at path if it does not exist.
// The key signs every event this server ever sends, so it is created once and never replaced.
func EnsureSigningKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("homeserver: signing key: %w", err)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return fmt.Errorf("homeserver: signing key: %w", err)
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("homeserver: signing key id: %w", err)
	}
	for i, b := range id {
		id[i] = keyIDAlphabet[int(b)%len(keyIDAlphabet)]
	}
	// Dendrite's format: PEM type "MATRIX PRIVATE KEY", Key-ID header, the 32-byte seed.
	block := &pem.Block{
		Type:    "MATRIX PRIVATE KEY",
		Headers: map[string]string{"Key-ID": "ed25519:a_" + string(id)},
		Bytes:   seed,
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("homeserver: write signing key: %w", err)
	}
	return nil
}
