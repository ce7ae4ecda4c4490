// Package accounts creates and checks Matrix accounts on the box. Registration on the
// homeserver is closed; every account is made here, through Dendrite's shared-secret admin
// API, by the setup wizard, the CLI and the admin console alike.
package accounts

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/outpost-im/outpost/appliance/homeserver"
)

// FieldError is bad input, named by the field it is about, with a message that says what
// is allowed. Interfaces show Message next to the field; the CLI prints it as one line.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Matrix user ID localparts as Dendrite accepts them.
var localpartRe = regexp.MustCompile(`^[0-9a-z_\-=./+]+$`)

// ServiceLocalpart is outpostd's own admin account, which performs the admin actions
// Dendrite only offers to admin users. People cannot take the name (ValidateUsername).
const ServiceLocalpart = "outpost-service"

// IsSystem reports whether a localpart belongs to the system rather than a person: the
// service account and Dendrite's own accounts (server notices), which start with '_'.
func IsSystem(localpart string) bool {
	return localpart == ServiceLocalpart || strings.HasPrefix(localpart, "_")
}

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 10

// ValidateUsername checks a localpart ("alice", not "@alice:server").
func ValidateUsername(field, name, serverName string) error {
	switch {
	case name == "":
		return &FieldError{field, "enter a user name"}
	case strings.HasPrefix(name, "@"):
		return &FieldError{field, "give the name without '@' and server, for example alice"}
	case IsSystem(name):
		return &FieldError{field, "this name is reserved for the system; choose another"}
	case !localpartRe.MatchString(name):
		return &FieldError{field, "use only lower-case letters a-z, digits 0-9 and . _ - = / +"}
	case len("@"+name+":"+serverName) > 255:
		return &FieldError{field, "the full user ID would exceed 255 characters; choose a shorter name"}
	}
	return nil
}

// ValidatePassword enforces a minimum length (length beats composition rules) and a sane
// maximum (bcrypt reads only 72 bytes).
func ValidatePassword(field, password string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinPasswordLength:
		return &FieldError{field, fmt.Sprintf("use at least %d characters (a few words work well)", MinPasswordLength)}
	case len(password) > 72:
		return &FieldError{field, "use at most 72 bytes; longer passwords are cut off by the hash"}
	case strings.TrimSpace(password) != password:
		return &FieldError{field, "remove the spaces at the start or end"}
	}
	return nil
}

// ErrExists reports that the user name is taken.
type ErrExists struct{ UserID string }

func (e *ErrExists) Error() string { return "user " + e.UserID + " already exists" }

// Create makes an account on the running homeserver and returns its user ID.
func Create(ctx context.Context, hc *http.Client, sharedSecret, serverName, username, password string, admin bool) (string, error) {
	if err := ValidateUsername("username", username, serverName); err != nil {
		return "", err
	}
	if err := ValidatePassword("password", password); err != nil {
		return "", err
	}
	id, err := homeserver.RegisterUser(ctx, hc, sharedSecret, username, password, admin)
	switch {
	case homeserver.ErrCodeIs(err, "M_USER_IN_USE"):
		return "", &ErrExists{UserID: "@" + username + ":" + serverName}
	case homeserver.ErrCodeIs(err, "M_INVALID_USERNAME"):
		return "", &FieldError{"username", "the homeserver refused this name; use lower-case letters, digits and . _ -"}
	case homeserver.ErrCodeIs(err, "M_WEAK_PASSWORD"):
		return "", &FieldError{"password", "the homeserver refused this password as too weak; choose a longer one"}
	case err != nil:
		return "", fmt.Errorf("create %s: %w", username, err)
	}
	return id, nil
}
