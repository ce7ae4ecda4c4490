package settings

import (
	"context"
	"fmt"
)

// migrations are applied in order; the database's PRAGMA user_version counts how many have
// run. Never edit or reorder a released entry: append a new one.
var migrations = []string{
	// 1: key/value desired state.
	`CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) STRICT`,
	// 2: audit log of every admin action (owned by package audit).
	`CREATE TABLE audit_log (
		id     INTEGER PRIMARY KEY,
		at     TEXT NOT NULL,
		actor  TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL DEFAULT '',
		detail TEXT NOT NULL DEFAULT ''
	) STRICT`,
	// 3: invitations (owned by package invites). Only a hash of each code is kept.
	`CREATE TABLE invites (
		id         INTEGER PRIMARY KEY,
		code_hash  TEXT NOT NULL UNIQUE,
		created_by TEXT NOT NULL,
		created_at TEXT NOT NULL,
		expires_at TEXT NOT NULL,
		note       TEXT NOT NULL DEFAULT '',
		used_at    TEXT NOT NULL DEFAULT '',
		used_by    TEXT NOT NULL DEFAULT '',
		revoked_at TEXT NOT NULL DEFAULT ''
	) STRICT`,
	// 4: snapshot targets (owned by package targetstore); config is sealed with the key in
	// credentials.key, so a copy of this database alone does not reveal passwords.
	`CREATE TABLE targets (
		name       TEXT PRIMARY KEY,
		kind       TEXT NOT NULL,
		sealed     BLOB NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	) STRICT`,
	// 5: snapshot, verification, prune and restore runs (owned by package backup).
	`CREATE TABLE snapshot_runs (
		id          INTEGER PRIMARY KEY,
		kind        TEXT NOT NULL,
		target      TEXT NOT NULL,
		snapshot_id TEXT NOT NULL DEFAULT '',
		reason      TEXT NOT NULL DEFAULT '',
		started_at  TEXT NOT NULL,
		finished_at TEXT NOT NULL DEFAULT '',
		ok          INTEGER NOT NULL DEFAULT 0,
		error       TEXT NOT NULL DEFAULT '',
		detail      TEXT NOT NULL DEFAULT '{}'
	) STRICT`,
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("settings: read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("settings: database schema version %d is newer than this outpostd (%d); run a newer outpostd or restore an older snapshot", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("settings: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback() //nolint:errcheck
			return fmt.Errorf("settings: migration %d: %w", i+1, err)
		}
		// user_version is part of the database header, so it commits atomically with the DDL.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback() //nolint:errcheck
			return fmt.Errorf("settings: migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("settings: migration %d: commit: %w", i+1, err)
		}
	}
	return nil
}
