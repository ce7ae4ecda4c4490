// Package invites lets an administrator hand a new colleague a one-time code (or link) with
// which they create their own account. Registration on the homeserver stays closed: the
// code is checked here and the account is made through package people.
package invites

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/claim"
	"github.com/outpost-im/outpost/appliance/people"
	"github.com/outpost-im/outpost/appliance/settings"
)

// Invite is one invitation. The code itself is shown once, at creation; only its hash is kept.
type Invite struct {
	ID        int64     `json:"id"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Note      string    `json:"note,omitempty"`
	UsedAt    time.Time `json:"used_at,omitzero"`
	UsedBy    string    `json:"used_by,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Status    string    `json:"status"` // open, used, revoked, expired
}

// Limits on lifetimes.
const (
	DefaultTTL = 7 * 24 * time.Hour
	MaxTTL     = 90 * 24 * time.Hour
)

// ErrInvalid is any code that cannot be redeemed. It does not say why, so a guesser learns
// nothing; the person is told what to do.
var ErrInvalid = errors.New("this invitation is not valid: it may have expired, been used or been withdrawn. Ask your administrator for a new one")

// Service manages invitations.
type Service struct {
	Store  *settings.Store
	People *people.Service
	Now    func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func hash(code string) string {
	sum := sha256.Sum256([]byte(claim.Normalize(code)))
	return hex.EncodeToString(sum[:])
}

const tsFormat = time.RFC3339Nano

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(tsFormat)
}

// Create makes an invitation valid for ttl and returns it with its code.
func (s *Service) Create(ctx context.Context, actor audit.Actor, ttl time.Duration, note string) (Invite, string, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Hour || ttl > MaxTTL {
		return Invite{}, "", &accounts.FieldError{Field: "expires", Message: "choose between 1 hour and 90 days"}
	}
	if len(note) > 200 {
		return Invite{}, "", &accounts.FieldError{Field: "note", Message: "keep the note under 200 characters"}
	}
	// Four groups: ~74 bits, and the rate limit on redemption makes guessing hopeless.
	a, err := claim.Generate()
	if err != nil {
		return Invite{}, "", err
	}
	b, err := claim.Generate()
	if err != nil {
		return Invite{}, "", err
	}
	code := a + "-" + b[:4]
	now := s.now()
	inv := Invite{CreatedBy: actor.String(), CreatedAt: now, ExpiresAt: now.Add(ttl), Note: note, Status: "open"}
	err = s.Store.UpdateTx(ctx, func(tx *sql.Tx, _ *settings.Settings) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO invites(code_hash, created_by, created_at, expires_at, note) VALUES(?, ?, ?, ?, ?)`,
			hash(code), inv.CreatedBy, ts(inv.CreatedAt), ts(inv.ExpiresAt), note)
		if err != nil {
			return fmt.Errorf("invites: create: %w", err)
		}
		inv.ID, _ = res.LastInsertId()
		return audit.Record(ctx, tx, actor.String(), "invite.create", fmt.Sprintf("invite #%d", inv.ID), "expires "+ts(inv.ExpiresAt))
	})
	if err != nil {
		return Invite{}, "", err
	}
	return inv, code, nil
}

// List returns all invitations, newest first.
func (s *Service) List(ctx context.Context) ([]Invite, error) {
	rows, err := s.Store.DB().QueryContext(ctx, `SELECT id, created_by, created_at, expires_at, note, used_at, used_by, revoked_at FROM invites ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("invites: list: %w", err)
	}
	defer rows.Close()
	now := s.now()
	var out []Invite
	for rows.Next() {
		var inv Invite
		var created, expires, used, revoked string
		if err := rows.Scan(&inv.ID, &inv.CreatedBy, &created, &expires, &inv.Note, &used, &inv.UsedBy, &revoked); err != nil {
			return nil, fmt.Errorf("invites: list: %w", err)
		}
		inv.CreatedAt, _ = time.Parse(tsFormat, created)
		inv.ExpiresAt, _ = time.Parse(tsFormat, expires)
		inv.UsedAt, _ = time.Parse(tsFormat, used)
		inv.RevokedAt, _ = time.Parse(tsFormat, revoked)
		switch {
		case used != "":
			inv.Status = "used"
		case revoked != "":
			inv.Status = "revoked"
		case !now.Before(inv.ExpiresAt):
			inv.Status = "expired"
		default:
			inv.Status = "open"
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

// Revoke withdraws an open invitation.
func (s *Service) Revoke(ctx context.Context, actor audit.Actor, id int64) error {
	return s.Store.UpdateTx(ctx, func(tx *sql.Tx, _ *settings.Settings) error {
		res, err := tx.ExecContext(ctx, `UPDATE invites SET revoked_at = ? WHERE id = ? AND used_at = '' AND revoked_at = ''`, ts(s.now()), id)
		if err != nil {
			return fmt.Errorf("invites: revoke: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("invitation #%d does not exist or is already used or withdrawn", id)
		}
		return audit.Record(ctx, tx, actor.String(), "invite.revoke", fmt.Sprintf("invite #%d", id), "")
	})
}

// Redeem creates an account with an invitation code. The invitation is claimed in one
// transaction before the account is made, so two people cannot use one code; if making
// the account fails the claim is released.
func (s *Service) Redeem(ctx context.Context, code, username, password, clientIP string) (string, error) {
	st, err := s.Store.Get(ctx)
	if err != nil {
		return "", err
	}
	if err := accounts.ValidateUsername("username", username, st.ServerName); err != nil {
		return "", err
	}
	if err := accounts.ValidatePassword("password", password); err != nil {
		return "", err
	}
	if strings.TrimSpace(code) == "" {
		return "", ErrInvalid
	}
	userID := "@" + username + ":" + st.ServerName
	var id int64
	err = s.Store.UpdateTx(ctx, func(tx *sql.Tx, _ *settings.Settings) error {
		now := ts(s.now())
		err := tx.QueryRowContext(ctx, `SELECT id FROM invites WHERE code_hash = ? AND used_at = '' AND revoked_at = '' AND expires_at > ?`,
			hash(code), now).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalid
		}
		if err != nil {
			return fmt.Errorf("invites: redeem: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE invites SET used_at = ?, used_by = ? WHERE id = ?`, now, userID, id)
		return err
	})
	if err != nil {
		return "", err
	}
	actor := audit.Actor{Via: fmt.Sprintf("invite #%d", id), IP: clientIP}
	created, _, err := s.People.Create(ctx, actor, username, password, false)
	if err != nil {
		// Give the invitation back: the person can fix the name and try again.
		if _, rerr := s.Store.DB().ExecContext(context.WithoutCancel(ctx), `UPDATE invites SET used_at = '', used_by = '' WHERE id = ? AND used_by = ?`, id, userID); rerr != nil {
			return "", fmt.Errorf("%w (and the invitation could not be released: %v)", err, rerr)
		}
		return "", err
	}
	return created, nil
}
