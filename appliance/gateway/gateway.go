// Package gateway is the box's only network-facing HTTP surface: it proxies the Matrix
// client API to Dendrite's unix socket, generates the well-known documents, serves the web
// UI, and keeps Dendrite's admin and metrics endpoints off the network.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-im/outpost/appliance/redact"
)

// State is the part of the settings the gateway routes by. The daemon publishes a new one
// whenever the settings change; requests read it without touching the database.
type State struct {
	SetupComplete bool
	ServerName    string
	Federation    bool
}

// Homeserver is what the gateway needs from the supervisor.
type Homeserver interface {
	// WaitReady blocks until the homeserver answers or ctx ends.
	WaitReady(ctx context.Context) error
	// Transport reaches the homeserver's socket.
	Transport() http.RoundTripper
	// State names the homeserver's state for /healthz.
	StateName() string
}

// Gateway is an http.Handler.
type Gateway struct {
	loginGate func(ctx context.Context, localpart string) error
	hs        Homeserver
	log       *slog.Logger
	state     atomic.Pointer[State]
	proxy     *httputil.ReverseProxy
	static    http.Handler
	firstRun  http.Handler
	mux       *http.ServeMux
	// readyWait bounds how long a request waits for a restarting or paused homeserver.
	readyWait time.Duration
}

// Options configure a Gateway.
type Options struct {
	Homeserver Homeserver
	Log        *slog.Logger
	// Static is the web UI (Element) served at /.
	Static fs.FS
	// FirstRun serves / until setup completes.
	FirstRun http.Handler
	// Extra handlers mounted by other packages (setup wizard, admin console), by pattern.
	Extra map[string]http.Handler
	// LoginGate, when set, may refuse a Matrix password login for a local part (an account
	// that must first replace a one-time password in the admin console).
	LoginGate func(ctx context.Context, localpart string) error
}

// New builds the gateway. Call SetState before serving.
func New(o Options) *Gateway {
	g := &Gateway{hs: o.Homeserver, log: o.Log, readyWait: 30 * time.Second, firstRun: o.FirstRun, loginGate: o.LoginGate}
	g.state.Store(&State{})
	g.proxy = &httputil.ReverseProxy{
		Rewrite:   g.rewrite,
		Transport: o.Homeserver.Transport(),
		// Flush streamed answers (media downloads) as they come.
		FlushInterval: -1,
		// Without a pool every proxied answer allocates a fresh 32 KiB copy buffer: at a
		// thousand requests a second (20 busy users) that is most of outpostd's garbage.
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				g.log.Warn("proxy to homeserver failed", "path", redact.String(r.URL.Path), "err", err)
			}
			matrixError(w, http.StatusBadGateway, "M_UNKNOWN", "The homeserver is restarting. Try again in a moment.")
		},
		ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}
	if o.Static != nil {
		g.static = staticHandler(o.Static, g.current)
	} else {
		g.static = http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", g.healthz)
	mux.HandleFunc("/.well-known/matrix/client", g.wellKnownClient)
	mux.HandleFunc("/.well-known/matrix/server", g.wellKnownServer)
	mux.HandleFunc("/_matrix/", g.matrix)
	mux.HandleFunc("/_synapse/client/", g.matrix)
	// Dendrite's admin API, its own admin routes and metrics are for outpostd alone.
	for _, p := range []string{"/_synapse/", "/_dendrite/", "/metrics"} {
		mux.HandleFunc(p, notFound)
	}
	for pattern, h := range o.Extra {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("/", g.root)
	g.mux = mux
	return g
}

// SetState publishes new routing state.
func (g *Gateway) SetState(s State) { g.state.Store(&s) }

func (g *Gateway) current() State { return *g.state.Load() }

// copyBuffers are the proxy's response copy buffers, shared by every gateway.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

// bufferPool adapts a sync.Pool of *[]byte to httputil.BufferPool. Buffers of another size
// (none today) are left to the garbage collector.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

func (p *bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		b = b[:cap(b)]
		p.pool.Put(&b)
	}
}

// ServeHTTP routes a request and writes an access log line with credentials redacted.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.TLS != nil {
		// Browsers honour HSTS only over a connection whose certificate they trust, so this
		// takes effect exactly when TLS is confirmed working for that browser. 30 days, not
		// a year: a box whose root is replaced must not lock people out for long.
		w.Header().Set("Strict-Transport-Security", "max-age=2592000")
	}
	rw := &recorder{ResponseWriter: w, status: http.StatusOK}
	g.mux.ServeHTTP(rw, r)
	if !g.log.Enabled(r.Context(), slog.LevelDebug) {
		return // redacting costs three regexps per request; skip it when nobody reads the line
	}
	g.log.Debug("access",
		"peer", PeerIP(r),
		"method", r.Method,
		"uri", redact.String(r.URL.RequestURI()),
		"status", rw.status,
		"bytes", rw.bytes,
		"dur", time.Since(start).Round(time.Microsecond),
	)
}

func (g *Gateway) matrix(w http.ResponseWriter, r *http.Request) {
	st := g.current()
	if !st.SetupComplete {
		matrixError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "This Outpost box is not set up yet. Finish setup first.")
		return
	}
	if isFederationPath(r.URL.Path) && !st.Federation {
		notFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.readyWait)
	err := g.hs.WaitReady(ctx)
	cancel()
	if err != nil {
		if r.Context().Err() != nil {
			return // client gave up
		}
		w.Header().Set("Retry-After", "5")
		matrixError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "The homeserver is starting. Try again in a moment.")
		return
	}
	if g.loginGate != nil && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/login") {
		if !g.checkLogin(w, r) {
			return
		}
	}
	g.proxy.ServeHTTP(w, r)
}

// checkLogin applies LoginGate to a password login. The body is read (it is small) and put
// back for the homeserver.
func (g *Gateway) checkLogin(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		matrixError(w, http.StatusBadRequest, "M_NOT_JSON", "Could not read the request.")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in struct {
		Type       string `json:"type"`
		User       string `json:"user"`
		Identifier struct {
			Type string `json:"type"`
			User string `json:"user"`
		} `json:"identifier"`
	}
	if json.Unmarshal(body, &in) != nil || in.Type != "m.login.password" {
		return true
	}
	user := in.Identifier.User
	if user == "" {
		user = in.User
	}
	localpart := strings.ToLower(strings.TrimPrefix(user, "@"))
	localpart, _, _ = strings.Cut(localpart, ":")
	if err := g.loginGate(r.Context(), localpart); err != nil {
		matrixError(w, http.StatusForbidden, "M_FORBIDDEN", err.Error())
		return false
	}
	return true
}

func isFederationPath(p string) bool {
	return strings.HasPrefix(p, "/_matrix/federation/") || strings.HasPrefix(p, "/_matrix/key/")
}

// rewrite points a request at the homeserver. X-Forwarded-For is overwritten, not appended:
// Dendrite's rate limiter keys on it verbatim, so a client-supplied value would let anyone
// pick their own bucket, and an appended one would put every client in ours.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "homeserver"
	pr.Out.Host = pr.In.Host
	ip := PeerIP(pr.In)
	pr.Out.Header.Del("Forwarded")
	pr.Out.Header.Set("X-Forwarded-For", ip)
	pr.Out.Header.Set("X-Real-IP", ip)
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	pr.Out.Header.Set("X-Forwarded-Proto", proto)
}

// PeerIP is the address of the client that connected to us: the only client address the
// gateway trusts (headers can be forged by anyone on the LAN).
func PeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	st := g.current()
	hs := "stopped"
	if st.SetupComplete {
		hs = g.hs.StateName()
	}
	code := http.StatusOK
	if st.SetupComplete && hs != "running" && hs != "paused" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"setup_complete": st.SetupComplete, "homeserver": hs})
}

// baseURL is how the client reached us; that is the address it should keep using.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (g *Gateway) wellKnownClient(w http.ResponseWriter, r *http.Request) {
	if !g.current().SetupComplete {
		notFound(w, r)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, map[string]any{"m.homeserver": map[string]string{"base_url": baseURL(r)}})
}

func (g *Gateway) wellKnownServer(w http.ResponseWriter, r *http.Request) {
	st := g.current()
	if !st.SetupComplete || !st.Federation {
		notFound(w, r)
		return
	}
	host := r.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "80"
		if r.TLS != nil {
			port = "443"
		}
		host = net.JoinHostPort(host, port)
	}
	writeJSON(w, http.StatusOK, map[string]string{"m.server": host})
}

func (g *Gateway) root(w http.ResponseWriter, r *http.Request) {
	if !g.current().SetupComplete && g.firstRun != nil {
		g.firstRun.ServeHTTP(w, r)
		return
	}
	g.static.ServeHTTP(w, r)
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	matrixError(w, http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request")
}

func matrixError(w http.ResponseWriter, code int, errcode, msg string) {
	writeJSON(w, code, map[string]string{"errcode": errcode, "error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

// recorder notes the status and size for the access log, and passes Flush through so
// streamed answers are not buffered.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
