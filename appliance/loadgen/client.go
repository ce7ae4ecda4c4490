package loadgen

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/homeserver"
)

// Target is a homeserver to put load on, and how to reach and populate it.
type Target struct {
	// Name labels the results ("outpost", "stock", "outpost-direct").
	Name string
	// BaseURL is the client-server API base, e.g. http://127.0.0.1:8080. With Socket set,
	// its host part is ignored.
	BaseURL string
	// Socket, when set, is a unix socket every request is sent to instead of TCP.
	Socket string
	// Registrar creates accounts (outpostd's admin socket, or the shared-secret API).
	Registrar Registrar
	// Procs are the server processes whose CPU and RSS are sampled from /proc.
	Procs []Proc
}

// Proc is a server process to sample.
type Proc struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

// Registrar creates an account with a password. Clients then sign in with /login, as an
// app would.
type Registrar interface {
	Register(ctx context.Context, localpart, password string) error
}

// RegistrarFunc adapts a function to Registrar.
type RegistrarFunc func(ctx context.Context, localpart, password string) error

// Register calls f.
func (f RegistrarFunc) Register(ctx context.Context, localpart, password string) error {
	return f(ctx, localpart, password)
}

// newTransport returns the HTTP transport for a target. One transport is shared by every
// simulated user; each user holds up to two connections (its /sync long poll and its
// sends), so the idle pool must be at least that large or connections churn.
func newTransport(t Target, users int) *http.Transport {
	tr := &http.Transport{
		MaxIdleConns:        4*users + 16,
		MaxIdleConnsPerHost: 4*users + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if t.Socket != "" {
		sock := t.Socket
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	} else {
		d := &net.Dialer{Timeout: 10 * time.Second}
		tr.DialContext = d.DialContext
	}
	return tr
}

// MatrixError is a non-200 answer (the homeserver package's type).
type MatrixError = homeserver.MatrixError

// errKind condenses an error into a short label for the error counters.
func errKind(op string, err error) string {
	var me *MatrixError
	switch {
	case errors.As(err, &me):
		return fmt.Sprintf("%s: HTTP %d %s", op, me.Status, me.ErrCode)
	case errors.Is(err, context.DeadlineExceeded):
		return op + ": timeout"
	default:
		s := err.Error()
		if i := strings.LastIndex(s, ": "); i >= 0 {
			s = s[i+2:]
		}
		return op + ": " + s
	}
}

// client is one simulated user's view of the client-server API.
type client struct {
	base   string
	hc     *http.Client
	token  string
	userID string
}

// do sends a request and decodes a JSON answer. body is JSON-encoded unless it is a
// []byte (sent as is, with contentType).
func (c *client) do(ctx context.Context, method, path string, body any, contentType string, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		me := &MatrixError{Status: resp.StatusCode}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, me) != nil || me.ErrCode == "" {
			me.ErrCode = "M_UNKNOWN"
		}
		return me
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// doRetry is do for setup calls: it waits out rate limits (login, join and invite are
// limited per client address or device) and retries transient failures a few times.
func (c *client) doRetry(ctx context.Context, method, path string, body any, out any) error {
	var err error
	for attempt := 0; attempt < 40; attempt++ {
		err = c.do(ctx, method, path, body, "", out)
		wait := rateLimited(err)
		var me *MatrixError
		switch {
		case err == nil:
			return nil
		case wait > 0:
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		case errors.As(err, &me) && me.Status < 500:
			return err
		default:
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return err
}

// rateLimited is how long a rate-limit answer asks the client to wait (within 50 ms..2 s),
// or 0 when err is not one.
func rateLimited(err error) time.Duration {
	var me *MatrixError
	if !errors.As(err, &me) || me.Status != http.StatusTooManyRequests {
		return 0
	}
	return time.Duration(min(max(me.RetryAfterMs, 50), 2000)) * time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func pathEscape(s string) string { return url.PathEscape(s) }

func (c *client) login(ctx context.Context, user, password string) error {
	var resp struct {
		AccessToken string `json:"access_token"`
		UserID      string `json:"user_id"`
	}
	err := c.doRetry(ctx, http.MethodPost, "/_matrix/client/v3/login", map[string]any{
		"type":                        "m.login.password",
		"identifier":                  map[string]string{"type": "m.id.user", "user": user},
		"password":                    password,
		"initial_device_display_name": "outpost-load",
	}, &resp)
	if err != nil {
		return fmt.Errorf("login %s: %w", user, err)
	}
	c.token, c.userID = resp.AccessToken, resp.UserID
	return nil
}

// syncFilter is what a typical client asks for: lazy-loaded members, a bounded timeline,
// no presence. Uploaded once per user; /sync then names it by ID, as Element does.
var syncFilter = map[string]any{
	"room": map[string]any{
		"state":    map[string]any{"lazy_load_members": true},
		"timeline": map[string]any{"limit": 100, "lazy_load_members": true},
	},
	"presence": map[string]any{"not_types": []string{"*"}},
}

func (c *client) uploadFilter(ctx context.Context) (string, error) {
	var resp struct {
		FilterID string `json:"filter_id"`
	}
	err := c.doRetry(ctx, http.MethodPost, "/_matrix/client/v3/user/"+url.PathEscape(c.userID)+"/filter", syncFilter, &resp)
	return resp.FilterID, err
}

// syncResponse holds the parts of /sync the load generator reads.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Limited bool `json:"limited"`
				Events  []struct {
					Type    string `json:"type"`
					Sender  string `json:"sender"`
					Content struct {
						Body string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

func (c *client) sync(ctx context.Context, since, filter string, timeout time.Duration) (*syncResponse, error) {
	q := url.Values{"timeout": {fmt.Sprint(timeout.Milliseconds())}}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	var resp syncResponse
	if err := c.do(ctx, http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil, "", &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (c *client) send(ctx context.Context, roomID, txn string, content map[string]any) error {
	return c.do(ctx, http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+url.PathEscape(txn), content, "", nil)
}

func (c *client) upload(ctx context.Context, name string, data []byte) (string, error) {
	var resp struct {
		ContentURI string `json:"content_uri"`
	}
	err := c.do(ctx, http.MethodPost, "/_matrix/media/v3/upload?filename="+url.QueryEscape(name), data, "application/octet-stream", &resp)
	if err == nil && !strings.HasPrefix(resp.ContentURI, "mxc://") {
		err = fmt.Errorf("upload returned %q, not an mxc:// URI", resp.ContentURI)
	}
	return resp.ContentURI, err
}

// SharedSecretRegistrar creates accounts through the shared-secret registration API
// (/_synapse/admin/v1/register, HMAC-SHA1), which Dendrite and Synapse both offer.
func SharedSecretRegistrar(t Target, secret string) Registrar {
	base := strings.TrimSuffix(t.BaseURL, "/")
	if t.Socket != "" {
		base = "http://homeserver"
	}
	c := &client{base: base, hc: &http.Client{Transport: newTransport(t, 1), Timeout: time.Minute}}
	return RegistrarFunc(func(ctx context.Context, localpart, password string) error {
		const path = "/_synapse/admin/v1/register"
		var nonce struct {
			Nonce string `json:"nonce"`
		}
		if err := c.doRetry(ctx, http.MethodGet, path, nil, &nonce); err != nil {
			return err
		}
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte(nonce.Nonce + "\x00" + localpart + "\x00" + password + "\x00notadmin"))
		return c.doRetry(ctx, http.MethodPost, path, map[string]any{
			"nonce": nonce.Nonce, "username": localpart, "password": password, "admin": false,
			"mac": hex.EncodeToString(mac.Sum(nil)),
		}, nil)
	})
}
