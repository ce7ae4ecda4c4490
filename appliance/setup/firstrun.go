package setup

import (
	"net/http"
)

// FirstRunHandler serves / until setup completes: it sends people to the setup wizard and
// serves the shared page assets; everything else is 404.
func FirstRunHandler(static http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/index.html":
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, "/setup/", http.StatusSeeOther)
		case "/outpost.css", "/outpost-ui.js":
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
