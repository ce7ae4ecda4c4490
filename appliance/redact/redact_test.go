package redact

import (
	"net/http"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/_matrix/client/r0/sync?access_token=syt_abc.def&since=s1", "/_matrix/client/r0/sync?access_token=…&since=s1"},
		{"GET /x?since=1&ACCESS_TOKEN=zzz HTTP/1.1", "GET /x?since=1&ACCESS_TOKEN=… HTTP/1.1"},
		{`{"user":"a","password":"hunter\"2","type":"m.login.password"}`, `{"user":"a","password":"…","type":"m.login.password"}`},
		{`{"access_token": "syt_x", "device_id":"D"}`, `{"access_token": "…", "device_id":"D"}`},
		{"Authorization: Bearer syt_YWxpY2U_abc-1", "Authorization: Bearer …"},
		{"nothing secret here", "nothing secret here"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHeader(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer syt_secret")
	h.Set("Cookie", "outpost_session=abc")
	h.Set("Accept", "application/json")
	got := Header(h)
	for k, v := range got {
		if strings.Contains(strings.Join(v, ""), "secret") || strings.Contains(strings.Join(v, ""), "abc") {
			t.Errorf("%s leaked: %v", k, v)
		}
	}
	if got.Get("Accept") != "application/json" {
		t.Error("harmless header changed")
	}
	if h.Get("Authorization") != "Bearer syt_secret" {
		t.Error("input header modified")
	}
}
