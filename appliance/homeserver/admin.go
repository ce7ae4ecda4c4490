package homeserver

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
	"net/http"
	"strings"
)

// MatrixError is an error answer from the homeserver.
type MatrixError struct {
	Status  int
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
}

func (e *MatrixError) Error() string {
	return fmt.Sprintf("homeserver: %s: %s (HTTP %d)", e.ErrCode, e.Message, e.Status)
}

// ErrCodeIs reports whether err is a MatrixError with the given errcode.
func ErrCodeIs(err error, code string) bool {
	var me *MatrixError
	return errors.As(err, &me) && me.ErrCode == code
}

// do sends a JSON request to the homeserver and decodes a JSON answer into out.
func do(ctx context.Context, hc *http.Client, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://homeserver"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("homeserver: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("homeserver: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		me := &MatrixError{Status: resp.StatusCode}
		if json.Unmarshal(data, me) != nil || me.ErrCode == "" {
			me.ErrCode, me.Message = "M_UNKNOWN", http.StatusText(resp.StatusCode)
		}
		return me
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("homeserver: %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// RegisterUser creates an account through Dendrite's shared-secret admin API, the only way
// accounts are made on an Outpost box (open registration stays disabled).
func RegisterUser(ctx context.Context, hc *http.Client, sharedSecret, username, password string, admin bool) (userID string, err error) {
	const path = "/_synapse/admin/v1/register"
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := do(ctx, hc, http.MethodGet, path, nil, &nonce); err != nil {
		return "", err
	}
	mac := hmac.New(sha1.New, []byte(sharedSecret))
	role := "notadmin"
	if admin {
		role = "admin"
	}
	for i, part := range []string{nonce.Nonce, username, password, role} {
		if i > 0 {
			mac.Write([]byte{0})
		}
		mac.Write([]byte(part))
	}
	req := map[string]any{
		"nonce":    nonce.Nonce,
		"username": username,
		"password": password,
		"admin":    admin,
		"mac":      hex.EncodeToString(mac.Sum(nil)),
	}
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	if err := do(ctx, hc, http.MethodPost, path, req, &resp); err != nil {
		return "", err
	}
	// Registration also signs in a device; end that session so the new account's device
	// list shows only the person's own devices.
	if resp.AccessToken != "" {
		logout, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://homeserver/_matrix/client/v3/logout", strings.NewReader("{}"))
		if err == nil {
			logout.Header.Set("Authorization", "Bearer "+resp.AccessToken)
			if r, err := hc.Do(logout); err == nil {
				io.Copy(io.Discard, r.Body) //nolint:errcheck
				r.Body.Close()
			}
		}
	}
	return resp.UserID, nil
}
