// Package setup turns a fresh box into a working homeserver: it validates the first-boot
// answers, starts the homeserver, creates the first admin and marks setup complete. The CLI,
// the web wizard and provisioning all call Complete; there is no other way to set up a box.
package setup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/settings"
)

// Request holds the answers to first-boot setup.
type Request struct {
	ServerName    string `json:"server_name"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	Federation    bool   `json:"federation"`
	// TLSMode is "box-ca" (default, also when empty) or "acme" with the two ACME fields.
	// An uploaded certificate is set up later in the console or CLI.
	TLSMode       string `json:"tls_mode,omitempty"`
	ACMEDirectory string `json:"acme_directory,omitempty"`
	ACMERootPEM   string `json:"acme_root_pem,omitempty"`
}

// Homeserver is what setup needs from the supervisor.
type Homeserver interface {
	Start(ctx context.Context)
	Stop()
	WaitReady(ctx context.Context) error
	Client() *http.Client
	Status() homeserver.Status
}

// ErrAlreadySetUp is returned once setup has completed; a box is set up exactly once.
var ErrAlreadySetUp = errors.New("this box is already set up; manage it from the admin console or `outpost users`")

// Service completes setup.
type Service struct {
	Store *settings.Store
	HS    Homeserver
	// HomeserverDir holds Dendrite's state. Anything in it before setup completes is left over
	// from an interrupted attempt and is removed, so a retry never mixes two server names.
	HomeserverDir string
	Log           *slog.Logger
	// OnComplete runs after setup is committed (the daemon republishes gateway state).
	OnComplete func(settings.Settings)
	// ReadyTimeout bounds the wait for the freshly started homeserver.
	ReadyTimeout time.Duration

	mu sync.Mutex
}

// ValidateServerName checks a Matrix server name: a DNS name or IP address, optionally with
// a port, by the spec's grammar (gomatrixserverlib's parser).
func ValidateServerName(name string) error {
	const field = "server_name"
	switch {
	case name == "":
		return &accounts.FieldError{Field: field, Message: "enter the name people will use to reach this box, for example chat.example.com or its IP address"}
	case strings.ContainsAny(name, "/@ ") || strings.Contains(name, "://"):
		return &accounts.FieldError{Field: field, Message: "give only a host name or IP address (and optional :port), without http:// or paths"}
	case name != strings.ToLower(name):
		return &accounts.FieldError{Field: field, Message: "use lower-case letters only"}
	case len(name) > 230:
		return &accounts.FieldError{Field: field, Message: "too long; keep it under 230 characters"}
	}
	host, _, ok := spec.ParseAndValidateServerName(spec.ServerName(name))
	if !ok {
		return &accounts.FieldError{Field: field, Message: "not a valid server name: use a host name like chat.example.com, an IPv4 address, or [IPv6], optionally followed by :port"}
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && (ip.IsUnspecified() || ip.IsMulticast()) {
		return &accounts.FieldError{Field: field, Message: "this address cannot identify a server; use the box's LAN address or a name"}
	}
	return nil
}

// ValidateTLS checks the certificate choice made at setup.
func ValidateTLS(mode, directory, rootPEM string) error {
	switch mode {
	case "", "box-ca":
		return nil
	case "acme":
		u, err := url.Parse(directory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return &accounts.FieldError{Field: "acme_directory", Message: "give the ACME directory as an https:// URL, e.g. https://ca.lan/acme/acme/directory"}
		}
		if !strings.Contains(rootPEM, "BEGIN CERTIFICATE") {
			return &accounts.FieldError{Field: "acme_root_pem", Message: "paste the root certificate (PEM) of the ACME CA"}
		}
		return nil
	}
	return &accounts.FieldError{Field: "tls_mode", Message: "choose box-ca or acme (an uploaded certificate is set up after setup)"}
}

// Validate checks a request without changing anything.
func Validate(r Request) error {
	if err := ValidateServerName(r.ServerName); err != nil {
		return err
	}
	if err := ValidateTLS(r.TLSMode, r.ACMEDirectory, r.ACMERootPEM); err != nil {
		return err
	}
	if err := accounts.ValidateUsername("admin_user", r.AdminUser, r.ServerName); err != nil {
		return err
	}
	return accounts.ValidatePassword("admin_password", r.AdminPassword)
}

// waitReady waits for the fresh homeserver, giving up early if it keeps failing to start.
func (s *Service) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.HS.WaitReady(wctx)
		cancel()
		if err == nil {
			return nil
		}
		st := s.HS.Status()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case st.Restarts >= 2:
			return fmt.Errorf("setup: the homeserver did not start: %s", st.LastExit)
		case time.Now().After(deadline):
			return fmt.Errorf("setup: the homeserver did not start within %s (state %s)", timeout, st.State)
		}
	}
}

// Complete performs setup. On any failure the box stays not set up, and the next attempt
// starts from scratch.
func (s *Service) Complete(ctx context.Context, actor audit.Actor, r Request) (err error) {
	if err := Validate(r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.Store.Get(ctx)
	if err != nil {
		return err
	}
	if st.SetupComplete {
		return ErrAlreadySetUp
	}

	s.HS.Stop()
	if err := os.RemoveAll(s.HomeserverDir); err != nil {
		return fmt.Errorf("setup: clear an earlier attempt: %w", err)
	}
	// The homeserver renders its config from the settings, so the answers go in first, as
	// provisional values: SetupComplete stays false until the admin exists.
	if err := s.Store.Update(ctx, func(st *settings.Settings) error {
		st.ServerName = r.ServerName
		st.Federation = r.Federation
		return nil
	}); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.HS.Stop()
		}
	}()
	s.HS.Start(context.WithoutCancel(ctx))
	timeout := s.ReadyTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	if err := s.waitReady(ctx, timeout); err != nil {
		return err
	}
	if _, err := accounts.Create(ctx, s.HS.Client(), st.RegistrationSharedSecret, r.ServerName, r.AdminUser, r.AdminPassword, true); err != nil {
		return fmt.Errorf("setup: create the admin account: %w", err)
	}
	var done settings.Settings
	if err := s.Store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		st.TLSMode, st.ACMEDirectory, st.ACMERootPEM = r.TLSMode, r.ACMEDirectory, r.ACMERootPEM
		if st.TLSMode == "" {
			st.TLSMode = "box-ca"
		}
		st.SetupComplete = true
		st.SetupCompletedAt = time.Now().UTC()
		done = *st
		return audit.Record(ctx, tx, actor.String(), "setup.complete", r.ServerName,
			fmt.Sprintf("admin=@%s:%s, federation=%t", r.AdminUser, r.ServerName, r.Federation))
	}); err != nil {
		return err
	}
	s.Log.Info("setup complete", "server_name", r.ServerName, "admin", r.AdminUser, "federation", r.Federation, "by", actor.String())
	if s.OnComplete != nil {
		s.OnComplete(done)
	}
	return nil
}
