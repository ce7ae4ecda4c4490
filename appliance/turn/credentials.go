// Package turn is the box's TURN relay (pion/turn/v2): it lets two devices on different LAN
// segments, or behind client firewalls, set up 1:1 calls without anything on the internet.
// Credentials are the coturn-style REST scheme Dendrite hands out on /voip/turnServer;
// relaying is limited to the LAN, never to the box itself, and bounded per user and in total.
package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Password returns the REST password for a username: base64(HMAC-SHA1(secret, username)),
// exactly what Dendrite computes for /voip/turnServer.
func Password(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Credentials makes a REST username/password pair valid for ttl, as Dendrite does.
func Credentials(secret, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, Password(secret, username)
}

// Errors for usernames that cannot be REST credentials.
var (
	ErrMalformed = errors.New("turn: username is not <expiry>:<user>")
	ErrExpired   = errors.New("turn: credentials expired")
)

// ParseUsername splits "<unix expiry>:<user>" and checks the expiry against now. The user
// part may itself contain ':' (Matrix IDs do: "@alice:box.lan").
func ParseUsername(username string, now time.Time) (user string, expires time.Time, err error) {
	ts, user, ok := strings.Cut(username, ":")
	if !ok || ts == "" || user == "" || len(username) > 512 {
		return "", time.Time{}, ErrMalformed
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || secs <= 0 {
		return "", time.Time{}, ErrMalformed
	}
	expires = time.Unix(secs, 0)
	if !now.Before(expires) {
		return user, expires, ErrExpired
	}
	return user, expires, nil
}
