package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/boxtls"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/invites"
	"github.com/outpost-im/outpost/appliance/turn"
)

// Client talks to a running outpostd through its admin socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the outpostd serving dataDir.
func NewClient(dataDir string) *Client {
	sock := filepath.Join(dataDir, SocketName)
	return &Client{
		socket: sock,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}},
	}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Setup completes first-boot setup.
func (c *Client) Setup(ctx context.Context, req any) error {
	return c.call(ctx, http.MethodPost, "/v1/setup", req, nil)
}

// AddUser creates an account.
func (c *Client) AddUser(ctx context.Context, req AddUserRequest) (AddUserResponse, error) {
	var out AddUserResponse
	err := c.call(ctx, http.MethodPost, "/v1/users", req, &out)
	return out, err
}

// SetupCode returns the one-time setup code.
func (c *Client) SetupCode(ctx context.Context) (string, error) {
	var out SetupCodeResponse
	err := c.call(ctx, http.MethodGet, "/v1/setup-code", nil, &out)
	return out.Code, err
}

// ListUsers lists accounts.
func (c *Client) ListUsers(ctx context.Context) ([]homeserver.Account, error) {
	var out []homeserver.Account
	err := c.call(ctx, http.MethodGet, "/v1/users", nil, &out)
	return out, err
}

// ResetPassword sets a new password (empty: generate one, returned).
func (c *Client) ResetPassword(ctx context.Context, name, password string) (string, error) {
	var out PasswordResponse
	err := c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(name)+"/reset-password", PasswordRequest{Password: password}, &out)
	return out.Password, err
}

// Deactivate closes an account.
func (c *Client) Deactivate(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(name)+"/deactivate", struct{}{}, nil)
}

// SetAdmin promotes or demotes.
func (c *Client) SetAdmin(ctx context.Context, name string, admin bool) error {
	return c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(name)+"/admin", AdminFlagRequest{Admin: admin}, nil)
}

// ListInvites lists invitations.
func (c *Client) ListInvites(ctx context.Context) ([]invites.Invite, error) {
	var out []invites.Invite
	err := c.call(ctx, http.MethodGet, "/v1/invites", nil, &out)
	return out, err
}

// CreateInvite makes an invitation.
func (c *Client) CreateInvite(ctx context.Context, req CreateInviteRequest) (CreateInviteResponse, error) {
	var out CreateInviteResponse
	err := c.call(ctx, http.MethodPost, "/v1/invites", req, &out)
	return out, err
}

// RevokeInvite withdraws an invitation.
func (c *Client) RevokeInvite(ctx context.Context, id int64) error {
	return c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/invites/%d/revoke", id), struct{}{}, nil)
}

// Audit returns the newest audit entries.
func (c *Client) Audit(ctx context.Context, limit int) ([]audit.Entry, error) {
	var out []audit.Entry
	err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/audit?limit=%d", limit), nil, &out)
	return out, err
}

// TLS reports the certificate setup.
func (c *Client) TLS(ctx context.Context) (boxtls.Status, error) {
	var out boxtls.Status
	err := c.call(ctx, http.MethodGet, "/v1/tls", nil, &out)
	return out, err
}

// SetTLSMode changes the certificate source.
func (c *Client) SetTLSMode(ctx context.Context, req boxtls.ModeRequest) (TLSModeResponse, error) {
	var out TLSModeResponse
	err := c.call(ctx, http.MethodPost, "/v1/tls/mode", req, &out)
	return out, err
}

// TURN reports the relay.
func (c *Client) TURN(ctx context.Context) (TURNStatus, error) {
	var out TURNStatus
	err := c.call(ctx, http.MethodGet, "/v1/turn", nil, &out)
	return out, err
}

// NewRoot replaces the box's root CA.
func (c *Client) NewRoot(ctx context.Context) (boxtls.Status, error) {
	var out boxtls.Status
	err := c.call(ctx, http.MethodPost, "/v1/tls/new-root", struct{}{}, &out)
	return out, err
}

// SetTURN changes the relay settings.
func (c *Client) SetTURN(ctx context.Context, ts turn.Settings) (TURNStatus, error) {
	var out TURNStatus
	err := c.call(ctx, http.MethodPost, "/v1/turn", ts, &out)
	return out, err
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://outpostd"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read outpostd answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return answerError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode outpostd answer: %w", err)
		}
	}
	return nil
}

// ErrNotRunning means no outpostd answers on the data directory's socket.
var ErrNotRunning = errors.New("outpostd is not running")

func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w for data dir %s (no socket at %s); start it first", ErrNotRunning, filepath.Dir(c.socket), c.socket)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("no permission to open %s; run as the user that runs outpostd", c.socket)
	}
	return fmt.Errorf("talk to outpostd: %w", err)
}

// answerError turns a non-200 answer into the error outpostd described.
func answerError(status int, body []byte) error {
	e := &Error{}
	if json.Unmarshal(body, e) != nil || e.Message == "" {
		e.Message = fmt.Sprintf("outpostd answered HTTP %d", status)
	}
	return e
}
