package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/boxtls"
	"github.com/outpost-im/outpost/appliance/claim"
	"github.com/outpost-im/outpost/appliance/clock"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/invites"
	"github.com/outpost-im/outpost/appliance/netcfg"
	"github.com/outpost-im/outpost/appliance/people"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/appliance/targetstore"
	"github.com/outpost-im/outpost/appliance/turn"
	"github.com/outpost-im/outpost/appliance/version"
)

// Homeserver is what the API needs from the supervisor.
type Homeserver interface {
	Status() homeserver.Status
}

// TLS is the certificate service.
type TLS interface {
	Mode() string
	Fingerprint() string
	Status(serverName string) boxtls.Status
	ChangeMode(ctx context.Context, store *settings.Store, actor audit.Actor, req boxtls.ModeRequest) ([]string, error)
	NewRoot(ctx context.Context, store *settings.Store, actor audit.Actor) (boxtls.Status, error)
}

// TURN is the relay service.
type TURN interface {
	Current() turn.Effective
	Stats() turn.Stats
}

// Server answers the admin socket.
type Server struct {
	TURN      TURN
	SetTURN   func(ctx context.Context, actor audit.Actor, ts turn.Settings) error
	TLS       TLS
	HTTPSURL  string
	Store     *settings.Store
	HS        Homeserver
	Setup     *setup.Service
	People    *people.Service
	Invites   *invites.Service
	DataDir   string
	HTTPAddr  string
	StartedAt time.Time
	Log       *slog.Logger
	// Backup is the snapshot service; Restart asks outpostd to start over (to apply a
	// staged restore).
	Backup  *backup.Service
	Restart func()
	// Network is the box's network configuration (nil: not offered); TimeSync its LAN
	// time servers' status.
	Network  *netcfg.Manager
	TimeSync func() clock.SyncStatus
}

// cli is the actor for everything done through the socket: whoever holds it is root or the
// appliance's own user.
var cli = audit.Actor{Via: "cli"}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	if s.Network != nil {
		n := Network{M: s.Network, Time: s.TimeSync}
		mux.HandleFunc("GET /v1/network", cliActor(n.Get))
		mux.HandleFunc("POST /v1/network", cliActor(n.Try))
		mux.HandleFunc("POST /v1/network/confirm", cliActor(n.Confirm))
		mux.HandleFunc("POST /v1/network/revert", cliActor(n.Revert))
	}
	mux.HandleFunc("POST /v1/setup", s.setup)
	mux.HandleFunc("GET /v1/setup-code", s.setupCode)
	mux.HandleFunc("GET /v1/users", s.listUsers)
	mux.HandleFunc("POST /v1/users", s.addUser)
	mux.HandleFunc("POST /v1/users/{name}/reset-password", s.resetPassword)
	mux.HandleFunc("POST /v1/users/{name}/deactivate", s.deactivate)
	mux.HandleFunc("POST /v1/users/{name}/admin", s.setAdmin)
	mux.HandleFunc("GET /v1/invites", s.listInvites)
	mux.HandleFunc("POST /v1/invites", s.createInvite)
	mux.HandleFunc("POST /v1/invites/{id}/revoke", s.revokeInvite)
	mux.HandleFunc("GET /v1/audit", s.audit)
	mux.HandleFunc("GET /v1/tls", s.tlsStatus)
	mux.HandleFunc("GET /v1/turn", s.turnStatus)
	mux.HandleFunc("POST /v1/turn", s.turnSet)
	mux.HandleFunc("POST /v1/tls/mode", s.tlsMode)
	mux.HandleFunc("POST /v1/tls/new-root", cliActor(TLSNewRoot(s.TLS, s.Store)))
	s.snapshotRoutes(mux)
	return mux
}

// Status collects what `outpost status` and the console's overview show.
func (s *Server) Status(ctx context.Context) (Status, error) {
	st, err := s.Store.Get(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{
		SetupComplete:    st.SetupComplete,
		SetupCompletedAt: st.SetupCompletedAt,
		ServerName:       st.ServerName,
		Federation:       st.Federation,
		Homeserver:       s.HS.Status(),
		Versions:         Versions{Outpost: version.String(), Go: runtime.Version()},
		StartedAt:        s.StartedAt,
		DataDir:          s.DataDir,
		Hardware:         platform.Model(),
		DataBytes:        dirSize(s.DataDir),
		HTTPAddr:         s.HTTPAddr,
		HTTPSURL:         s.HTTPSURL,
		TLSMode:          s.TLS.Mode(),
		RootFingerprint:  s.TLS.Fingerprint(),
	}
	out.Versions.Dendrite = out.Homeserver.Version
	if s.TURN != nil {
		ts := TURNStatus{Effective: s.TURN.Current(), Stats: s.TURN.Stats()}
		out.TURN = &ts
	}
	var fsst syscall.Statfs_t
	if syscall.Statfs(s.DataDir, &fsst) == nil {
		out.DiskFreeBytes = int64(fsst.Bavail) * fsst.Bsize
	}
	if st.SetupComplete && out.Homeserver.State == homeserver.StateRunning {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if u, r, err := s.People.Counts(cctx); err == nil {
			out.Users, out.Rooms = u, r
		}
	}
	return out, nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	out, err := s.Status(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	var req setup.Request
	if !ReadJSON(w, r, &req) {
		return
	}
	if err := s.Setup.Complete(r.Context(), cli, req); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) setupCode(w http.ResponseWriter, r *http.Request) {
	code, err := claim.Read(s.DataDir)
	if err != nil {
		WriteError(w, err)
		return
	}
	if code == "" {
		writeJSON(w, http.StatusConflict, Error{Message: "setup is complete; the one-time setup code is no longer valid"})
		return
	}
	writeJSON(w, http.StatusOK, SetupCodeResponse{Code: code})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	list, err := s.People.List(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	var req AddUserRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	id, generated, err := s.People.Create(r.Context(), cli, req.Username, req.Password, req.Admin)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AddUserResponse{UserID: id, Password: generated})
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) {
	var req PasswordRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	generated, err := s.People.ResetPassword(r.Context(), cli, r.PathValue("name"), req.Password)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PasswordResponse{Password: generated})
}

func (s *Server) deactivate(w http.ResponseWriter, r *http.Request) {
	if err := s.People.Deactivate(r.Context(), cli, r.PathValue("name")); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) setAdmin(w http.ResponseWriter, r *http.Request) {
	var req AdminFlagRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	if err := s.People.SetAdmin(r.Context(), cli, r.PathValue("name"), req.Admin); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) listInvites(w http.ResponseWriter, r *http.Request) {
	list, err := s.Invites.List(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) createInvite(w http.ResponseWriter, r *http.Request) {
	var req CreateInviteRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	var ttl time.Duration
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil {
			WriteError(w, &accounts.FieldError{Field: "expires", Message: "give a duration such as 72h or 30m"})
			return
		}
		ttl = d
	}
	inv, code, err := s.Invites.Create(r.Context(), cli, ttl, req.Note)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, CreateInviteResponse{Invite: inv, Code: code})
}

func (s *Server) revokeInvite(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		WriteError(w, &accounts.FieldError{Field: "id", Message: "give the invitation's number, as shown by `outpost invites list`"})
		return
	}
	if err := s.Invites.Revoke(r.Context(), cli, id); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	list, err := audit.List(r.Context(), s.Store.DB(), limit)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) turnStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, TURNStatus{Effective: s.TURN.Current(), Stats: s.TURN.Stats()})
}

func (s *Server) turnSet(w http.ResponseWriter, r *http.Request) {
	var req turn.Settings
	if !ReadJSON(w, r, &req) {
		return
	}
	if err := s.SetTURN(r.Context(), cli, req); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TURNStatus{Effective: s.TURN.Current(), Stats: s.TURN.Stats()})
}

func (s *Server) tlsStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Store.Get(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.TLS.Status(st.ServerName))
}

func (s *Server) tlsMode(w http.ResponseWriter, r *http.Request) {
	var req boxtls.ModeRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	warnings, err := s.TLS.ChangeMode(r.Context(), s.Store, cli, req)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TLSModeResponse{Warnings: warnings})
}

// TLSNewRoot replaces the box's root (both doors).
func TLSNewRoot(t TLS, store *settings.Store) func(http.ResponseWriter, *http.Request, audit.Actor) {
	return func(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
		st, err := t.NewRoot(r.Context(), store, actor)
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}

// ReadJSON decodes a request body strictly; on failure it answers 400 and returns false.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, Error{Message: "bad request: " + err.Error()})
		return false
	}
	return true
}

// WriteError maps an error to a status and a message a person can act on. The web
// console uses it too, so both doors say the same thing. Unexpected errors (500) are also
// logged, since they are ours to fix.
func WriteError(w http.ResponseWriter, err error) {
	var fe *accounts.FieldError
	var exists *accounts.ErrExists
	var notFound *people.ErrNotFound
	var refused *people.Refused
	var field *FieldError
	var netField *netcfg.FieldError
	switch {
	case errors.As(err, &netField):
		writeJSON(w, http.StatusBadRequest, Error{Message: netField.Error(), Field: netField.Field})
	case errors.Is(err, netcfg.ErrBusy), errors.Is(err, netcfg.ErrNoTrial), errors.Is(err, netcfg.ErrNotReady):
		writeJSON(w, http.StatusConflict, Error{Message: err.Error()})
	case errors.As(err, &field):
		writeJSON(w, http.StatusBadRequest, Error{Message: field.Error(), Field: field.Field})
	case errors.Is(err, targetstore.ErrNotFound):
		writeJSON(w, http.StatusNotFound, Error{Message: err.Error(), Field: "target"})
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, Error{Message: fe.Error(), Field: fe.Field})
	case errors.As(err, &exists):
		writeJSON(w, http.StatusConflict, Error{Message: exists.Error(), Field: "username"})
	case errors.As(err, &notFound):
		writeJSON(w, http.StatusNotFound, Error{Message: notFound.Error()})
	case errors.As(err, &refused):
		writeJSON(w, http.StatusConflict, Error{Message: refused.Error()})
	case errors.Is(err, setup.ErrAlreadySetUp), errors.Is(err, people.ErrNotSetUp):
		writeJSON(w, http.StatusConflict, Error{Message: err.Error()})
	case errors.Is(err, invites.ErrInvalid):
		writeJSON(w, http.StatusForbidden, Error{Message: err.Error(), Field: "code"})
	case errors.Is(err, people.ErrBadCredentials):
		writeJSON(w, http.StatusForbidden, Error{Message: err.Error()})
	case errors.Is(err, boxtls.ErrNotActive):
		writeJSON(w, http.StatusConflict, Error{Message: err.Error()})
	case errors.Is(err, people.ErrRateLimited):
		writeJSON(w, http.StatusTooManyRequests, Error{Message: err.Error()})
	default:
		slog.Error("request failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, Error{Message: err.Error()})
	}
}

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}
