package homeserver

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // Dendrite's databases are SQLite files
)

// Dendrite offers no API to list accounts, count rooms or change an account's admin flag.
// These few operations read or write its SQLite databases directly. SQLite's locking makes
// that safe next to the running homeserver, and Dendrite reads the account type from the
// database on every request (no cache), so a change takes effect at once.

// Account types in userapi_accounts.account_type.
const (
	accountTypeUser  = 1
	accountTypeAdmin = 3
)

// Account is one local account.
type Account struct {
	Localpart   string    `json:"localpart"`
	UserID      string    `json:"user_id"`
	CreatedAt   time.Time `json:"created_at"`
	Admin       bool      `json:"admin"`
	Deactivated bool      `json:"deactivated"`
}

func openDB(path string, readOnly bool) (*sql.DB, error) {
	q := "?_pragma=busy_timeout(10000)"
	if readOnly {
		q += "&mode=ro"
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path}).String()+q)
	if err != nil {
		return nil, fmt.Errorf("homeserver: open %s: %w", path, err)
	}
	return db, nil
}

// ListAccounts returns the server's accounts (not appservice ones), oldest first.
func ListAccounts(ctx context.Context, c Config) ([]Account, error) {
	db, err := openDB(c.DatabasePath("userapi"), true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT localpart, created_ts, COALESCE(is_deactivated, 0), account_type
		FROM userapi_accounts WHERE server_name = ? AND appservice_id IS NULL ORDER BY created_ts, localpart`, c.ServerName)
	if err != nil {
		return nil, fmt.Errorf("homeserver: list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		var created int64
		var typ int
		if err := rows.Scan(&a.Localpart, &created, &a.Deactivated, &typ); err != nil {
			return nil, fmt.Errorf("homeserver: list accounts: %w", err)
		}
		a.UserID = "@" + a.Localpart + ":" + c.ServerName
		a.CreatedAt = time.UnixMilli(created).UTC()
		a.Admin = typ == accountTypeAdmin
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAdmin changes an active account's admin flag.
func SetAdmin(ctx context.Context, c Config, localpart string, admin bool) error {
	db, err := openDB(c.DatabasePath("userapi"), false)
	if err != nil {
		return err
	}
	defer db.Close()
	typ := accountTypeUser
	if admin {
		typ = accountTypeAdmin
	}
	res, err := db.ExecContext(ctx, `UPDATE userapi_accounts SET account_type = ?
		WHERE localpart = ? AND server_name = ? AND appservice_id IS NULL AND COALESCE(is_deactivated, 0) = 0
		AND account_type IN (?, ?)`, typ, localpart, c.ServerName, accountTypeUser, accountTypeAdmin)
	if err != nil {
		return fmt.Errorf("homeserver: set admin flag: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("homeserver: no active account %q", localpart)
	}
	return nil
}

// CountRooms returns how many rooms the homeserver knows.
func CountRooms(ctx context.Context, c Config) (int, error) {
	db, err := openDB(c.DatabasePath("roomserver"), true)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM roomserver_rooms`).Scan(&n); err != nil {
		return 0, fmt.Errorf("homeserver: count rooms: %w", err)
	}
	return n, nil
}

// SetPasswordHash replaces an account's password with a bcrypt hash made elsewhere (a
// provisioning manifest carries the hash, never the password). Dendrite stores and checks
// bcrypt hashes, so the hash is written as is.
func SetPasswordHash(ctx context.Context, c Config, localpart, hash string) error {
	db, err := openDB(c.DatabasePath("userapi"), false)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.ExecContext(ctx, `UPDATE userapi_accounts SET password_hash = ?
		WHERE localpart = ? AND server_name = ? AND COALESCE(is_deactivated, 0) = 0`, hash, localpart, c.ServerName)
	if err != nil {
		return fmt.Errorf("homeserver: set password hash: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("homeserver: no active account %q", localpart)
	}
	return nil
}
