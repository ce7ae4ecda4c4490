package websession

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSessionLifecycle(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewStore("sid", "/admin", 10*time.Minute, time.Hour)
	s.now = func() time.Time { return now }
	rec := httptest.NewRecorder()
	sess := s.Begin(rec, httptest.NewRequest("POST", "/admin/api/login", nil), "@a:b", nil)
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatal("no cookie")
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin" || len(c.Value) < 40 {
		t.Fatalf("cookie flags: %+v", c)
	}
	req := httptest.NewRequest("GET", "/admin/api/session", nil)
	req.AddCookie(c)
	if got := s.Get(req); got != sess {
		t.Fatal("session not found")
	}
	now = now.Add(11 * time.Minute)
	if s.Get(req) != nil {
		t.Fatal("idle session still valid")
	}
}

func TestAbsoluteTimeout(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewStore("sid", "/", 10*time.Minute, 30*time.Minute)
	s.now = func() time.Time { return now }
	rec := httptest.NewRecorder()
	s.Begin(rec, httptest.NewRequest("POST", "/", nil), "", nil)
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	for i := 0; i < 3; i++ {
		now = now.Add(9 * time.Minute)
		if s.Get(req) == nil {
			t.Fatalf("active session expired early at step %d", i)
		}
	}
	now = now.Add(9 * time.Minute)
	if s.Get(req) != nil {
		t.Fatal("session outlived its maximum age")
	}
}

func TestCheckCSRF(t *testing.T) {
	sess := &Session{CSRF: "token"}
	for _, tc := range []struct {
		header, origin string
		ok             bool
	}{
		{"token", "", true},
		{"token", "http://box.lan", true},
		{"", "", false},
		{"wrong", "", false},
		{"token", "http://evil.example", false},
	} {
		r := httptest.NewRequest("POST", "http://box.lan/admin/api/users", nil)
		if tc.header != "" {
			r.Header.Set(CSRFHeader, tc.header)
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := CheckCSRF(r, sess); got != tc.ok {
			t.Errorf("header %q origin %q: %v", tc.header, tc.origin, got)
		}
	}
}

func TestEndUser(t *testing.T) {
	s := NewStore("sid", "/", time.Hour, time.Hour)
	rec := httptest.NewRecorder()
	s.Begin(rec, httptest.NewRequest("POST", "/", nil), "@a:b", nil)
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	s.EndUser("@a:b")
	if s.Get(req) != nil {
		t.Fatal("session survived EndUser")
	}
}
