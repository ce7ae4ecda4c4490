// Package redact removes credentials from text bound for logs. An access token in a log file
// is an account takeover, so every line that may carry one passes through here.
package redact

import (
	"net/http"
	"regexp"
)

// Placeholder replaces every redacted value.
const Placeholder = "…"

// Query parameters and JSON fields whose values are credentials.
var (
	queryRe = regexp.MustCompile(`(?i)((?:access_token|password|token|mac|nonce|session|code|secret)=)[^&\s"']+`)
	jsonRe  = regexp.MustCompile(`(?i)("(?:access_token|refresh_token|password|new_password|token|mac|registration_shared_secret|turn_shared_secret|code)"\s*:\s*")((?:[^"\\]|\\.)*)(")`)
	bearer  = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+`)
)

// String redacts credentials in a URL, query string, log line or JSON body.
func String(s string) string {
	s = queryRe.ReplaceAllString(s, "${1}"+Placeholder)
	s = jsonRe.ReplaceAllString(s, "${1}"+Placeholder+"${3}")
	s = bearer.ReplaceAllString(s, "${1}"+Placeholder)
	return s
}

// Header returns a copy of h with credential-bearing headers redacted.
func Header(h http.Header) http.Header {
	out := h.Clone()
	for _, k := range []string{"Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization", "X-Outpost-Csrf"} {
		if out.Get(k) != "" {
			out.Set(k, Placeholder)
		}
	}
	return out
}
