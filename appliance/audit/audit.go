// Package audit records every administrative action (who, what, when) in the settings
// database. A record is written in the same transaction as the change where the change is
// ours; for changes on the homeserver it is written right after the homeserver confirms.
package audit

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Entry is one administrative action.
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`  // "@alice:box (console 192.168.1.9)", "cli", "setup wizard (…)"
	Action string    `json:"action"` // "user.create", "invite.revoke", ...
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Execer is a *sql.DB or *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Record appends an entry. Details must never contain secrets.
func Record(ctx context.Context, ex Execer, actor, action, target, detail string) error {
	_, err := ex.ExecContext(ctx,
		`INSERT INTO audit_log(at, actor, action, target, detail) VALUES(?, ?, ?, ?, ?)`,
		time.Now().UTC().Format(time.RFC3339Nano), actor, action, target, detail)
	if err != nil {
		return fmt.Errorf("audit: record %s: %w", action, err)
	}
	return nil
}

// List returns the newest entries first.
func List(ctx context.Context, db *sql.DB, limit int) ([]Entry, error) {
	if limit <= 0 || limit > 10000 {
		limit = 200
	}
	rows, err := db.QueryContext(ctx, `SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		e.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Actor is who performed an action, and through which door.
type Actor struct {
	UserID string // Matrix user, when known
	Via    string // "console", "cli", "setup wizard", "invite", "provisioning"
	IP     string // client address for network doors
}

func (a Actor) String() string {
	s := a.Via
	if a.UserID != "" {
		s = a.UserID + " (" + a.Via
		if a.IP != "" {
			s += " " + a.IP
		}
		return s + ")"
	}
	if a.IP != "" {
		s += " (" + a.IP + ")"
	}
	return s
}
