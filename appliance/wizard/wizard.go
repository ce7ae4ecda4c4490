// Package wizard is the first-boot setup page at /setup: claim the box with its one-time
// code, then answer a few questions, each validated on the server, and finish through the
// same setup.Service the CLI uses. Progress lives in the server-side session, so reloading
// the page resumes where it was.
package wizard

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/claim"
	"github.com/outpost-im/outpost/appliance/gateway"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/appliance/websession"
)

// Wizard serves /setup/.
type Wizard struct {
	Store   *settings.Store
	Setup   *setup.Service
	DataDir string
	Assets  fs.FS // web/setup
	Log     *slog.Logger
	// Backup creates the recovery key and restores snapshots; Restart restarts outpostd
	// into a staged restore.
	Backup  *backup.Service
	Restart func()

	sessions *websession.Store
	limiter  *claim.Limiter
	files    http.Handler
}

// New prepares the wizard.
func New(w Wizard) *Wizard {
	w.sessions = websession.NewStore("outpost_setup", "/setup/", 30*time.Minute, 2*time.Hour)
	// Five wrong codes per client and thirty in total per quarter hour: with ~55 bits in a
	// code, guessing is hopeless, and a typo-prone person is not locked out for long.
	w.limiter = claim.NewLimiter(5, 30, 15*time.Minute)
	w.files = http.StripPrefix("/setup/", http.FileServerFS(w.Assets))
	return &w
}

// draft is the answers so far. The password stays in memory only and is dropped with the
// session; a reload after the admin step keeps it, a restart of outpostd asks again.
type draft struct {
	mu         sync.Mutex
	ServerName string `json:"server_name"`
	AdminUser  string `json:"admin_user"`
	Federation bool   `json:"federation"`
	TLSMode    string `json:"tls_mode"`
	ACMEDir    string `json:"acme_directory"`
	ACMERoot   string `json:"-"`
	password   string
	recipient  string // public half of the recovery key made in this session
	done       map[string]bool
}

// A step is one screen of the wizard after the claim. Adding a question means adding a step
// here and a <section data-step> in web/setup/index.html.
type step struct {
	name  string
	apply func(d *draft, raw json.RawMessage) error
}

var steps = []step{
	{"server", func(d *draft, raw json.RawMessage) error {
		var in struct {
			ServerName string `json:"server_name"`
		}
		if err := decodeStrict(raw, &in); err != nil {
			return err
		}
		name := strings.TrimSpace(in.ServerName)
		if err := setup.ValidateServerName(name); err != nil {
			return err
		}
		if d.AdminUser != "" && d.ServerName != name {
			if err := accounts.ValidateUsername("admin_user", d.AdminUser, name); err != nil {
				return err
			}
		}
		d.ServerName = name
		return nil
	}},
	{"admin", func(d *draft, raw json.RawMessage) error {
		var in struct {
			AdminUser     string `json:"admin_user"`
			AdminPassword string `json:"admin_password"`
			Confirm       string `json:"confirm"`
		}
		if err := decodeStrict(raw, &in); err != nil {
			return err
		}
		if err := accounts.ValidateUsername("admin_user", in.AdminUser, d.ServerName); err != nil {
			return err
		}
		if err := accounts.ValidatePassword("admin_password", in.AdminPassword); err != nil {
			return err
		}
		if in.Confirm != in.AdminPassword {
			return &accounts.FieldError{Field: "confirm", Message: "the two passwords differ; type the same password twice"}
		}
		d.AdminUser, d.password = in.AdminUser, in.AdminPassword
		return nil
	}},
	{"tls", func(d *draft, raw json.RawMessage) error {
		var in struct {
			TLSMode       string `json:"tls_mode"`
			ACMEDirectory string `json:"acme_directory"`
			ACMERootPEM   string `json:"acme_root_pem"`
		}
		if err := decodeStrict(raw, &in); err != nil {
			return err
		}
		if err := setup.ValidateTLS(in.TLSMode, strings.TrimSpace(in.ACMEDirectory), in.ACMERootPEM); err != nil {
			return err
		}
		d.TLSMode, d.ACMEDir, d.ACMERoot = in.TLSMode, strings.TrimSpace(in.ACMEDirectory), in.ACMERootPEM
		return nil
	}},
	{"federation", func(d *draft, raw json.RawMessage) error {
		var in struct {
			Federation bool `json:"federation"`
		}
		if err := decodeStrict(raw, &in); err != nil {
			return err
		}
		d.Federation = in.Federation
		return nil
	}},
	{"recovery", func(d *draft, raw json.RawMessage) error {
		var in struct {
			Saved bool `json:"saved"`
		}
		if err := decodeStrict(raw, &in); err != nil {
			return err
		}
		if d.recipient == "" {
			return &accounts.FieldError{Field: "saved", Message: "create the recovery key first"}
		}
		if !in.Saved {
			return &accounts.FieldError{Field: "saved", Message: "confirm that the recovery key is printed or written down: it is shown only once, and without it no snapshot can be restored on another box"}
		}
		return nil
	}},
}

func decodeStrict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &accounts.FieldError{Field: "request", Message: "the page sent something unexpected; reload it: " + err.Error()}
	}
	return nil
}

// ServeHTTP routes /setup/.
func (wz *Wizard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, err := wz.Store.Get(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	api := strings.HasPrefix(r.URL.Path, "/setup/api/")
	if st.SetupComplete {
		// The wizard is gone once the box is set up.
		if api {
			adminapi.WriteJSON(w, http.StatusNotFound, adminapi.Error{Message: "this box is already set up; sign in to the admin console at /admin/"})
			return
		}
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
		return
	}
	if !api {
		w.Header().Set("Cache-Control", "no-store")
		gateway.SetPageHeaders(w)
		wz.files.ServeHTTP(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/setup/api/state":
		wz.state(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/setup/api/claim":
		wz.claim(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/setup/api/step":
		wz.step(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/setup/api/complete":
		wz.complete(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/setup/api/recovery-key":
		wz.recoveryKey(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/setup/api/restore/list":
		wz.restoreList(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/setup/api/restore":
		wz.restore(w, r)
	default:
		adminapi.WriteJSON(w, http.StatusNotFound, adminapi.Error{Message: "no such setup call"})
	}
}

type stateResponse struct {
	Claimed     bool     `json:"claimed"`
	CSRF        string   `json:"csrf,omitempty"`
	Steps       []string `json:"steps"`
	Done        []string `json:"done"`
	Draft       any      `json:"draft,omitempty"`
	HavePass    bool     `json:"have_password"`
	Suggestions []string `json:"suggestions"`
}

func (wz *Wizard) state(w http.ResponseWriter, r *http.Request) {
	resp := stateResponse{Suggestions: suggestions(r)}
	for _, s := range steps {
		resp.Steps = append(resp.Steps, s.name)
	}
	if sess := wz.sessions.Get(r); sess != nil {
		d := sess.Data.(*draft)
		d.mu.Lock()
		resp.Claimed, resp.CSRF = true, sess.CSRF
		resp.Draft = struct {
			ServerName string `json:"server_name"`
			AdminUser  string `json:"admin_user"`
			Federation bool   `json:"federation"`
			TLSMode    string `json:"tls_mode"`
			ACMEDir    string `json:"acme_directory"`
		}{d.ServerName, d.AdminUser, d.Federation, d.TLSMode, d.ACMEDir}
		resp.HavePass = d.password != ""
		for _, s := range steps {
			if d.done[s.name] {
				resp.Done = append(resp.Done, s.name)
			}
		}
		d.mu.Unlock()
	}
	adminapi.WriteJSON(w, http.StatusOK, resp)
}

// suggestions offers server names: the address the browser used, then the box's host name
// and LAN addresses.
func suggestions(r *http.Request) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !seen[s] && setup.ValidateServerName(s) == nil {
			seen[s] = true
			out = append(out, s)
		}
	}
	host := r.Host
	if h, port, err := net.SplitHostPort(host); err == nil && (port == "80" || port == "443") {
		host = h
	}
	add(host)
	if h, err := os.Hostname(); err == nil && h != "localhost" {
		add(h)
	}
	for _, ip := range platform.LANAddresses() {
		if ip.To4() != nil && ip.IsPrivate() {
			add(ip.String())
		}
	}
	return out
}

func (wz *Wizard) claim(w http.ResponseWriter, r *http.Request) {
	ip := gateway.PeerIP(r)
	if ok, wait := wz.limiter.Allowed(ip); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		adminapi.WriteJSON(w, http.StatusTooManyRequests, adminapi.Error{
			Message: "too many wrong codes; wait " + wait.Round(time.Second).String() + " and try again", Field: "code"})
		return
	}
	var in struct {
		Code string `json:"code"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	code, err := claim.Read(wz.DataDir)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if code == "" || !claim.Matches(in.Code, code) {
		wz.limiter.Fail(ip)
		wz.Log.Warn("wrong setup code entered", "ip", ip)
		adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{
			Message: "that code is not right: use the code shown on the box's screen or by `outpost setup-code`", Field: "code"})
		return
	}
	sess := wz.sessions.Begin(w, r, "", &draft{done: map[string]bool{}})
	wz.Log.Info("setup claimed", "ip", ip)
	adminapi.WriteJSON(w, http.StatusOK, map[string]string{"csrf": sess.CSRF})
}

func retryAfter(d time.Duration) string { return strconv.Itoa(int(d.Seconds()) + 1) }

// session returns the claimed session of a state-changing request, or answers for it.
func (wz *Wizard) session(w http.ResponseWriter, r *http.Request) (*websession.Session, bool) {
	sess := wz.sessions.Get(r)
	if sess == nil {
		adminapi.WriteJSON(w, http.StatusUnauthorized, adminapi.Error{Message: "enter the setup code first (your session may have expired)", Field: "code"})
		return nil, false
	}
	if !websession.CheckCSRF(r, sess) {
		adminapi.WriteJSON(w, http.StatusForbidden, adminapi.Error{Message: "request refused: missing or wrong security token; reload the page"})
		return nil, false
	}
	return sess, true
}

func (wz *Wizard) step(w http.ResponseWriter, r *http.Request) {
	sess, ok := wz.session(w, r)
	if !ok {
		return
	}
	var in struct {
		Step   string          `json:"step"`
		Values json.RawMessage `json:"values"`
	}
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	d := sess.Data.(*draft)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range steps {
		if s.name != in.Step {
			continue
		}
		if err := s.apply(d, in.Values); err != nil {
			adminapi.WriteError(w, err)
			return
		}
		d.done[s.name] = true
		adminapi.WriteJSON(w, http.StatusOK, struct{}{})
		return
	}
	adminapi.WriteJSON(w, http.StatusBadRequest, adminapi.Error{Message: "unknown step " + in.Step})
}

func (wz *Wizard) complete(w http.ResponseWriter, r *http.Request) {
	sess, ok := wz.session(w, r)
	if !ok {
		return
	}
	d := sess.Data.(*draft)
	d.mu.Lock()
	for _, s := range steps {
		if !d.done[s.name] {
			d.mu.Unlock()
			adminapi.WriteJSON(w, http.StatusBadRequest, adminapi.Error{Message: "answer the step " + s.name + " first", Field: s.name})
			return
		}
	}
	if d.password == "" {
		d.done["admin"] = false
		d.mu.Unlock()
		adminapi.WriteJSON(w, http.StatusBadRequest, adminapi.Error{Message: "enter the administrator's password again (it is never stored)", Field: "admin"})
		return
	}
	req := setup.Request{ServerName: d.ServerName, AdminUser: d.AdminUser, AdminPassword: d.password, Federation: d.Federation,
		TLSMode: d.TLSMode, ACMEDirectory: d.ACMEDir, ACMERootPEM: d.ACMERoot}
	d.mu.Unlock()
	// Setup outlives a browser that gives up waiting: it must end in the old or new state.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 3*time.Minute)
	defer cancel()
	actor := audit.Actor{Via: "setup wizard", IP: gateway.PeerIP(r)}
	if err := wz.Setup.Complete(ctx, actor, req); err != nil {
		var fe *accounts.FieldError
		if errors.As(err, &fe) {
			adminapi.WriteError(w, err)
			return
		}
		wz.Log.Error("setup failed", "err", err)
		adminapi.WriteJSON(w, http.StatusInternalServerError, adminapi.Error{Message: "setup did not finish and nothing was changed: " + err.Error()})
		return
	}
	wz.sessions.End(w, r)
	adminapi.WriteJSON(w, http.StatusOK, map[string]string{
		"user_id":   "@" + req.AdminUser + ":" + req.ServerName,
		"chat_url":  "/",
		"admin_url": "/admin/",
	})
}
