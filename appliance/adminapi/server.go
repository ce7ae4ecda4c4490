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
	"syscall"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/appliance/version"
)

// Homeserver is what the API needs from the supervisor.
type Homeserver interface {
	Status() homeserver.Status
	Client() *http.Client
	WaitReady(ctx context.Context) error
}

// Server answers the admin socket.
type Server struct {
	Store     *settings.Store
	HS        Homeserver
	Setup     *setup.Service
	DataDir   string
	HTTPAddr  string
	StartedAt time.Time
	Log       *slog.Logger
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/setup", s.setup)
	mux.HandleFunc("POST /v1/users", s.addUser)
	return mux
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.Store.Get(r.Context())
	if err != nil {
		writeError(w, err)
		return
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
		DataBytes:        dirSize(s.DataDir),
		HTTPAddr:         s.HTTPAddr,
	}
	out.Versions.Dendrite = out.Homeserver.Version
	var fsst syscall.Statfs_t
	if syscall.Statfs(s.DataDir, &fsst) == nil {
		out.DiskFreeBytes = int64(fsst.Bavail) * fsst.Bsize
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
	if !readJSON(w, r, &req) {
		return
	}
	if err := s.Setup.Complete(r.Context(), req); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	var req AddUserRequest
	if !readJSON(w, r, &req) {
		return
	}
	st, err := s.Store.Get(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if !st.SetupComplete {
		writeJSON(w, http.StatusConflict, Error{Message: "this box is not set up yet; run `outpost setup` first"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.HS.WaitReady(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Error{Message: "the homeserver is not running; check `outpost status`"})
		return
	}
	id, err := accounts.Create(ctx, s.HS.Client(), st.RegistrationSharedSecret, st.ServerName, req.Username, req.Password, req.Admin)
	if err != nil {
		writeError(w, err)
		return
	}
	s.Log.Info("user created", "user_id", id, "admin", req.Admin, "via", "cli")
	writeJSON(w, http.StatusOK, AddUserResponse{UserID: id})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, Error{Message: "bad request: " + err.Error()})
		return false
	}
	return true
}

// writeError maps an error to a status and a message the CLI can print as it is.
func writeError(w http.ResponseWriter, err error) {
	var fe *accounts.FieldError
	var exists *accounts.ErrExists
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, Error{Message: fe.Error(), Field: fe.Field})
	case errors.As(err, &exists):
		writeJSON(w, http.StatusConflict, Error{Message: exists.Error()})
	case errors.Is(err, setup.ErrAlreadySetUp):
		writeJSON(w, http.StatusConflict, Error{Message: err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, Error{Message: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}
