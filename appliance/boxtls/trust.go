package boxtls

import (
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/outpost-im/outpost/appliance/tlsca"
)

var trustPage = template.Must(template.New("trust").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outpost — trust this box</title>
<link rel="stylesheet" href="/outpost.css">
</head>
<body>
<main>
<h1>Connect securely to this Outpost box</h1>
<div class="card">
<p>This box encrypts every connection with a certificate from its own certificate
authority. Install that authority once on each device, then continue to the secure site.</p>
<ol>
  <li>Download the certificate: <a href="/ca.crt">ca.crt</a> (Windows, macOS, Linux, Android) or
      <a href="/outpost.mobileconfig">the profile for iPhone and iPad</a>.</li>
  <li>Check that its SHA-256 fingerprint matches the one on the box's screen:
      <p class="secret">{{.Fingerprint}}</p></li>
  <li>Install it as a trusted root (on iPhone also enable it under Settings → General →
      About → Certificate Trust Settings).</li>
</ol>
<div class="actions"><a class="button" href="{{.HTTPS}}">Continue to {{.HTTPS}}</a></div>
</div>
</main>
</body>
</html>
`))

// trustHandler serves the plain-HTTP side once TLS is up.
func (s *Service) trustHandler(httpsPort int) http.Handler {
	httpsURL := func(r *http.Request, path string) string {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if httpsPort != 443 {
			host += ":" + strconv.Itoa(httpsPort)
		}
		return "https://" + host + path
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		switch r.URL.Path {
		case "/":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'")
			trustPage.Execute(w, struct{ Fingerprint, HTTPS string }{s.Fingerprint(), httpsURL(r, "/")}) //nolint:errcheck
		case "/ca.crt":
			h.Set("Content-Type", "application/x-x509-ca-cert")
			h.Set("Content-Disposition", `attachment; filename="outpost-ca.crt"`)
			w.Write(s.RootPEM()) //nolint:errcheck
		case "/outpost.mobileconfig":
			ca := s.ca.Load()
			if ca == nil {
				http.NotFound(w, r)
				return
			}
			h.Set("Content-Type", tlsca.MobileConfigContentType)
			h.Set("Content-Disposition", `attachment; filename="outpost.mobileconfig"`)
			w.Write(ca.MobileConfig()) //nolint:errcheck
		case "/outpost.css", "/healthz":
			// Harmless and useful over plain HTTP: the page's style, and health for monitors.
			s.gw.ServeHTTP(w, r)
		default:
			// 308 keeps the method and body, so a client that POSTs follows correctly.
			http.Redirect(w, r, httpsURL(r, r.URL.RequestURI()), http.StatusPermanentRedirect)
		}
	})
}
