// Package webdav is a target on a WebDAV server (Nextcloud, ownCloud, Apache mod_dav, rclone,
// a NAS...), via github.com/studio-b12/gowebdav.
//
// Put uploads to a temporary name and MOVEs it over the final name with "Overwrite: T", so a
// reader sees the old file or the new one, never a partial upload.
//
// Two things gowebdav v0.10.0 does not do are done here:
//
//   - Contexts. gowebdav's methods take none, so every call gets a throwaway gowebdav.Client
//     whose transport puts the caller's context on each request (dial, TLS, headers and body
//     reads all stop when it is cancelled). The connection pool and the negotiated
//     authentication are shared. Limitation: gowebdav returns some failures as a bare HTTP
//     status, so a cancelled call's error does not always say it was cancelled; and a server
//     that stalls in the middle of a body is only bounded by the caller's context.
//   - Streaming uploads. gowebdav's WriteStream, and its authenticator when it keeps a copy
//     to resend after an authentication challenge, read a non-seekable body into memory; a
//     multi-gigabyte media file would exhaust the box. Put sends the PUT itself: small files
//     with a Content-Length, larger ones chunked, never buffered, never resent.
package webdav

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/studio-b12/gowebdav"

	"github.com/outpost-im/outpost/appliance/target"
)

// smallPut is how much Put reads ahead: a file that fits is sent with a Content-Length (and
// can be resent if the server re-challenges authentication); a larger one streams chunked.
const smallPut = 1 << 20

// cleanupTimeout bounds the best-effort removal of a temporary file after a failed Put,
// which cannot use the caller's (possibly cancelled) context.
const cleanupTimeout = 10 * time.Second

// Target is a directory on a WebDAV server.
type Target struct {
	root      string // base URL (with Dir), as gowebdav wants it: unescaped, ending in "/"
	user      string
	auth      gowebdav.Authorizer
	transport *http.Transport

	mu   sync.Mutex
	dirs map[string]bool // collections known to exist, so Put does not MKCOL every time
}

// Open connects to the server c.URL names, checks the credentials and creates c.Dir (one
// MKCOL per level) if it is missing.
func Open(ctx context.Context, c target.Config) (*Target, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("webdav: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webdav: url %q must be http(s)://host[:port]/path", c.URL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// Credentials in the URL would end up in logs and error messages.
		return nil, fmt.Errorf("webdav: the url must not contain a user name, password, query or fragment; use the user and password settings")
	}
	dir := strings.Trim(c.Dir, "/")
	if dir != "" {
		if err := target.CheckName(dir); err != nil {
			return nil, fmt.Errorf("webdav: dir: %w", err)
		}
	}
	tr, err := transport(c)
	if err != nil {
		return nil, err
	}
	// gowebdav escapes each path segment itself, so it is given the decoded path.
	base := gowebdav.FixSlash(u.Scheme + "://" + u.Host + u.Path)
	t := &Target{
		root:      base,
		user:      c.User,
		auth:      gowebdav.NewAutoAuth(c.User, c.Password),
		transport: tr,
		dirs:      map[string]bool{},
	}
	ok := false
	defer func() {
		if !ok {
			tr.CloseIdleConnections()
		}
	}()
	// A PROPFIND of the URL itself: it negotiates the authentication scheme (Basic or
	// Digest) once for all later requests, and tells a WebDAV collection from a web page.
	fi, err := t.client(ctx).Stat("/")
	if err != nil {
		return nil, t.describe("open "+c.URL, err)
	}
	if fi == nil || !fi.IsDir() {
		return nil, fmt.Errorf("webdav: %s is not a WebDAV collection", c.URL)
	}
	if dir != "" {
		if err := t.mkdirs(ctx, dir); err != nil {
			return nil, err
		}
		t.root = gowebdav.FixSlash(gowebdav.Join(base, dir))
		t.dirs = map[string]bool{}
	}
	ok = true
	return t, nil
}

// transport is the shared connection pool: no proxy from the environment, the configured
// private CA, and bounds on the steps that have no natural end.
func transport(c target.Config) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		TLSHandshakeTimeout: 10 * time.Second,
		// Counted from the end of the request body, so a large upload is not cut short; a
		// server that then never answers is.
		ResponseHeaderTimeout: 5 * time.Minute,
		// Files must arrive byte for byte: no transparent gzip decoding.
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if c.CAPEM != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(c.CAPEM)) {
			return nil, fmt.Errorf("webdav: the CA certificate setting contains no PEM certificate")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// ctxTransport runs every request with one caller's context (see the package comment).
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (c ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return c.base.RoundTrip(r.WithContext(c.ctx))
}

// client returns a gowebdav client whose requests carry ctx. It is cheap: the transport
// and the authorizer (with the negotiated scheme) are shared.
func (t *Target) client(ctx context.Context) *gowebdav.Client {
	c := gowebdav.NewAuthClient(t.root, t.auth)
	c.SetTransport(ctxTransport{ctx, t.transport})
	return c
}

func statusOf(err error) int {
	var se gowebdav.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// describe turns a failure into an error that says what to fix. It never includes the
// password.
func (t *Target) describe(op string, err error) error {
	var uae x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	if errors.As(err, &uae) || errors.As(err, &cve) {
		return fmt.Errorf("webdav: %s: the server's certificate is not trusted (add the CA certificate that signed it): %w", op, err)
	}
	switch statusOf(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("webdav: %s: the server refused the user name %q or its password: %w", op, t.user, err)
	case http.StatusForbidden:
		return fmt.Errorf("webdav: %s: permission denied for user %q: %w", op, t.user, err)
	case http.StatusNotFound:
		return fmt.Errorf("webdav: %s: not found (check the URL): %w", op, err)
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return fmt.Errorf("webdav: %s: the server does not speak WebDAV at this URL: %w", op, err)
	case http.StatusInsufficientStorage:
		return fmt.Errorf("webdav: %s: the server is out of space: %w", op, err)
	}
	return fmt.Errorf("webdav: %s: %w", op, err)
}

func checkName(name string) error {
	if err := target.CheckName(name); err != nil {
		return fmt.Errorf("webdav: %w", err)
	}
	return nil
}

// mkdirs creates dir and its parents, one MKCOL per level (a server need not create
// intermediate collections), skipping those already known to exist.
func (t *Target) mkdirs(ctx context.Context, dir string) error {
	c := t.client(ctx)
	p := ""
	for _, part := range strings.Split(dir, "/") {
		p = path.Join(p, part)
		t.mu.Lock()
		known := t.dirs[p]
		t.mu.Unlock()
		if known {
			continue
		}
		// gowebdav counts 405 (the collection exists) as success.
		if err := c.Mkdir(p, 0o755); err != nil {
			return t.describe("create directory "+p, err)
		}
		t.mu.Lock()
		t.dirs[p] = true
		t.mu.Unlock()
	}
	return nil
}

// Put implements target.Target.
func (t *Target) Put(ctx context.Context, name string, r io.Reader) error {
	if err := checkName(name); err != nil {
		return err
	}
	if dir := path.Dir(name); dir != "." {
		if err := t.mkdirs(ctx, dir); err != nil {
			return err
		}
	}
	tmp := target.TempName(name)
	if sent, err := t.put(ctx, tmp, r); err != nil {
		// With an HTTP status the server has finished with the upload; otherwise it may
		// still be closing the aborted one.
		if sent {
			t.removeTemp(ctx, tmp, statusOf(err) == 0)
		}
		return t.describe("put "+name, err)
	}
	if err := t.client(ctx).Rename(tmp, name, true); err != nil {
		t.removeTemp(ctx, tmp, false)
		return t.describe("put "+name+": move into place", err)
	}
	return nil
}

// removeTemp deletes a temporary file after a failed Put. After an aborted upload the server
// may still be closing it when the DELETE arrives: it answers 423 Locked, or 404 because the
// file only appears once closed (rclone does both), so then it is tried a few times. If the
// file stays, its name marks it as temporary and a later clean-up removes it.
func (t *Target) removeTemp(ctx context.Context, tmp string, aborted bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, wait := range []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second} {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		resp, err := t.do(ctx, http.MethodDelete, tmp, nil, 0)
		if err != nil {
			return
		}
		resp.Body.Close()
		if !aborted || resp.StatusCode != http.StatusLocked && resp.StatusCode != http.StatusNotFound {
			return
		}
	}
}

// put uploads r as p (see the package comment for why not gowebdav's WriteStream). sent
// reports whether a request went out, i.e. whether p may exist after an error.
func (t *Target) put(ctx context.Context, p string, r io.Reader) (sent bool, err error) {
	r = target.ContextReader(ctx, r)
	head := make([]byte, smallPut)
	n, err := io.ReadFull(r, head)
	var body io.Reader
	var length int64
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if n > 0 {
			body, length = bytes.NewReader(head[:n]), int64(n)
		}
	case err != nil:
		return false, err
	default:
		body, length = io.MultiReader(bytes.NewReader(head), r), -1
	}
	resp, err := t.do(ctx, http.MethodPut, p, body, length)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return true, nil
	case http.StatusNotFound, http.StatusConflict:
		// The parent collection went away behind our back: find out again next time.
		t.mu.Lock()
		clear(t.dirs)
		t.mu.Unlock()
	}
	return true, gowebdav.NewPathError("PUT", p, resp.StatusCode)
}

// do sends one request with the negotiated authentication. A seekable body is resent if
// the server challenges again (a stale Digest nonce); a streamed one is never buffered, so
// such a challenge fails the request instead.
func (t *Target) do(ctx context.Context, method, p string, body io.Reader, length int64) (*http.Response, error) {
	uri := gowebdav.PathEscape(gowebdav.Join(t.root, p))
	_, seekable := body.(io.Seeker)
	streamed := body != nil && !seekable
	var auth gowebdav.Authenticator
	if streamed {
		auth, _ = t.auth.NewAuthenticator(nil)
	} else {
		auth, body = t.auth.NewAuthenticator(body)
	}
	defer auth.Close()
	hc := &http.Client{
		Transport:     t.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, uri, body)
		if err != nil {
			return nil, err
		}
		req.ContentLength = length
		if body == nil {
			req.ContentLength = 0
		}
		if err := auth.Authorize(hc, req, p); err != nil {
			return nil, err
		}
		if streamed {
			// Never let net/http (HTTP/2 retries) or a redirect resend a half-read stream.
			req.GetBody = nil
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		redo, err := auth.Verify(hc, resp, p)
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		if !redo {
			return resp, nil
		}
		resp.Body.Close()
		if streamed || attempt >= 2 {
			return nil, fmt.Errorf("the server asked to authenticate again in the middle of %s %s", method, p)
		}
		if req.GetBody != nil {
			rc, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			if rc != nil {
				body = rc
			}
		}
	}
}

// Get implements target.Target.
func (t *Target) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	rc, err := t.client(ctx).ReadStream(name)
	if gowebdav.IsErrNotFound(err) {
		return nil, fmt.Errorf("webdav: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return nil, t.describe("get "+name, err)
	}
	return rc, nil
}

// Stat implements target.Target.
func (t *Target) Stat(ctx context.Context, name string) (target.Info, error) {
	if err := checkName(name); err != nil {
		return target.Info{}, err
	}
	fi, err := t.client(ctx).Stat(name)
	if gowebdav.IsErrNotFound(err) {
		return target.Info{}, fmt.Errorf("webdav: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return target.Info{}, t.describe("stat "+name, err)
	}
	if fi == nil {
		return target.Info{}, fmt.Errorf("webdav: stat %s: the server returned no properties", name)
	}
	if fi.IsDir() {
		return target.Info{}, fmt.Errorf("webdav: %s is a directory", name)
	}
	return target.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements target.Target. It walks with PROPFIND Depth 1, one request per
// directory: many servers refuse Depth infinity.
func (t *Target) List(ctx context.Context, dir string) ([]target.Info, error) {
	if dir != "" {
		if err := checkName(dir); err != nil {
			return nil, err
		}
	}
	c := t.client(ctx)
	var out []target.Info
	var walk func(d string, top bool) error
	walk = func(d string, top bool) error {
		entries, err := c.ReadDir(d)
		if gowebdav.IsErrNotFound(err) && top {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(d, e.Name())
			if e.IsDir() {
				if err := walk(p, false); err != nil {
					return err
				}
				continue
			}
			out = append(out, target.Info{Name: p, Size: e.Size(), ModTime: e.ModTime()})
		}
		return nil
	}
	if err := walk(dir, true); err != nil {
		return nil, t.describe("list "+dir, err)
	}
	return out, nil
}

// Delete implements target.Target.
func (t *Target) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	// Not gowebdav's Remove: it reports every transport error (a cancel too) as status 400.
	resp, err := t.do(ctx, http.MethodDelete, name, nil, 0)
	if err != nil {
		return t.describe("delete "+name, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusNotFound:
		return nil
	}
	return t.describe("delete "+name, gowebdav.NewPathError("DELETE", name, resp.StatusCode))
}

// Close implements target.Target.
func (t *Target) Close() error {
	t.transport.CloseIdleConnections()
	return nil
}

var _ target.Target = (*Target)(nil)
