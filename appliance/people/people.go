// Package people manages the box's accounts: list, create (with a one-time initial
// password), reset password, deactivate, and the admin flag. The admin console and the CLI
// both call it, and every change lands in the audit log.
package people

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/claim"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/settings"
)

// Homeserver is what people needs from the supervisor.
type Homeserver interface {
	Client() *http.Client
	WaitReady(ctx context.Context) error
}

// Service manages accounts.
type Service struct {
	Store *settings.Store
	HS    Homeserver
	// HSConfig locates the homeserver's databases.
	HSConfig func(ctx context.Context) (homeserver.Config, error)
	Log      *slog.Logger

	mu    sync.Mutex
	token string // the service account's access token, once signed in
}

// ErrNotSetUp is returned before first-boot setup.
var ErrNotSetUp = errors.New("this box is not set up yet; run `outpost setup` first")

// ErrNotFound names an unknown or already deactivated account.
type ErrNotFound struct{ Name string }

func (e *ErrNotFound) Error() string { return "no active account " + e.Name }

// Refused is an action that would leave the box without an administrator, or similar.
type Refused struct{ Reason string }

func (e *Refused) Error() string { return e.Reason }

type env struct {
	st  settings.Settings
	cfg homeserver.Config
	hc  *http.Client
}

func (s *Service) env(ctx context.Context) (env, error) {
	st, err := s.Store.Get(ctx)
	if err != nil {
		return env{}, err
	}
	if !st.SetupComplete {
		return env{}, ErrNotSetUp
	}
	cfg, err := s.HSConfig(ctx)
	if err != nil {
		return env{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.HS.WaitReady(wctx); err != nil {
		return env{}, fmt.Errorf("the homeserver is not running; check `outpost status`: %w", err)
	}
	return env{st: st, cfg: cfg, hc: s.HS.Client()}, nil
}

// localpart accepts "alice" or "@alice:server".
func localpart(name, serverName string) string {
	name = strings.TrimSpace(name)
	if strings.HasPrefix(name, "@") {
		name = strings.TrimSuffix(strings.TrimPrefix(name, "@"), ":"+serverName)
	}
	return name
}

// List returns people's accounts (system accounts hidden), oldest first.
func (s *Service) List(ctx context.Context) ([]homeserver.Account, error) {
	e, err := s.env(ctx)
	if err != nil {
		return nil, err
	}
	all, err := homeserver.ListAccounts(ctx, e.cfg)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, a := range all {
		if !accounts.IsSystem(a.Localpart) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Lookup returns one account (active or not).
func (s *Service) Lookup(ctx context.Context, name string) (homeserver.Account, error) {
	list, err := s.List(ctx)
	if err != nil {
		return homeserver.Account{}, err
	}
	st, _ := s.Store.Get(ctx)
	lp := localpart(name, st.ServerName)
	for _, a := range list {
		if a.Localpart == lp {
			return a, nil
		}
	}
	return homeserver.Account{}, &ErrNotFound{Name: name}
}

// NewOneTimePassword returns a random initial password, easy to read out and type
// ("KCFM-9TQA-VX3R-7HDE", about 74 bits).
func NewOneTimePassword() (string, error) {
	a, err := claim.Generate()
	if err != nil {
		return "", err
	}
	b, err := claim.Generate()
	if err != nil {
		return "", err
	}
	return a + "-" + b[:4], nil
}

// Create makes an account. With an empty password a one-time password is generated and
// returned; it is shown once and never stored.
func (s *Service) Create(ctx context.Context, actor audit.Actor, username, password string, admin bool) (userID, generated string, err error) {
	e, err := s.env(ctx)
	if err != nil {
		return "", "", err
	}
	how := "chosen password"
	if password == "" {
		if generated, err = NewOneTimePassword(); err != nil {
			return "", "", err
		}
		password, how = generated, "one-time password"
	}
	userID, err = accounts.Create(ctx, e.hc, e.st.RegistrationSharedSecret, e.st.ServerName, username, password, admin)
	if err != nil {
		return "", "", err
	}
	if err := audit.Record(ctx, s.Store.DB(), actor.String(), "user.create", userID, fmt.Sprintf("admin=%t, %s", admin, how)); err != nil {
		return userID, generated, err
	}
	s.Log.Info("user created", "user_id", userID, "admin", admin, "by", actor.String())
	return userID, generated, nil
}

// serviceToken signs in outpostd's own admin account, creating it on first use.
func (s *Service) serviceToken(ctx context.Context, e env, fresh bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && !fresh {
		return s.token, nil
	}
	token, _, err := homeserver.Login(ctx, e.hc, accounts.ServiceLocalpart, e.st.ServicePassword, "")
	if homeserver.ErrCodeIs(err, "M_FORBIDDEN") {
		// Not created yet (or a restore brought back a homeserver without it).
		if _, rerr := homeserver.RegisterUser(ctx, e.hc, e.st.RegistrationSharedSecret, accounts.ServiceLocalpart, e.st.ServicePassword, true); rerr != nil && !homeserver.ErrCodeIs(rerr, "M_USER_IN_USE") {
			return "", fmt.Errorf("create the service account: %w", rerr)
		}
		token, _, err = homeserver.Login(ctx, e.hc, accounts.ServiceLocalpart, e.st.ServicePassword, "")
	}
	if err != nil {
		return "", fmt.Errorf("sign in the service account: %w", err)
	}
	s.token = token
	return token, nil
}

// asService runs fn with the service account's token, signing in again once if the
// token has gone stale (homeserver restored, devices purged).
func (s *Service) asService(ctx context.Context, e env, fn func(token string) error) error {
	token, err := s.serviceToken(ctx, e, false)
	if err != nil {
		return err
	}
	err = fn(token)
	if homeserver.ErrCodeIs(err, "M_UNKNOWN_TOKEN") {
		if token, err = s.serviceToken(ctx, e, true); err != nil {
			return err
		}
		err = fn(token)
	}
	return err
}

func (s *Service) activeAccount(ctx context.Context, e env, name string) (homeserver.Account, error) {
	lp := localpart(name, e.st.ServerName)
	if accounts.IsSystem(lp) {
		return homeserver.Account{}, &ErrNotFound{Name: name}
	}
	all, err := homeserver.ListAccounts(ctx, e.cfg)
	if err != nil {
		return homeserver.Account{}, err
	}
	for _, a := range all {
		if a.Localpart == lp && !a.Deactivated {
			return a, nil
		}
	}
	return homeserver.Account{}, &ErrNotFound{Name: name}
}

// ResetPassword sets a new password and signs the account out everywhere. With an empty
// password a one-time password is generated and returned.
func (s *Service) ResetPassword(ctx context.Context, actor audit.Actor, name, password string) (generated string, err error) {
	e, err := s.env(ctx)
	if err != nil {
		return "", err
	}
	acct, err := s.activeAccount(ctx, e, name)
	if err != nil {
		return "", err
	}
	if password == "" {
		if generated, err = NewOneTimePassword(); err != nil {
			return "", err
		}
		password = generated
	} else if err := accounts.ValidatePassword("password", password); err != nil {
		return "", err
	}
	if err := s.asService(ctx, e, func(token string) error {
		return homeserver.ResetPassword(ctx, e.hc, token, acct.UserID, password)
	}); err != nil {
		return "", fmt.Errorf("reset password of %s: %w", acct.UserID, err)
	}
	if err := audit.Record(ctx, s.Store.DB(), actor.String(), "user.reset_password", acct.UserID, "all devices signed out"); err != nil {
		return generated, err
	}
	s.Log.Info("password reset", "user_id", acct.UserID, "by", actor.String())
	return generated, nil
}

// activeAdmins counts active admin accounts other than the service account.
func activeAdmins(all []homeserver.Account) int {
	n := 0
	for _, a := range all {
		if a.Admin && !a.Deactivated && !accounts.IsSystem(a.Localpart) {
			n++
		}
	}
	return n
}

// Deactivate closes an account for good: it is signed out everywhere, leaves its rooms and
// can no longer sign in. Dendrite has no admin deactivation, so the service account sets a
// random password that nobody knows, signs in as the account and deactivates it.
func (s *Service) Deactivate(ctx context.Context, actor audit.Actor, name string) error {
	e, err := s.env(ctx)
	if err != nil {
		return err
	}
	acct, err := s.activeAccount(ctx, e, name)
	if err != nil {
		return err
	}
	if acct.UserID == actor.UserID {
		return &Refused{"you cannot deactivate your own account; ask another administrator"}
	}
	if acct.Admin {
		all, err := homeserver.ListAccounts(ctx, e.cfg)
		if err != nil {
			return err
		}
		if activeAdmins(all) <= 1 {
			return &Refused{"this is the last administrator; make someone else an administrator first"}
		}
	}
	pw, err := settings.NewSecret(24)
	if err != nil {
		return err
	}
	if err := s.asService(ctx, e, func(token string) error {
		return homeserver.ResetPassword(ctx, e.hc, token, acct.UserID, pw)
	}); err != nil {
		return fmt.Errorf("deactivate %s: lock the account: %w", acct.UserID, err)
	}
	token, _, err := homeserver.Login(ctx, e.hc, acct.Localpart, pw, "")
	if err != nil {
		return fmt.Errorf("deactivate %s: the account is locked (random password, signed out) but not deactivated: %w", acct.UserID, err)
	}
	if err := homeserver.Deactivate(ctx, e.hc, token, acct.Localpart, pw); err != nil {
		return fmt.Errorf("deactivate %s: the account is locked (random password, signed out) but not deactivated: %w", acct.UserID, err)
	}
	if err := audit.Record(ctx, s.Store.DB(), actor.String(), "user.deactivate", acct.UserID, ""); err != nil {
		return err
	}
	s.Log.Info("user deactivated", "user_id", acct.UserID, "by", actor.String())
	return nil
}

// SetAdmin promotes or demotes an account.
func (s *Service) SetAdmin(ctx context.Context, actor audit.Actor, name string, admin bool) error {
	e, err := s.env(ctx)
	if err != nil {
		return err
	}
	acct, err := s.activeAccount(ctx, e, name)
	if err != nil {
		return err
	}
	if acct.Admin == admin {
		return nil
	}
	if !admin {
		if acct.UserID == actor.UserID {
			return &Refused{"you cannot remove your own administrator rights; ask another administrator"}
		}
		all, err := homeserver.ListAccounts(ctx, e.cfg)
		if err != nil {
			return err
		}
		if activeAdmins(all) <= 1 {
			return &Refused{"this is the last administrator; make someone else an administrator first"}
		}
	}
	if err := homeserver.SetAdmin(ctx, e.cfg, acct.Localpart, admin); err != nil {
		return err
	}
	action := "user.promote"
	if !admin {
		action = "user.demote"
	}
	if err := audit.Record(ctx, s.Store.DB(), actor.String(), action, acct.UserID, ""); err != nil {
		return err
	}
	s.Log.Info("admin flag changed", "user_id", acct.UserID, "admin", admin, "by", actor.String())
	return nil
}

// Counts returns the number of active people and of rooms.
func (s *Service) Counts(ctx context.Context) (users, rooms int, err error) {
	e, err := s.env(ctx)
	if err != nil {
		return 0, 0, err
	}
	list, err := s.List(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, a := range list {
		if !a.Deactivated {
			users++
		}
	}
	rooms, err = homeserver.CountRooms(ctx, e.cfg)
	return users, rooms, err
}

// ErrBadCredentials is a wrong user name or password.
var ErrBadCredentials = errors.New("wrong user name or password")

// ErrRateLimited means the homeserver wants the client to slow down.
var ErrRateLimited = errors.New("too many attempts; wait a moment and try again")

// SignIn checks a person's password with the homeserver (its own rate limit applies, keyed
// on the client's address) and returns their account. The session it opens is closed at once.
func (s *Service) SignIn(ctx context.Context, name, password, clientIP string) (homeserver.Account, error) {
	e, err := s.env(ctx)
	if err != nil {
		return homeserver.Account{}, err
	}
	lp := localpart(name, e.st.ServerName)
	if accounts.IsSystem(lp) || lp == "" {
		return homeserver.Account{}, ErrBadCredentials
	}
	token, _, err := homeserver.Login(ctx, e.hc, lp, password, clientIP)
	switch {
	case homeserver.ErrCodeIs(err, "M_FORBIDDEN"), homeserver.ErrCodeIs(err, "M_USER_DEACTIVATED"), homeserver.ErrCodeIs(err, "M_INVALID_USERNAME"):
		return homeserver.Account{}, ErrBadCredentials
	case homeserver.ErrCodeIs(err, "M_LIMIT_EXCEEDED"):
		return homeserver.Account{}, ErrRateLimited
	case err != nil:
		return homeserver.Account{}, err
	}
	homeserver.Logout(ctx, e.hc, token) //nolint:errcheck // the check is done; the session is not needed
	return s.activeAccount(ctx, e, lp)
}
