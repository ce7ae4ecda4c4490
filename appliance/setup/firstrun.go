package setup

import (
	"html/template"
	"net/http"
)

var firstRunPage = template.Must(template.New("firstrun").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outpost — set up this box</title>
<link rel="stylesheet" href="/outpost.css">
</head>
<body>
<main>
<h1>This Outpost box is not set up yet</h1>
<p>Finish setup on the machine that runs it:</p>
<pre><code>outpost -data {{.DataDir}} setup --server-name NAME --admin USER --password-stdin</code></pre>
<p>Until then the chat server is not running and nobody can sign in.</p>
</main>
</body>
</html>
`))

// FirstRunHandler serves the page shown at / until setup completes. The stylesheet comes
// from static, everything else answers 404.
func FirstRunHandler(dataDir string, static http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			firstRunPage.Execute(w, struct{ DataDir string }{dataDir}) //nolint:errcheck
		case "/outpost.css":
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
