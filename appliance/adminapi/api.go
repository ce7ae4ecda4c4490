// Package adminapi is outpostd's local control API: JSON over HTTP on a unix socket in the
// data directory (mode 0600), used by the `outpost` CLI. Whoever can open the socket is root
// or the appliance's own user, so it needs no further authentication.
package adminapi

import (
	"time"

	"github.com/outpost-im/outpost/appliance/homeserver"
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
	DataBytes        int64             `json:"data_bytes"`
	DiskFreeBytes    int64             `json:"disk_free_bytes"`
	HTTPAddr         string            `json:"http_addr"`
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

// AddUserResponse names the new account.
type AddUserResponse struct {
	UserID string `json:"user_id"`
}

// Error is every failed answer's body.
type Error struct {
	Message string `json:"error"`
	// Field names the input at fault, for validation errors.
	Field string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }
