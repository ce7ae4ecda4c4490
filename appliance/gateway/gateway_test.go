package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// echoHS stands in for Dendrite: it answers with what it received.
type echoHS struct {
	srv   *httptest.Server
	ready chan struct{}
}

func newEchoHS(t *testing.T) *echoHS {
	h := &echoHS{ready: make(chan struct{})}
	close(h.ready)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"uri": r.URL.RequestURI(), "xff": r.Header.Get("X-Forwarded-For"),
			"real_ip": r.Header.Get("X-Real-IP"), "forwarded": r.Header.Get("Forwarded"), "host": r.Host,
		})
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *echoHS) WaitReady(ctx context.Context) error {
	select {
	case <-h.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *echoHS) Transport() http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Host = strings.TrimPrefix(h.srv.URL, "http://")
		return http.DefaultTransport.RoundTrip(r)
	})
}

func (h *echoHS) StateName() string { return "running" }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newTestGateway(t *testing.T, hs Homeserver, st State) *Gateway {
	g := New(Options{
		Homeserver: hs,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Static:     fstest.MapFS{"index.html": {Data: []byte("<h1>chat</h1>")}},
		FirstRun:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "first run") }),
	})
	g.SetState(st)
	return g
}

func serve(g http.Handler, method, target, peer string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = peer
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	return rec
}

func TestProxyOverwritesForwardedFor(t *testing.T) {
	g := newTestGateway(t, newEchoHS(t), State{SetupComplete: true, ServerName: "box.lan"})
	rec := serve(g, "GET", "http://box.lan/_matrix/client/r0/sync?access_token=abc&since=s1", "192.168.1.50:40000",
		map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "Forwarded": "for=6.6.6.6"})
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got map[string]string
	json.Unmarshal(rec.Body.Bytes(), &got)
	want := map[string]string{"uri": "/_matrix/client/r0/sync?access_token=abc&since=s1", "xff": "192.168.1.50", "real_ip": "192.168.1.50", "forwarded": "", "host": "box.lan"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// IPv6 peers are passed without brackets or port.
	rec = serve(g, "GET", "/_matrix/client/versions", "[fd00::7]:5555", nil)
	json.Unmarshal(rec.Body.Bytes(), &got)
	if got["xff"] != "fd00::7" {
		t.Errorf("ipv6 xff = %q", got["xff"])
	}
}

func TestRouting(t *testing.T) {
	hs := newEchoHS(t)
	for _, tc := range []struct {
		name string
		st   State
		path string
		code int
		body string
	}{
		{"first run page", State{}, "/", 200, "first run"},
		{"matrix before setup", State{}, "/_matrix/client/versions", 503, "not set up"},
		{"well-known before setup", State{}, "/.well-known/matrix/client", 404, ""},
		{"web ui", State{SetupComplete: true}, "/", 200, "<h1>chat</h1>"},
		{"client api", State{SetupComplete: true}, "/_matrix/client/v3/login", 200, `"uri"`},
		{"synapse client api", State{SetupComplete: true}, "/_synapse/client/pick_idp", 200, `"uri"`},
		{"synapse admin", State{SetupComplete: true}, "/_synapse/admin/v1/register", 404, "M_UNRECOGNIZED"},
		{"dendrite admin", State{SetupComplete: true}, "/_dendrite/admin/evacuateRoom/x", 404, ""},
		{"metrics", State{SetupComplete: true}, "/metrics", 404, ""},
		{"federation off", State{SetupComplete: true}, "/_matrix/federation/v1/version", 404, ""},
		{"keys off", State{SetupComplete: true}, "/_matrix/key/v2/server", 404, ""},
		{"server well-known off", State{SetupComplete: true}, "/.well-known/matrix/server", 404, ""},
		{"federation on", State{SetupComplete: true, Federation: true}, "/_matrix/federation/v1/version", 200, `"uri"`},
		{"server well-known on", State{SetupComplete: true, Federation: true}, "/.well-known/matrix/server", 200, `"m.server":"box.lan:80"`},
		{"client well-known", State{SetupComplete: true}, "/.well-known/matrix/client", 200, `"base_url":"http://box.lan"`},
		{"healthz", State{SetupComplete: true}, "/healthz", 200, `"homeserver":"running"`},
		{"path traversal", State{SetupComplete: true}, "/_matrix/../_synapse/admin/v1/register", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGateway(t, hs, tc.st)
			rec := serve(g, "GET", "http://box.lan"+tc.path, "10.0.0.2:1234", nil)
			if rec.Code != tc.code && !(tc.code == 404 && rec.Code == 307) {
				t.Fatalf("%s: %d, want %d (%s)", tc.path, rec.Code, tc.code, rec.Body)
			}
			if rec.Code == 307 {
				// ServeMux cleans the path; follow the redirect as a client would.
				rec = serve(g, "GET", "http://box.lan"+rec.Header().Get("Location"), "10.0.0.2:1234", nil)
				if rec.Code != tc.code {
					t.Fatalf("%s after redirect: %d", tc.path, rec.Code)
				}
			}
			if !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%s: body %q lacks %q", tc.path, rec.Body, tc.body)
			}
		})
	}
}

// blockedHS never becomes ready.
type blockedHS struct{ echoHS }

func (b *blockedHS) WaitReady(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
func (b *blockedHS) StateName() string                   { return "restarting" }

func TestNotReadyAnswers503AfterWaiting(t *testing.T) {
	g := newTestGateway(t, &blockedHS{*newEchoHS(t)}, State{SetupComplete: true})
	g.readyWait = 100 * time.Millisecond
	rec := serve(g, "GET", "/_matrix/client/versions", "10.0.0.2:1", nil)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if rec := serve(g, "GET", "/healthz", "10.0.0.2:1", nil); rec.Code != 503 {
		t.Fatalf("healthz while restarting: %d", rec.Code)
	}
}
