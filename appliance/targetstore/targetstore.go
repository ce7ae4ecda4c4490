// Package targetstore keeps the configured snapshot targets in the settings database, sealed
// (XChaCha20-Poly1305) with a key kept in its own file, credentials.key: a copy of the
// database alone — attached to a support ticket, say — does not reveal target passwords.
// Both travel inside the encrypted snapshot, so a restored box can reach its targets.
package targetstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/outpost-im/outpost/appliance/atomicfile"
	"github.com/outpost-im/outpost/appliance/target"
)

// KeyFile is the sealing key's name in the data directory.
const KeyFile = "credentials.key"

// ErrNotFound is returned for an unknown target name.
var ErrNotFound = errors.New("no such target")

// Store is the targets table.
type Store struct {
	db  *sql.DB
	key []byte
}

// Open uses the settings database db and the key in dataDir (created on first use).
func Open(dataDir string, db *sql.DB) (*Store, error) {
	p := filepath.Join(dataDir, KeyFile)
	key, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, chacha20poly1305.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("targetstore: %w", err)
		}
		if err := atomicfile.Write(p, key, 0o600); err != nil {
			return nil, fmt.Errorf("targetstore: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("targetstore: %w", err)
	}
	if len(key) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("targetstore: %s is damaged (%d bytes); restore it from a snapshot or remove it and re-enter the target passwords", p, len(key))
	}
	return &Store{db: db, key: key}, nil
}

func (s *Store) aead() (aeadCipher, error) { return chacha20poly1305.NewX(s.key) }

type aeadCipher interface {
	NonceSize() int
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// ad binds a sealed config to its row, so rows cannot be swapped.
func ad(name string) []byte { return []byte("outpost target v1\x00" + name) }

// Put adds or replaces a target after validating it.
func (s *Store) Put(ctx context.Context, c target.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return err
	}
	a, err := s.aead()
	if err != nil {
		return err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := a.Seal(nonce, nonce, plain, ad(c.Name))
	now := time.Now().UTC().Format(time.RFC3339)
	_, err = s.db.ExecContext(ctx, `INSERT INTO targets(name, kind, sealed, created_at, updated_at) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, sealed = excluded.sealed, updated_at = excluded.updated_at`,
		c.Name, c.Kind, sealed, now, now)
	if err != nil {
		return fmt.Errorf("targetstore: save %s: %w", c.Name, err)
	}
	return nil
}

// Get returns a target's full configuration, secrets included.
func (s *Store) Get(ctx context.Context, name string) (target.Config, error) {
	var sealed []byte
	err := s.db.QueryRowContext(ctx, `SELECT sealed FROM targets WHERE name = ?`, name).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return target.Config{}, fmt.Errorf("target %q: %w (see `outpost targets list`)", name, ErrNotFound)
	}
	if err != nil {
		return target.Config{}, fmt.Errorf("targetstore: %w", err)
	}
	return s.open(name, sealed)
}

func (s *Store) open(name string, sealed []byte) (target.Config, error) {
	var c target.Config
	a, err := s.aead()
	if err != nil {
		return c, err
	}
	if len(sealed) < a.NonceSize() {
		return c, fmt.Errorf("targetstore: target %q is damaged", name)
	}
	plain, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad(name))
	if err != nil {
		return c, fmt.Errorf("targetstore: target %q cannot be unsealed (credentials.key does not match this database); re-add the target", name)
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, fmt.Errorf("targetstore: target %q: %w", name, err)
	}
	return c, nil
}

// List returns every target, sorted by name, secrets included (callers show Redacted()).
func (s *Store) List(ctx context.Context) ([]target.Config, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, sealed FROM targets`)
	if err != nil {
		return nil, fmt.Errorf("targetstore: %w", err)
	}
	defer rows.Close()
	var out []target.Config
	for rows.Next() {
		var name string
		var sealed []byte
		if err := rows.Scan(&name, &sealed); err != nil {
			return nil, fmt.Errorf("targetstore: %w", err)
		}
		c, err := s.open(name, sealed)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, rows.Err()
}

// Delete removes a target. Its snapshots stay where they are.
func (s *Store) Delete(ctx context.Context, name string) error {
	r, err := s.db.ExecContext(ctx, `DELETE FROM targets WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("targetstore: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("target %q: %w", name, ErrNotFound)
	}
	return nil
}
