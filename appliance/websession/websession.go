// Package websession keeps browser sessions for the setup wizard and the admin console:
// a random ID in an HttpOnly, SameSite=Strict cookie, state on the server, idle and absolute
// timeouts, and a per-session CSRF token that every state-changing request must echo in a
// header.
package websession

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CSRFHeader carries the session's CSRF token on POST requests.
const CSRFHeader = "X-Outpost-CSRF"

// Session is one signed-in browser.
type Session struct {
	CSRF     string
	Created  time.Time
	LastSeen time.Time
	// UserID is the Matrix user (console) or empty (wizard).
	UserID string
	// Data holds per-session state of the handler (the wizard's draft answers).
	Data any
}

// Store holds sessions in memory: a restart signs everyone out, which is the safe failure.
type Store struct {
	Cookie string        // cookie name
	Path   string        // cookie path
	Idle   time.Duration // sign out after this long without a request
	Max    time.Duration // sign out this long after sign-in, whatever happens

	mu       sync.Mutex
	sessions map[string]*Session // keyed by SHA-256 of the cookie value
	now      func() time.Time
}

// NewStore returns an empty store.
func NewStore(cookie, path string, idle, max time.Duration) *Store {
	return &Store{Cookie: cookie, Path: path, Idle: idle, Max: max, sessions: map[string]*Session{}, now: time.Now}
}

func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("websession: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func key(v string) string {
	sum := sha256.Sum256([]byte(v))
	return string(sum[:])
}

// Begin starts a session and sets its cookie.
func (s *Store) Begin(w http.ResponseWriter, r *http.Request, userID string, data any) *Session {
	id := random()
	now := s.now()
	sess := &Session{CSRF: random(), Created: now, LastSeen: now, UserID: userID, Data: data}
	s.mu.Lock()
	s.gc(now)
	s.sessions[key(id)] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name:     s.Cookie,
		Value:    id,
		Path:     s.Path,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
		MaxAge:   int(s.Max.Seconds()),
	})
	return sess
}

// gc drops expired sessions; mu must be held.
func (s *Store) gc(now time.Time) {
	for k, sess := range s.sessions {
		if s.expired(sess, now) {
			delete(s.sessions, k)
		}
	}
}

func (s *Store) expired(sess *Session, now time.Time) bool {
	return now.Sub(sess.LastSeen) > s.Idle || now.Sub(sess.Created) > s.Max
}

// Get returns the request's live session, or nil.
func (s *Store) Get(r *http.Request) *Session {
	c, err := r.Cookie(s.Cookie)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(c.Value)
	sess, ok := s.sessions[k]
	if !ok {
		return nil
	}
	now := s.now()
	if s.expired(sess, now) {
		delete(s.sessions, k)
		return nil
	}
	sess.LastSeen = now
	return sess
}

// End signs the request's session out and clears the cookie.
func (s *Store) End(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.Cookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, key(c.Value))
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: s.Cookie, Value: "", Path: s.Path, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// EndUser signs out every session of a user (demoted or deactivated).
func (s *Store) EndUser(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sess := range s.sessions {
		if sess.UserID == userID {
			delete(s.sessions, k)
		}
	}
}

// CheckCSRF reports whether a state-changing request is genuine: it carries the session's
// token in CSRFHeader, and if the browser names an Origin it is this very host.
func CheckCSRF(r *http.Request, sess *Session) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}
