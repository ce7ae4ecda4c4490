// Package settings is the appliance's desired state: one SQLite database (modernc.org/sqlite,
// pure Go) in the data directory. Every change is a single transaction, so a power cut leaves
// either the old settings or the new ones, never a mix.
package settings

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the settings database's name inside the data directory.
const FileName = "settings.db"

// Settings is the whole desired state of the appliance. Later features add fields here and a
// key in fields(); keys missing from the database read as the zero value.
type Settings struct {
	// SetupComplete flips once, at the end of first-boot setup. Before that the homeserver
	// does not run and ServerName may still change.
	SetupComplete    bool
	SetupCompletedAt time.Time
	// ServerName is the Matrix server name. It is part of every user and room ID, so it is
	// fixed once setup completes.
	ServerName string
	// Federation lets this homeserver talk to other homeservers. Off by default: a branch
	// office or an isolated site must not reach out.
	Federation bool

	// Secrets, generated with crypto/rand on first start. They never leave the box except
	// inside the generated dendrite.yaml (mode 0600) and encrypted snapshots.
	RegistrationSharedSecret string
	TURNSharedSecret         string
	// TLSMode is where the HTTPS certificate comes from: "box-ca" (default, the per-box
	// root), "acme" (an ACME CA on the LAN) or "upload" (a certificate the admin uploaded).
	TLSMode string
	// ACMEDirectory and ACMERootPEM configure the "acme" mode.
	ACMEDirectory string
	ACMERootPEM   string

	// TURN relay settings; empty values mean the defaults (see package turn).
	TURNOff          bool
	TURNRelayIP      string
	TURNPorts        string
	TURNAllowedPeers string

	// ServicePassword is the password of outpostd's own admin account on the homeserver
	// (@_outpost), which performs admin actions Dendrite only offers to admin users.
	ServicePassword string

	// Snapshots (see package snapshot and backup). SnapshotBoxKey (an age identity) and
	// SnapshotSigningKey (an Ed25519 seed) are generated on first use; RecoveryRecipient is
	// the public half of the operator's recovery key, EscrowRecipient an optional company
	// key. SnapshotTarget names the target scheduled snapshots go to; SnapshotTime is the
	// daily local time ("02:30"); SnapshotRetention is e.g. "7d 4w 6m".
	SnapshotBoxKey     string
	SnapshotSigningKey string
	RecoveryRecipient  string
	EscrowRecipient    string
	SnapshotTarget     string
	SnapshotTime       string
	SnapshotRetention  string
	SnapshotsOff       bool

	// PasswordChangeRequired lists (comma-separated) local parts whose password was a
	// one-time password from provisioning: they must set their own at the first sign-in.
	PasswordChangeRequired string
	// Provisioning: where the manifest came from and when; the network and branding it
	// carried (JSON, applied by the platform and shown in the console and Element).
	ProvisionedFrom string
	ProvisionedAt   time.Time
	NetworkConfig   string
	BrandName       string
	SupportContact  string
}

// field binds a database key to a Settings field.
type field struct {
	key string
	ptr any // *string, *bool or *time.Time
}

func (s *Settings) fields() []field {
	return []field{
		{"setup_complete", &s.SetupComplete},
		{"setup_completed_at", &s.SetupCompletedAt},
		{"server_name", &s.ServerName},
		{"federation", &s.Federation},
		{"registration_shared_secret", &s.RegistrationSharedSecret},
		{"turn_shared_secret", &s.TURNSharedSecret},
		{"service_password", &s.ServicePassword},
		{"tls_mode", &s.TLSMode},
		{"acme_directory", &s.ACMEDirectory},
		{"acme_root_pem", &s.ACMERootPEM},
		{"turn_off", &s.TURNOff},
		{"turn_relay_ip", &s.TURNRelayIP},
		{"turn_ports", &s.TURNPorts},
		{"turn_allowed_peers", &s.TURNAllowedPeers},
		{"snapshot_box_key", &s.SnapshotBoxKey},
		{"snapshot_signing_key", &s.SnapshotSigningKey},
		{"recovery_recipient", &s.RecoveryRecipient},
		{"escrow_recipient", &s.EscrowRecipient},
		{"snapshot_target", &s.SnapshotTarget},
		{"snapshot_time", &s.SnapshotTime},
		{"snapshot_retention", &s.SnapshotRetention},
		{"snapshots_off", &s.SnapshotsOff},
		{"password_change_required", &s.PasswordChangeRequired},
		{"provisioned_from", &s.ProvisionedFrom},
		{"provisioned_at", &s.ProvisionedAt},
		{"network_config", &s.NetworkConfig},
		{"brand_name", &s.BrandName},
		{"support_contact", &s.SupportContact},
	}
}

func encode(ptr any) string {
	switch p := ptr.(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Time:
		if p.IsZero() {
			return ""
		}
		return p.UTC().Format(time.RFC3339Nano)
	}
	panic(fmt.Sprintf("settings: unsupported field type %T", ptr))
}

func decode(ptr any, v string) error {
	switch p := ptr.(type) {
	case *string:
		*p = v
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		*p = b
	case *time.Time:
		if v == "" {
			*p = time.Time{}
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return err
		}
		*p = t
	default:
		panic(fmt.Sprintf("settings: unsupported field type %T", ptr))
	}
	return nil
}

// Store is the open settings database.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the settings database in dir, applies pending schema
// migrations and generates any missing secrets.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("settings: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// synchronous(FULL): settings change rarely and each change must survive a power cut.
	// _txlock=immediate takes the write lock at BEGIN so read-modify-write cannot race.
	dsn := (&url.URL{Scheme: "file", Path: path}).String() +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("settings: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.Update(ctx, generateSecrets); err != nil {
		db.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("settings: restrict %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the database to packages that keep their own tables in it (audit log,
// invites). They create those tables through Migrations, never ad hoc.
func (s *Store) DB() *sql.DB { return s.db }

// Get returns the current settings.
func (s *Store) Get(ctx context.Context) (Settings, error) {
	return load(ctx, s.db)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func load(ctx context.Context, q querier) (Settings, error) {
	var st Settings
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return st, fmt.Errorf("settings: read: %w", err)
	}
	defer rows.Close()
	values := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return st, fmt.Errorf("settings: read: %w", err)
		}
		values[k] = v
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("settings: read: %w", err)
	}
	for _, f := range st.fields() {
		v, ok := values[f.key]
		if !ok {
			continue
		}
		if err := decode(f.ptr, v); err != nil {
			return st, fmt.Errorf("settings: key %q has a bad value: %w", f.key, err)
		}
	}
	return st, nil
}

// ErrUnchanged may be returned by an Update function to end the transaction without writing.
var ErrUnchanged = errors.New("settings unchanged")

// Update runs fn on the current settings inside one write transaction and stores what fn
// leaves behind. If fn returns an error nothing is written and the error is returned
// (ErrUnchanged is swallowed). Concurrent Updates are serialised by SQLite's write lock.
func (s *Store) Update(ctx context.Context, fn func(*Settings) error) error {
	return s.UpdateTx(ctx, func(_ *sql.Tx, st *Settings) error { return fn(st) })
}

// UpdateTx is Update for callers that must write their own tables in the same transaction
// (an audit record next to the change it describes).
func (s *Store) UpdateTx(ctx context.Context, fn func(*sql.Tx, *Settings) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("settings: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	st, err := load(ctx, tx)
	if err != nil {
		return err
	}
	before := st
	if err := fn(tx, &st); err != nil {
		if errors.Is(err, ErrUnchanged) {
			return nil
		}
		return err
	}
	old := before.fields()
	for i, f := range st.fields() {
		v := encode(f.ptr)
		if v == encode(old[i].ptr) {
			continue
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
			f.key, v); err != nil {
			return fmt.Errorf("settings: write %q: %w", f.key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("settings: commit: %w", err)
	}
	return nil
}

func generateSecrets(st *Settings) error {
	changed := false
	for _, p := range []*string{&st.RegistrationSharedSecret, &st.TURNSharedSecret, &st.ServicePassword} {
		if *p != "" {
			continue
		}
		v, err := NewSecret(32)
		if err != nil {
			return err
		}
		*p = v
		changed = true
	}
	if !changed {
		return ErrUnchanged
	}
	return nil
}

// NewSecret returns n random bytes from crypto/rand, URL-safe base64 without padding.
func NewSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("settings: read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
