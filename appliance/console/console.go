// Package console is the admin console at /admin and the invitation page at /invite. Admins
// sign in with their Matrix account; the console keeps a short server-side session, checks
// the admin flag on every request, and requires a CSRF token on every change. All actions go
// through the same services as the CLI (people, invites) and land in the audit log.
package console

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/boxtls"
	"github.com/outpost-im/outpost/appliance/claim"
	"github.com/outpost-im/outpost/appliance/clock"
	"github.com/outpost-im/outpost/appliance/gateway"
	"github.com/outpost-im/outpost/appliance/invites"
	"github.com/outpost-im/outpost/appliance/netcfg"
	"github.com/outpost-im/outpost/appliance/people"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/turn"
	"github.com/outpost-im/outpost/appliance/websession"
)

// Console serves /admin/ and /invite/.
type Console struct {
	Store   *settings.Store
	People  *people.Service
	Invites *invites.Service
	// Status is the overview (the same as `outpost status`).
	Status func(ctx context.Context) (adminapi.Status, error)
	// SetFederation switches federation and restarts the homeserver with the new setting.
	SetFederation func(ctx context.Context, actor audit.Actor, on bool) error
	// TLS manages the certificate source.
	TLS adminapi.TLS
	// TURN is the relay; SetTURN changes its settings (and restarts what depends on them).
	TURN    adminapi.TURN
	SetTURN func(ctx context.Context, actor audit.Actor, ts turn.Settings) error
	// Backup is the snapshot service (Snapshots tab).
	Backup *backup.Service
	// Network is the box's network configuration (Network tab); nil hides it.
	Network      *netcfg.Manager
	TimeSync     func() clock.SyncStatus
	AdminAssets  fs.FS // web/admin
	InviteAssets fs.FS // web/invite
	Log          *slog.Logger

	sessions    *websession.Store
	loginLimit  *claim.Limiter
	inviteLimit *claim.Limiter
	adminFiles  http.Handler
	inviteFiles http.Handler
	mux         *http.ServeMux
}

// New prepares the console.
func New(c Console) *Console {
	// Short idle timeout: the console is powerful and often used from shared machines.
	c.sessions = websession.NewStore("outpost_admin", "/admin/", 20*time.Minute, 8*time.Hour)
	c.loginLimit = claim.NewLimiter(10, 100, 15*time.Minute)
	c.inviteLimit = claim.NewLimiter(10, 100, 15*time.Minute)
	c.adminFiles = http.StripPrefix("/admin/", http.FileServerFS(c.AdminAssets))
	c.inviteFiles = http.StripPrefix("/invite/", http.FileServerFS(c.InviteAssets))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/api/login", c.login)
	mux.HandleFunc("GET /admin/api/session", c.session)
	mux.HandleFunc("POST /admin/api/logout", c.logout)
	mux.HandleFunc("GET /admin/api/overview", c.admin(c.overview))
	mux.HandleFunc("GET /admin/api/users", c.admin(c.listUsers))
	mux.HandleFunc("POST /admin/api/users", c.admin(c.createUser))
	mux.HandleFunc("POST /admin/api/users/{name}/reset-password", c.admin(c.resetPassword))
	mux.HandleFunc("POST /admin/api/users/{name}/deactivate", c.admin(c.deactivate))
	mux.HandleFunc("POST /admin/api/users/{name}/admin", c.admin(c.setAdmin))
	mux.HandleFunc("GET /admin/api/invites", c.admin(c.listInvites))
	mux.HandleFunc("POST /admin/api/invites", c.admin(c.createInvite))
	mux.HandleFunc("POST /admin/api/invites/{id}/revoke", c.admin(c.revokeInvite))
	mux.HandleFunc("GET /admin/api/federation", c.admin(c.federation))
	mux.HandleFunc("POST /admin/api/federation", c.admin(c.setFederation))
	mux.HandleFunc("GET /admin/api/audit", c.admin(c.auditLog))
	mux.HandleFunc("GET /admin/api/tls", c.admin(c.tlsStatus))
	mux.HandleFunc("GET /admin/api/turn", c.admin(c.turnStatus))
	mux.HandleFunc("POST /admin/api/turn", c.admin(c.turnSet))
	mux.HandleFunc("POST /admin/api/tls/mode", c.admin(c.tlsMode))
	mux.HandleFunc("POST /admin/api/tls/new-root", c.admin(adminapi.TLSNewRoot(c.TLS, c.Store)))
	c.snapshotRoutes(mux)
	if c.Network != nil {
		n := adminapi.Network{M: c.Network, Time: c.TimeSync}
		mux.HandleFunc("GET /admin/api/network", c.admin(n.Get))
		mux.HandleFunc("POST /admin/api/network", c.admin(n.Try))
		mux.HandleFunc("POST /admin/api/network/confirm", c.admin(n.Confirm))
		mux.HandleFunc("POST /admin/api/network/revert", c.admin(n.Revert))
	}
	mux.HandleFunc("POST /admin/api/password", c.admin(c.changeOwnPassword))
	mux.HandleFunc("/admin/api/", func(w http.ResponseWriter, r *http.Request) {
		adminapi.WriteJSON(w, http.StatusNotFound, adminapi.Error{Message: "no such console call"})
	})
	mux.HandleFunc("POST /invite/api/redeem", c.redeem)
	mux.HandleFunc("/invite/api/", func(w http.ResponseWriter, r *http.Request) {
		adminapi.WriteJSON(w, http.StatusNotFound, adminapi.Error{Message: "no such call"})
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) { c.static(w, r, c.adminFiles) })
	mux.HandleFunc("/invite/", func(w http.ResponseWriter, r *http.Request) { c.static(w, r, c.inviteFiles) })
	c.mux = mux
	return &c
}

// ServeHTTP routes /admin/ and /invite/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, err := c.Store.Get(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if !st.SetupComplete {
		http.Redirect(w, r, "/setup/", http.StatusSeeOther)
		return
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) static(w http.ResponseWriter, r *http.Request, files http.Handler) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	gateway.SetPageHeaders(w)
	files.ServeHTTP(w, r)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ip := gateway.PeerIP(r)
	if ok, wait := c.loginLimit.Allowed(ip); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		adminapi.WriteJSON(w, http.StatusTooManyRequests, adminapi.Error{Message: "too many failed sign-ins; wait " + wait.Round(time.Second).String()})
		return
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	acct, err := c.People.SignIn(r.Context(), in.Username, in.Password, ip)
	if err != nil {
		var nf *people.ErrNotFound
		if errors.Is(err, people.ErrBadCredentials) || errors.As(err, &nf) {
			c.loginLimit.Fail(ip)
			c.Log.Warn("console sign-in failed", "ip", ip)
			adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Message: "wrong user name or password"})
			return
		}
		adminapi.WriteError(w, err)
		return
	}
	if !acct.Admin {
		c.Log.Warn("console sign-in by a non-admin refused", "user_id", acct.UserID, "ip", ip)
		adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Message: "this account is not an administrator; ask an administrator for access"})
		return
	}
	sess := c.sessions.Begin(w, r, acct.UserID, nil)
	actor := audit.Actor{UserID: acct.UserID, Via: "console", IP: ip}
	if err := audit.Record(r.Context(), c.Store.DB(), actor.String(), "console.sign_in", acct.UserID, ""); err != nil {
		c.Log.Error("audit", "err", err)
	}
	adminapi.WriteJSON(w, http.StatusOK, c.sessionInfo(r.Context(), acct.UserID, sess.CSRF))
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	sess := c.sessions.Get(r)
	if sess == nil {
		adminapi.WriteJSON(w, http.StatusUnauthorized, adminapi.Error{Message: "not signed in"})
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, c.sessionInfo(r.Context(), sess.UserID, sess.CSRF))
}

// sessionInfo is what the page learns at sign-in: who, the CSRF token, and whether the
// account must set its own password before anything else.
func (c *Console) sessionInfo(ctx context.Context, userID, csrf string) map[string]any {
	out := map[string]any{"user_id": userID, "csrf": csrf}
	if acct, err := c.People.Lookup(ctx, userID); err == nil && c.mustChangePassword(ctx, acct.Localpart) {
		out["must_change_password"] = true
	}
	return out
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if sess := c.sessions.Get(r); sess != nil && !websession.CheckCSRF(r, sess) {
		adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Message: "request refused: missing or wrong security token; reload the page"})
		return
	}
	c.sessions.End(w, r)
	adminapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// handler is an authenticated console call.
type handler func(w http.ResponseWriter, r *http.Request, actor audit.Actor)

// admin wraps a call: a live session, CSRF on changes, and the account must still be an
// active admin (a demoted or deactivated admin is signed out at once).
func (c *Console) admin(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.sessions.Get(r)
		if sess == nil {
			adminapi.WriteJSON(w, http.StatusUnauthorized, adminapi.Error{Message: "not signed in (or the session expired); sign in again"})
			return
		}
		if r.Method != http.MethodGet && !websession.CheckCSRF(r, sess) {
			c.Log.Warn("console request without a valid CSRF token refused", "user_id", sess.UserID, "ip", gateway.PeerIP(r), "path", r.URL.Path)
			adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Message: "request refused: missing or wrong security token; reload the page"})
			return
		}
		acct, err := c.People.Lookup(r.Context(), sess.UserID)
		if err != nil || !acct.Admin || acct.Deactivated {
			c.sessions.EndUser(sess.UserID)
			adminapi.WriteJSON(w, http.StatusUnauthorized, adminapi.Error{Message: "this account is no longer an administrator"})
			return
		}
		if r.URL.Path != "/admin/api/password" && c.mustChangePassword(r.Context(), acct.Localpart) {
			adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Field: "password_change",
				Message: "set your own password first: the one this box was provisioned with works for the first sign-in only"})
			return
		}
		h(w, r, audit.Actor{UserID: sess.UserID, Via: "console", IP: gateway.PeerIP(r)})
	}
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	st, err := c.Status(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, st)
}

func (c *Console) listUsers(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	list, err := c.People.List(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, list)
}

func (c *Console) createUser(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var in struct {
		Username string `json:"username"`
		Admin    bool   `json:"admin"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	// The console always generates the first password: the admin reads it out once and
	// the person changes it. Nobody has to invent a password for someone else.
	id, pw, err := c.People.Create(r.Context(), actor, strings.TrimSpace(in.Username), "", in.Admin)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, adminapi.AddUserResponse{UserID: id, Password: pw})
}

func (c *Console) resetPassword(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	pw, err := c.People.ResetPassword(r.Context(), actor, r.PathValue("name"), "")
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, adminapi.PasswordResponse{Password: pw})
}

func (c *Console) deactivate(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	name := r.PathValue("name")
	acct, err := c.People.Lookup(r.Context(), name)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if err := c.People.Deactivate(r.Context(), actor, name); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	c.sessions.EndUser(acct.UserID)
	adminapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (c *Console) setAdmin(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var in adminapi.AdminFlagRequest
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	if err := c.People.SetAdmin(r.Context(), actor, r.PathValue("name"), in.Admin); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (c *Console) listInvites(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	list, err := c.Invites.List(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, list)
}

func (c *Console) createInvite(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var in struct {
		ExpiresHours int    `json:"expires_hours"`
		Note         string `json:"note"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	inv, code, err := c.Invites.Create(r.Context(), actor, time.Duration(in.ExpiresHours)*time.Hour, in.Note)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, adminapi.CreateInviteResponse{Invite: inv, Code: code})
}

func (c *Console) revokeInvite(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		adminapi.WriteError(w, &accounts.FieldError{Field: "id", Message: "not an invitation number"})
		return
	}
	if err := c.Invites.Revoke(r.Context(), actor, id); err != nil {
		adminapi.WriteJSON(w, http.StatusConflict, adminapi.Error{Message: err.Error()})
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (c *Console) federation(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	st, err := c.Store.Get(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, map[string]any{"enabled": st.Federation, "server_name": st.ServerName})
}

func (c *Console) setFederation(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var in struct {
		Enabled bool `json:"enabled"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	if err := c.SetFederation(r.Context(), actor, in.Enabled); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, map[string]bool{"enabled": in.Enabled})
}

func (c *Console) auditLog(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	list, err := audit.List(r.Context(), c.Store.DB(), 500)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, list)
}

func (c *Console) tlsStatus(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	st, err := c.Store.Get(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, c.TLS.Status(st.ServerName))
}

func (c *Console) tlsMode(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var req boxtls.ModeRequest
	if !adminapi.ReadJSON(w, r, &req) {
		return
	}
	warnings, err := c.TLS.ChangeMode(r.Context(), c.Store, actor, req)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, adminapi.TLSModeResponse{Warnings: warnings})
}

func (c *Console) turnStatus(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	adminapi.WriteJSON(w, http.StatusOK, adminapi.TURNStatus{Effective: c.TURN.Current(), Stats: c.TURN.Stats()})
}

func (c *Console) turnSet(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var req turn.Settings
	if !adminapi.ReadJSON(w, r, &req) {
		return
	}
	if err := c.SetTURN(r.Context(), actor, req); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, adminapi.TURNStatus{Effective: c.TURN.Current(), Stats: c.TURN.Stats()})
}

// redeem is the public end of an invitation: a person with a valid code makes an account.
func (c *Console) redeem(w http.ResponseWriter, r *http.Request) {
	ip := gateway.PeerIP(r)
	if ok, wait := c.inviteLimit.Allowed(ip); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		adminapi.WriteJSON(w, http.StatusTooManyRequests, adminapi.Error{Message: "too many attempts with invalid codes; wait " + wait.Round(time.Second).String(), Field: "code"})
		return
	}
	// Invitation pages are plain form posts from our own origin; refuse cross-site ones.
	if origin := r.Header.Get("Origin"); origin != "" && !strings.HasSuffix(origin, "://"+r.Host) {
		adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Message: "cross-site request refused"})
		return
	}
	var in struct {
		Code     string `json:"code"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	userID, err := c.Invites.Redeem(r.Context(), in.Code, strings.TrimSpace(in.Username), in.Password, ip)
	if err != nil {
		if errors.Is(err, invites.ErrInvalid) {
			c.inviteLimit.Fail(ip)
			c.Log.Warn("invalid invitation code", "ip", ip)
		}
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, map[string]string{"user_id": userID})
}
