// Package adminapi is outpostd's local control API: JSON over HTTP on a unix socket in the
// data directory (mode 0600), used by the `outpost` CLI. Whoever can open the socket is root
// or the appliance's own user, so it needs no further authentication.
package adminapi

import (
	"time"

	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/invites"
	"github.com/outpost-im/outpost/appliance/turn"
)

// SocketName is the admin socket's file name in the data directory.
const SocketName = "admin.sock"

// Status is what `outpost status` shows.
type Status struct {
	SetupComplete    bool              `json:"setup_complete"`
	SetupCompletedAt time.Time         `json:"setup_completed_at,omitzero"`
	ServerName       string            `json:"server_name,omitempty"`
	Federation       bool              `json:"federation"`
	Homeserver       homeserver.Status `json:"homeserver"`
	Versions         Versions          `json:"versions"`
	StartedAt        time.Time         `json:"started_at"`
	DataDir          string            `json:"data_dir"`
	Hardware         string            `json:"hardware,omitempty"`
	DataBytes        int64             `json:"data_bytes"`
	DiskFreeBytes    int64             `json:"disk_free_bytes"`
	HTTPAddr         string            `json:"http_addr"`
	HTTPSURL         string            `json:"https_url,omitempty"`
	TLSMode          string            `json:"tls_mode,omitempty"`
	RootFingerprint  string            `json:"root_fingerprint,omitempty"`
	Users            int               `json:"users"`
	Rooms            int               `json:"rooms"`
	TURN             *TURNStatus       `json:"turn,omitempty"`
}

// TURNStatus is the relay's configuration in force and its counters.
type TURNStatus struct {
	turn.Effective
	Stats turn.Stats `json:"stats"`
}

// Versions of the running parts.
type Versions struct {
	Outpost  string `json:"outpost"`
	Dendrite string `json:"dendrite,omitempty"`
	Go       string `json:"go"`
}

// AddUserRequest creates an account.
type AddUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Admin    bool   `json:"admin"`
}

// AddUserResponse names the new account. Password is set only when it was generated.
type AddUserResponse struct {
	UserID   string `json:"user_id"`
	Password string `json:"password,omitempty"`
}

// PasswordRequest carries a new password; empty asks for a generated one-time password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// PasswordResponse returns a generated one-time password.
type PasswordResponse struct {
	Password string `json:"password,omitempty"`
}

// AdminFlagRequest promotes or demotes an account.
type AdminFlagRequest struct {
	Admin bool `json:"admin"`
}

// CreateInviteRequest makes an invitation; Expires is a Go duration ("72h"), empty for 7 days.
type CreateInviteRequest struct {
	Expires string `json:"expires"`
	Note    string `json:"note"`
}

// CreateInviteResponse returns the invitation and its code, shown once.
type CreateInviteResponse struct {
	Invite invites.Invite `json:"invite"`
	Code   string         `json:"code"`
}

// SetupCodeResponse is the claim code.
type SetupCodeResponse struct {
	Code string `json:"code"`
}

// Error is every failed answer's body.
type Error struct {
	Message string `json:"error"`
	// Field names the input at fault, for validation errors.
	Field string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// TLSModeResponse carries warnings about an accepted certificate (expiring soon).
type TLSModeResponse struct {
	Warnings []string `json:"warnings,omitempty"`
}
