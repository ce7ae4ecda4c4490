package setup

import (
	"errors"
	"testing"

	"github.com/outpost-im/outpost/appliance/accounts"
)

func TestValidateServerName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"chat.example.com", true},
		{"outpost", true},
		{"192.168.1.20", true},
		{"192.168.1.20:8448", true},
		{"[fd00::1]", true},
		{"localhost:8080", true},
		{"", false},
		{"https://chat.example.com", false},
		{"chat.example.com/path", false},
		{"Chat.Example.com", false},
		{"chat example", false},
		{"chat.example.com:99999", false},
		{"0.0.0.0", false},
		{"fd00::1", false},      // IPv6 needs brackets
		{"-bad-.example", true}, // the spec's grammar allows it
	} {
		err := ValidateServerName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		var fe *accounts.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "server_name") {
			t.Errorf("%q: not a server_name field error: %v", tc.name, err)
		}
	}
}

func TestValidateRequestNamesTheField(t *testing.T) {
	base := Request{ServerName: "box.lan", AdminUser: "admin", AdminPassword: "long enough password"}
	if err := Validate(base); err != nil {
		t.Fatal(err)
	}
	for field, mutate := range map[string]func(*Request){
		"server_name":    func(r *Request) { r.ServerName = "http://x" },
		"admin_user":     func(r *Request) { r.AdminUser = "Admin" },
		"admin_password": func(r *Request) { r.AdminPassword = "short" },
	} {
		r := base
		mutate(&r)
		var fe *accounts.FieldError
		if err := Validate(r); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}
