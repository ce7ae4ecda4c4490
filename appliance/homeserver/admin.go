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
	"net/url"
	"time"
)

// MatrixError is an error answer from the homeserver.
type MatrixError struct {
	Status       int
	ErrCode      string `json:"errcode"`
	Message      string `json:"error"`
	RetryAfterMs int64  `json:"retry_after_ms"`
}

func (e *MatrixError) Error() string {
	return fmt.Sprintf("homeserver: %s: %s (HTTP %d)", e.ErrCode, e.Message, e.Status)
}

// ErrCodeIs reports whether err is a MatrixError with the given errcode.
func ErrCodeIs(err error, code string) bool {
	var me *MatrixError
	return errors.As(err, &me) && me.ErrCode == code
}

// do sends a JSON request to the homeserver, with token as the bearer if set, and decodes
// a JSON answer into out.
func do(ctx context.Context, hc *http.Client, token, method, path string, in, out any) error {
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
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(hc, req, out)
}

// send performs req and decodes a JSON answer into out; non-200 answers become *MatrixError.
func send(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("homeserver: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("homeserver: %s %s: %w", req.Method, req.URL.Path, err)
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
			return fmt.Errorf("homeserver: %s %s: decode answer: %w", req.Method, req.URL.Path, err)
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
	if err := do(ctx, hc, "", http.MethodGet, path, nil, &nonce); err != nil {
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
	if err := do(ctx, hc, "", http.MethodPost, path, req, &resp); err != nil {
		return "", err
	}
	// Registration also signs in a device; end that session so the new account's device
	// list shows only the person's own devices.
	if resp.AccessToken != "" {
		Logout(ctx, hc, resp.AccessToken) //nolint:errcheck // cosmetic; the account exists either way
	}
	return resp.UserID, nil
}

// Login signs in with a password and returns an access token. clientIP, when set, is sent
// as X-Forwarded-For so Dendrite's login rate limit applies per browser, not to outpostd.
func Login(ctx context.Context, hc *http.Client, localpart, password, clientIP string) (token, userID string, err error) {
	for attempt := 0; ; attempt++ {
		token, userID, err = login(ctx, hc, localpart, password, clientIP)
		var me *MatrixError
		// outpostd's own sign-ins (no client address) share one rate-limit bucket; they are
		// few and legitimate, so wait out a limit instead of failing an admin action.
		if clientIP != "" || attempt == 3 || !errors.As(err, &me) || me.ErrCode != "M_LIMIT_EXCEEDED" {
			return token, userID, err
		}
		wait := time.Duration(min(max(me.RetryAfterMs, 100), 2000)) * time.Millisecond
		select {
		case <-ctx.Done():
			return "", "", err
		case <-time.After(wait):
		}
	}
}

func login(ctx context.Context, hc *http.Client, localpart, password, clientIP string) (token, userID string, err error) {
	body, _ := json.Marshal(map[string]any{
		"type":                        "m.login.password",
		"identifier":                  map[string]string{"type": "m.id.user", "user": localpart},
		"password":                    password,
		"initial_device_display_name": "Outpost admin console",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://homeserver/_matrix/client/v3/login", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if clientIP != "" {
		req.Header.Set("X-Forwarded-For", clientIP)
	}
	var resp struct {
		AccessToken string `json:"access_token"`
		UserID      string `json:"user_id"`
	}
	if err := send(hc, req, &resp); err != nil {
		return "", "", err
	}
	return resp.AccessToken, resp.UserID, nil
}

// Logout ends the session of token.
func Logout(ctx context.Context, hc *http.Client, token string) error {
	return do(ctx, hc, token, http.MethodPost, "/_matrix/client/v3/logout", map[string]any{}, nil)
}

// ResetPassword sets a user's password with an admin's token and signs out all their devices.
func ResetPassword(ctx context.Context, hc *http.Client, adminToken, userID, password string) error {
	return do(ctx, hc, adminToken, http.MethodPost, "/_dendrite/admin/resetPassword/"+url.PathEscape(userID),
		map[string]any{"password": password, "logout_devices": true}, nil)
}

// Deactivate deactivates the account that token belongs to, proving it with its password
// (Dendrite has no admin deactivation; the account deactivates itself).
func Deactivate(ctx context.Context, hc *http.Client, token, localpart, password string) error {
	return do(ctx, hc, token, http.MethodPost, "/_matrix/client/v3/account/deactivate", map[string]any{
		"auth": map[string]any{
			"type":       "m.login.password",
			"identifier": map[string]string{"type": "m.id.user", "user": localpart},
			"password":   password,
		},
		"erase": false,
	}, nil)
}
