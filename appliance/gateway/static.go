package gateway

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// contentSecurityPolicy allows nothing from outside the box. Element needs
// 'wasm-unsafe-eval' to compile its crypto (WebAssembly, not JavaScript eval), blob: for
// decrypted media and its download frame, and inline style attributes (sanitised message
// HTML carries colours as style attributes; script stays strictly 'self').
const contentSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; " +
	"media-src 'self' blob:; connect-src 'self' blob:; worker-src 'self' blob:; " +
	"frame-src 'self' blob:; manifest-src 'self'; form-action 'self'; base-uri 'none'; " +
	"object-src 'none'; frame-ancestors 'none'"

// usercontent/ is Element's download frame: the app itself frames it.
const usercontentPolicy = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; " +
	"img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// immutableCache is for content-addressed files: their names change when they do.
const immutableCache = "public, max-age=31536000, immutable"

var mimeTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".wasm":  "application/wasm",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".gif":   "image/gif",
	".jpg":   "image/jpeg",
	".jpeg":  "image/jpeg",
	".webp":  "image/webp",
	".ico":   "image/x-icon",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".mp3":   "audio/mpeg",
	".ogg":   "audio/ogg",
	".webm":  "video/webm",
	".mp4":   "video/mp4",
	".txt":   "text/plain; charset=utf-8",
	".map":   "application/json",
}

// staticTree serves the web UI at /: Element Web (built by `make web`) over Outpost's own
// files, and /config.json generated from the box's settings. Compressible files may exist
// only as name.br and name.gz: the client gets the best encoding it accepts, and one that
// accepts neither gets the gzip copy inflated on the fly.
type staticTree struct {
	fsys  fs.FS
	state func() State
	etags sync.Map // file name -> strong ETag, for files that are not content-addressed
}

func staticHandler(fsys fs.FS, state func() State) http.Handler {
	return &staticTree{fsys: fsys, state: state}
}

func (s *staticTree) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "geolocation=(), payment=(), usb=(), serial=()")
	if strings.HasPrefix(r.URL.Path, "/usercontent/") {
		h.Set("X-Frame-Options", "SAMEORIGIN")
		h.Set("Content-Security-Policy", usercontentPolicy)
	} else {
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/config.json" {
		s.serveConfig(w, r)
		return
	}
	name, ok := fileName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.serveFile(w, r, name)
}

// fileName maps a URL path to a name in the tree: directories to their index.html; hidden
// files and the precompressed copies are not addressable themselves.
func fileName(urlPath string) (string, bool) {
	name := strings.TrimPrefix(path.Clean("/"+urlPath), "/")
	if name == "" || strings.HasSuffix(urlPath, "/") {
		name = path.Join(name, "index.html")
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return "", false
		}
	}
	if strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".br") || !fs.ValidPath(name) {
		return "", false
	}
	return name, true
}

func (s *staticTree) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	ext := path.Ext(name)
	ctype, ok := mimeTypes[ext]
	if !ok {
		ctype = "application/octet-stream"
		if ext == "" {
			ctype = "text/plain; charset=utf-8"
		}
	}
	h.Set("Content-Type", ctype)
	if immutable(name) {
		h.Set("Cache-Control", immutableCache)
	} else {
		h.Set("Cache-Control", "no-cache")
	}

	ae := r.Header.Get("Accept-Encoding")
	type variant struct{ suffix, encoding string }
	var tries []variant
	if accepts(ae, "br") {
		tries = append(tries, variant{".br", "br"})
	}
	if accepts(ae, "gzip") {
		tries = append(tries, variant{".gz", "gzip"})
	}
	tries = append(tries, variant{"", ""})
	for _, v := range tries {
		f, err := s.fsys.Open(name + v.suffix)
		if err != nil {
			continue
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			continue
		}
		rs, ok := f.(io.ReadSeeker)
		if !ok {
			http.Error(w, "unseekable file", http.StatusInternalServerError)
			return
		}
		if s.hasVariants(name) {
			h.Add("Vary", "Accept-Encoding")
		}
		if v.encoding != "" {
			h.Set("Content-Encoding", v.encoding)
		}
		if !immutable(name) {
			if tag, err := s.etag(name+v.suffix, rs); err == nil {
				h.Set("ETag", tag)
			}
		}
		// No modification time: the ETag (or the name, for hashed files) identifies it.
		http.ServeContent(w, r, name, time.Time{}, rs)
		return
	}
	// A client that accepts neither encoding, asking for a file kept only compressed.
	if f, err := s.fsys.Open(name + ".gz"); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			http.Error(w, "corrupt file", http.StatusInternalServerError)
			return
		}
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			io.Copy(w, zr) //nolint:errcheck // the client went away
		}
		return
	}
	h.Del("Content-Type")
	h.Del("Cache-Control")
	http.NotFound(w, r)
}

func (s *staticTree) hasVariants(name string) bool {
	_, err := fs.Stat(s.fsys, name+".gz")
	return err == nil
}

func (s *staticTree) etag(key string, rs io.ReadSeeker) (string, error) {
	if v, ok := s.etags.Load(key); ok {
		return v.(string), nil
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, rs); err != nil {
		return "", err
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tag := `"` + base64.RawURLEncoding.EncodeToString(sum.Sum(nil)[:16]) + `"`
	s.etags.Store(key, tag)
	return tag, nil
}

// immutable says whether a file is content-addressed: the build puts every hashed file
// under bundles/ or i18n/, and nothing else there.
func immutable(name string) bool {
	return strings.HasPrefix(name, "bundles/") || strings.HasPrefix(name, "i18n/")
}

// accepts reports whether an Accept-Encoding header allows coding (q=0 refuses it).
func accepts(header, coding string) bool {
	for _, part := range strings.Split(header, ",") {
		token, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(token), coding) {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return !(q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000")
	}
	return false
}

// SetPageHeaders sets the headers of Outpost's own pages (setup wizard, admin console,
// invitations): only our own scripts and styles, never framed, no referrer, no sniffing.
func SetPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
