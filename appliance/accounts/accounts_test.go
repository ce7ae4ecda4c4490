package accounts

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateUsername(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"bob.smith-2", true},
		{"", false},
		{"Alice", false},
		{"@alice:box", false},
		{"_server", false},
		{"outpost-service", false},
		{"al ice", false},
		{"ali:ce", false},
		{strings.Repeat("a", 250), false},
	} {
		err := ValidateUsername("username", tc.name, "chat.example")
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v", tc.name, err)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "username" || fe.Message == "") {
			t.Errorf("%q: not a field error: %v", tc.name, err)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"correct horse battery", true},
		{"short", false},
		{" padded password ", false},
		{strings.Repeat("x", 73), false},
		{"ünïcødé-ok!", true},
	} {
		if err := ValidatePassword("password", tc.pw); (err == nil) != tc.ok {
			t.Errorf("%q: err = %v", tc.pw, err)
		}
	}
}
