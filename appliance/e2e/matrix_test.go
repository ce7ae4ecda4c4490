package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// client is a minimal Matrix client-server API client, enough to drive the box as an app would.
type client struct {
	t      *testing.T
	base   string
	token  string
	userID string
	hc     *http.Client
}

// trustDirs are the data dirs of running daemons; clients trust their root CAs, as a device
// does once the box's root is installed.
var trustDirs sync.Map

// verifyWithBoxRoots checks a server certificate against the roots of the running boxes,
// read at handshake time (a box creates its root only at setup).
func verifyWithBoxRoots(cs tls.ConnectionState) error {
	pool := x509.NewCertPool()
	trustDirs.Range(func(k, _ any) bool {
		if b, err := os.ReadFile(filepath.Join(k.(string), "tls", "ca", "root.crt")); err == nil {
			pool.AppendCertsFromPEM(b)
		}
		return true
	})
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: cs.ServerName})
	return err
}

// httpClientFrom returns an HTTP client whose connections come from the given local address
// (127.0.0.x), so tests can act as different machines on the LAN. It trusts the boxes' roots
// and nothing else.
func httpClientFrom(localIP string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{
			// Verification happens in VerifyConnection, against the current set of roots.
			InsecureSkipVerify: true, //nolint:gosec
			VerifyConnection:   verifyWithBoxRoots,
		},
	}}
}

func newClient(t *testing.T, base string) *client {
	return &client{t: t, base: base, hc: httpClientFrom("127.0.0.1")}
}

type matrixErr struct {
	Status  int
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
}

func (e *matrixErr) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// do calls the API and returns a *matrixErr for non-200 answers.
func (c *client) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		me := &matrixErr{Status: resp.StatusCode}
		json.Unmarshal(data, me) //nolint:errcheck
		return me
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (c *client) must(method, path string, in, out any) {
	c.t.Helper()
	if err := c.do(method, path, in, out); err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
}

func loginBody(user, pw string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user},
		"password":   pw,
	}
}

func (c *client) login(user, pw string) {
	c.t.Helper()
	var resp struct {
		AccessToken string `json:"access_token"`
		UserID      string `json:"user_id"`
	}
	c.must(http.MethodPost, "/_matrix/client/v3/login", loginBody(user, pw), &resp)
	c.token, c.userID = resp.AccessToken, resp.UserID
}

func (c *client) createRoom(name string, invite ...string) string {
	c.t.Helper()
	var resp struct {
		RoomID string `json:"room_id"`
	}
	c.must(http.MethodPost, "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "name": name, "invite": invite}, &resp)
	return resp.RoomID
}

func (c *client) join(roomID string) {
	c.t.Helper()
	c.must(http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(roomID), map[string]any{}, nil)
}

// send posts a text message with the given transaction ID and returns the event ID.
func (c *client) send(roomID, txn, body string) (string, error) {
	var resp struct {
		EventID string `json:"event_id"`
	}
	err := c.do(http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+url.PathEscape(txn),
		map[string]any{"msgtype": "m.text", "body": body}, &resp)
	return resp.EventID, err
}

type event struct {
	EventID string         `json:"event_id"`
	Type    string         `json:"type"`
	Sender  string         `json:"sender"`
	Content map[string]any `json:"content"`
}

// messages returns the room's timeline, oldest first, paginating back to the start.
func (c *client) messages(roomID string) []event {
	c.t.Helper()
	var all []event
	from := ""
	for {
		q := url.Values{"dir": {"b"}, "limit": {"500"}}
		if from != "" {
			q.Set("from", from)
		}
		var resp struct {
			Chunk []event `json:"chunk"`
			End   string  `json:"end"`
		}
		c.must(http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?"+q.Encode(), nil, &resp)
		for i := range resp.Chunk {
			all = append([]event{resp.Chunk[i]}, all...)
		}
		if len(resp.Chunk) == 0 || resp.End == "" || resp.End == from {
			return all
		}
		from = resp.End
	}
}

// syncResponse is the part of a /sync answer the tests read.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []event `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

// timeline is the answer's new timeline events in a joined room.
func (r *syncResponse) timeline(roomID string) []event { return r.Rooms.Join[roomID].Timeline.Events }

// syncUntil long-polls /sync until a message with the given body appears in roomID
// (returning its sender) or the timeout passes.
func (c *client) syncUntil(roomID, body string, timeout time.Duration) (sender string, ok bool) {
	c.t.Helper()
	return c.syncFrom("", roomID, body, timeout)
}

// syncFrom is syncUntil starting from a sync token the client kept ("" = initial sync).
func (c *client) syncFrom(since, roomID, body string, timeout time.Duration) (sender string, ok bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		q := url.Values{"timeout": {"5000"}}
		if since != "" {
			q.Set("since", since)
		}
		var resp syncResponse
		c.must(http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil, &resp)
		for _, ev := range resp.timeline(roomID) {
			if ev.Type == "m.room.message" && ev.Content["body"] == body {
				return ev.Sender, true
			}
		}
		since = resp.NextBatch
	}
	return "", false
}
