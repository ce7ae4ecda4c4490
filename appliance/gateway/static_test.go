package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/outpost-im/outpost/web"
)

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, s)
	zw.Close()
	return b.Bytes()
}

// elementTree looks like `make web` output: raw copies of compressible files dropped.
func elementTree(t *testing.T) fstest.MapFS {
	return fstest.MapFS{
		"index.html.gz":                        {Data: gz(t, "<title>Element</title>")},
		"index.html.br":                        {Data: []byte("BROTLI-index")},
		"bundles/index.ABC123.js.gz":           {Data: gz(t, "console.log(1)")},
		"bundles/index.ABC123.js.br":           {Data: []byte("BROTLI-js")},
		"bundles/matrix_sdk_crypto.X1.wasm.gz": {Data: gz(t, "\x00asm")},
		"bundles/Inter.Q9.woff2":               {Data: []byte("wOF2")},
		"i18n/de_DE.H1.json.gz":                {Data: gz(t, `{"a":"b"}`)},
		"media/message.ogg":                    {Data: []byte("OggS")},
		"usercontent/index.html.gz":            {Data: gz(t, "<p>frame</p>")},
		".keep":                                {Data: nil},
	}
}

func newStaticGateway(t *testing.T, fsys fs.FS, st State) *Gateway {
	g := New(Options{
		Homeserver: newEchoHS(t),
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Static:     fsys,
	})
	g.SetState(st)
	return g
}

func TestStaticEncodingsCachingAndTypes(t *testing.T) {
	g := newStaticGateway(t, elementTree(t), State{SetupComplete: true, ServerName: "box.lan"})
	cases := []struct {
		path, ae, wantEnc, wantType, wantCache, wantBody string
	}{
		{"/", "gzip, deflate, br, zstd", "br", "text/html; charset=utf-8", "no-cache", "BROTLI-index"},
		{"/", "gzip", "gzip", "text/html; charset=utf-8", "no-cache", ""},
		{"/", "", "", "text/html; charset=utf-8", "no-cache", "<title>Element</title>"},
		{"/", "br;q=0, gzip", "gzip", "text/html; charset=utf-8", "no-cache", ""},
		{"/bundles/index.ABC123.js", "br", "br", "text/javascript; charset=utf-8", immutableCache, "BROTLI-js"},
		{"/bundles/matrix_sdk_crypto.X1.wasm", "gzip", "gzip", "application/wasm", immutableCache, ""},
		{"/bundles/Inter.Q9.woff2", "br, gzip", "", "font/woff2", immutableCache, "wOF2"},
		{"/i18n/de_DE.H1.json", "identity", "", "application/json", immutableCache, `{"a":"b"}`},
		{"/media/message.ogg", "gzip", "", "audio/ogg", "no-cache", "OggS"},
	}
	for _, c := range cases {
		rec := serve(g, "GET", c.path, "192.0.2.1:1", map[string]string{"Accept-Encoding": c.ae})
		if rec.Code != 200 {
			t.Fatalf("%s (%q): status %d", c.path, c.ae, rec.Code)
		}
		h := rec.Header()
		if h.Get("Content-Encoding") != c.wantEnc || h.Get("Content-Type") != c.wantType || h.Get("Cache-Control") != c.wantCache {
			t.Errorf("%s (%q): encoding %q type %q cache %q", c.path, c.ae, h.Get("Content-Encoding"), h.Get("Content-Type"), h.Get("Cache-Control"))
		}
		if c.wantBody != "" && rec.Body.String() != c.wantBody {
			t.Errorf("%s (%q): body %q, want %q", c.path, c.ae, rec.Body.String(), c.wantBody)
		}
		if strings.HasSuffix(c.path, "/") && !strings.Contains(h.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: no Vary: Accept-Encoding", c.path)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self' blob:", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", c.path, csp, want)
			}
		}
		if strings.Contains(csp, "http") || strings.Contains(csp, "*") || strings.Contains(csp, "unsafe-eval'") && !strings.Contains(csp, "wasm-unsafe-eval") {
			t.Errorf("%s: CSP allows too much: %q", c.path, csp)
		}
	}
}

func TestStaticConditionalAndHidden(t *testing.T) {
	g := newStaticGateway(t, elementTree(t), State{SetupComplete: true, ServerName: "box.lan"})
	first := serve(g, "GET", "/", "192.0.2.1:1", map[string]string{"Accept-Encoding": "br"})
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("index.html has no ETag")
	}
	again := serve(g, "GET", "/", "192.0.2.1:1", map[string]string{"Accept-Encoding": "br", "If-None-Match": etag})
	if again.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", again.Code)
	}
	for _, p := range []string{"/.keep", "/index.html.gz", "/bundles/index.ABC123.js.br", "/nope.js", "/bundles/"} {
		if rec := serve(g, "GET", p, "192.0.2.1:1", nil); rec.Code != 404 {
			t.Errorf("%s: status %d, want 404", p, rec.Code)
		}
	}
	if rec := serve(g, "POST", "/", "192.0.2.1:1", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d", rec.Code)
	}
	uc := serve(g, "GET", "/usercontent/", "192.0.2.1:1", nil)
	if uc.Code != 200 || !strings.Contains(uc.Header().Get("Content-Security-Policy"), "frame-ancestors 'self'") || uc.Body.String() != "<p>frame</p>" {
		t.Errorf("usercontent: %d %q %q", uc.Code, uc.Header().Get("Content-Security-Policy"), uc.Body.String())
	}
}

func TestElementConfigFollowsSettings(t *testing.T) {
	g := newStaticGateway(t, elementTree(t), State{SetupComplete: false})
	if rec := serve(g, "GET", "/config.json", "192.0.2.1:1", nil); rec.Code == 200 {
		t.Fatalf("config.json served before setup")
	}
	for _, fed := range []bool{false, true} {
		g.SetState(State{SetupComplete: true, ServerName: "box.lan", Federation: fed})
		req := serve(g, "GET", "https://chat.box.lan:8443/config.json", "192.0.2.1:1", nil)
		if req.Code != 200 || req.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("config.json: %d cache %q", req.Code, req.Header().Get("Cache-Control"))
		}
		raw := req.Body.String()
		var cfg map[string]any
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatal(err)
		}
		hs := cfg["default_server_config"].(map[string]any)["m.homeserver"].(map[string]any)
		// The scheme follows the connection (httptest gives an https:// target TLS).
		if hs["base_url"] != "https://chat.box.lan:8443" || hs["server_name"] != "box.lan" {
			t.Errorf("homeserver %v", hs)
		}
		if cfg["default_federate"] != fed {
			t.Errorf("default_federate %v with federation %v", cfg["default_federate"], fed)
		}
		for _, k := range []string{"integrations_ui_url", "integrations_rest_url", "bug_report_endpoint_url", "posthog", "sentry", "map_style_url", "privacy_policy_url"} {
			if v, ok := cfg[k]; !ok || v != nil {
				t.Errorf("%s = %v, want explicit null", k, v)
			}
		}
		for _, k := range []string{"disable_custom_urls", "disable_guests", "disable_3pid_login"} {
			if cfg[k] != true {
				t.Errorf("%s = %v", k, cfg[k])
			}
		}
		sd := cfg["setting_defaults"].(map[string]any)
		for _, k := range []string{"UIFeature.registration", "UIFeature.widgets", "UIFeature.identityServer", "UIFeature.thirdPartyId", "UIFeature.Feedback", "UIFeature.locationSharing", "fallbackICEServerAllowed", "urlPreviewsEnabled"} {
			if sd[k] != false {
				t.Errorf("setting_defaults.%s = %v", k, sd[k])
			}
		}
		// Nothing names a host other than the box itself.
		for _, bad := range []string{"element.io", "matrix.org", "vector.im", "matrix.to", "apple.com", "google.com", "f-droid", "github"} {
			if strings.Contains(raw, bad) {
				t.Errorf("config.json mentions %s: %s", bad, raw)
			}
		}
		if !strings.Contains(raw, `"jitsi":{"preferred_domain":"chat.box.lan"}`) {
			t.Errorf("jitsi not local: %s", raw)
		}
	}
}

// Without `make web`, / explains how to build Element, and Outpost's own files still load.
func TestWithoutElementBuild(t *testing.T) {
	if web.ElementBuilt() {
		t.Skip("this binary embeds Element Web; the unbuilt case is covered by a tree without it")
	}
	g := newStaticGateway(t, web.Static(), State{SetupComplete: true, ServerName: "box.lan"})
	rec := serve(g, "GET", "/", "192.0.2.1:1", map[string]string{"Accept-Encoding": "gzip, br"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "make web") {
		t.Fatalf("/ without Element: %d %s", rec.Code, rec.Body.String())
	}
	if rec := serve(g, "GET", "/outpost.css", "192.0.2.1:1", nil); rec.Code != 200 || rec.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("/outpost.css: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// With Element built, its files win and Outpost's own stay reachable beneath them.
func TestElementOverOwnFiles(t *testing.T) {
	if !web.ElementBuilt() {
		t.Skip("Element Web not built (make web)")
	}
	g := newStaticGateway(t, web.Static(), State{SetupComplete: true, ServerName: "box.lan"})
	rec := serve(g, "GET", "/", "192.0.2.1:1", map[string]string{"Accept-Encoding": "br"})
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "br" {
		t.Fatalf("/: %d %q", rec.Code, rec.Header().Get("Content-Encoding"))
	}
	plain := serve(g, "GET", "/", "192.0.2.1:1", nil)
	if !strings.Contains(plain.Body.String(), `data-mx-theme="dark"`) {
		t.Errorf("/ is not Element: %.200s", plain.Body.String())
	}
	for _, p := range []string{"/outpost.css", "/help.html"} {
		if rec := serve(g, "GET", p, "192.0.2.1:1", nil); rec.Code != 200 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
}
