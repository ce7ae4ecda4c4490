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
	"os"
	"path/filepath"
	"syscall"
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
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("outpostd is not running for data dir %s (no socket at %s); start it first", filepath.Dir(c.socket), c.socket)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("no permission to open %s; run as the user that runs outpostd", c.socket)
		}
		return fmt.Errorf("talk to outpostd: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read outpostd answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("outpostd answered HTTP %d", resp.StatusCode)
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode outpostd answer: %w", err)
		}
	}
	return nil
}
