package provisioning

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

// base is a valid manifest that each case breaks in one place.
func base() string {
	return `{"outpost_manifest":1,"server_name":"chat.example.com","admin":{"username":"anna","one_time_password":"first-login-please"}}`
}

func TestExamplesParse(t *testing.T) {
	for _, f := range []string{"examples/branch.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestErrors(t *testing.T) {
	hash := "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
	low := "$2a$04$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
	for _, tc := range []struct {
		name, manifest, field, message string
	}{
		{"empty", ``, "(file)", "is empty"},
		{"not json", `{"outpost_manifest":1,`, "(file)", "truncated"},
		{"syntax", `{"outpost_manifest":1,,}`, "(file)", "not valid JSON"},
		{"trailing", base() + `{}`, "(file)", "more after"},
		{"unknown field", `{"outpost_manifest":1,"servername":"x"}`, "servername", "not a manifest field"},
		{"wrong type", `{"outpost_manifest":"1"}`, "outpost_manifest", "must be a whole number"},
		{"wrong type nested", strings.Replace(base(), `"username":"anna"`, `"username":7`, 1), "admin.username", "must be a string"},
		{"bool as string", strings.Replace(base(), `"server_name"`, `"federation":"no","server_name"`, 1), "federation", "true or false"},
		{"no version", `{"server_name":"chat.example.com"}`, "outpost_manifest", "is missing"},
		{"future version", `{"outpost_manifest":2}`, "outpost_manifest", "reads version 1"},
		{"bad server name", strings.Replace(base(), "chat.example.com", "https://chat.example.com/", 1), "server_name", "without http://"},
		{"upper case name", strings.Replace(base(), "chat.example.com", "Chat.Example.com", 1), "server_name", "lower-case"},
		{"bad username", strings.Replace(base(), `"anna"`, `"Anna Smith"`, 1), "admin.username", ""},
		{"no password", strings.Replace(base(), `,"one_time_password":"first-login-please"`, ``, 1), "admin", "needs password_hash"},
		{"both passwords", strings.Replace(base(), `"one_time_password"`, `"password_hash":"`+hash+`","one_time_password"`, 1), "admin", "exactly one"},
		{"plain password as hash", strings.Replace(base(), `"one_time_password":"first-login-please"`, `"password_hash":"hunter2hunter2"`, 1), "admin.password_hash", "never put a plain password"},
		{"broken hash", strings.Replace(base(), `"one_time_password":"first-login-please"`, `"password_hash":"$2a$12$short"`, 1), "admin.password_hash", "not a valid bcrypt hash"},
		{"weak hash", strings.Replace(base(), `"one_time_password":"first-login-please"`, `"password_hash":"`+low+`"`, 1), "admin.password_hash", "cost 4"},
		{"short otp", strings.Replace(base(), "first-login-please", "short", 1), "admin.one_time_password", ""},
		{"tls no mode", strings.Replace(base(), `}}`, `},"tls":{}}`, 1), "tls.mode", "is missing"},
		{"tls acme http", strings.Replace(base(), `}}`, `},"tls":{"mode":"acme","acme_directory":"http://ca.lan/dir"}}`, 1), "tls.acme_directory", "https://"},
		{"tls unknown mode", strings.Replace(base(), `}}`, `},"tls":{"mode":"letsencrypt"}}`, 1), "tls.mode", ""},
		{"snap bad kind", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"ftp"},"recovery_recipient":"`+recipient+`"}}`, 1), "snapshots.target", "unknown target kind"},
		{"snap no share", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"smb","host":"nas","user":"u"},"recovery_recipient":"`+recipient+`"}}`, 1), "snapshots.target", "needs share"},
		{"snap bad time", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"local","path":"/x"},"time":"2:30am","recovery_recipient":"`+recipient+`"}}`, 1), "snapshots.time", "HH:MM"},
		{"snap bad retention", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"local","path":"/x"},"retention":"forever","recovery_recipient":"`+recipient+`"}}`, 1), "snapshots.retention", "7d 4w 6m"},
		{"snap no recipient", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"local","path":"/x"}}}`, 1), "snapshots.recovery_recipient", "is missing"},
		{"snap private key", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"local","path":"/x"},"recovery_recipient":"AGE-SECRET-KEY-1QQQ"}}`, 1), "snapshots.recovery_recipient", "PRIVATE key"},
		{"snap bad recipient", strings.Replace(base(), `}}`, `},"snapshots":{"target":{"kind":"local","path":"/x"},"recovery_recipient":"age1nope"}}`, 1), "snapshots.recovery_recipient", "not an age public key"},
		{"net no mode", strings.Replace(base(), `}}`, `},"network":{}}`, 1), "network.mode", "is missing"},
		{"net bad mode", strings.Replace(base(), `}}`, `},"network":{"mode":"auto"}}`, 1), "network.mode", "dhcp or static"},
		{"net dhcp with address", strings.Replace(base(), `}}`, `},"network":{"mode":"dhcp","address":"10.0.0.2/24"}}`, 1), "network", "takes no address"},
		{"net no prefix", strings.Replace(base(), `}}`, `},"network":{"mode":"static","address":"10.0.0.2","gateway":"10.0.0.1"}}`, 1), "network.address", "prefix length"},
		{"net network address", strings.Replace(base(), `}}`, `},"network":{"mode":"static","address":"10.0.0.0/24","gateway":"10.0.0.1"}}`, 1), "network.address", "network address"},
		{"net gateway outside", strings.Replace(base(), `}}`, `},"network":{"mode":"static","address":"10.0.0.2/24","gateway":"10.0.1.1"}}`, 1), "network.gateway", "not in the box's subnet"},
		{"net gateway self", strings.Replace(base(), `}}`, `},"network":{"mode":"static","address":"10.0.0.2/24","gateway":"10.0.0.2"}}`, 1), "network.gateway", "own address"},
		{"net bad dns", strings.Replace(base(), `}}`, `},"network":{"mode":"dhcp","dns":["dns.lan"]}}`, 1), "network.dns[0]", "IP address"},
		{"long brand", strings.Replace(base(), `}}`, `},"branding":{"name":"`+strings.Repeat("x", 81)+`"}}`, 1), "branding.name", "at most 80"},
		{"too big", `{"x":"` + strings.Repeat("a", MaxSize) + `"}`, "(file)", "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.manifest))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want a *FieldError", err, err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Message, tc.message) {
				t.Fatalf("got %q, want field %q with %q", err, tc.field, tc.message)
			}
		})
	}
}

func TestRedactedDropsSecrets(t *testing.T) {
	b, _ := os.ReadFile("examples/branch.json")
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Redacted()
	out := []byte(r.Admin.OneTimePassword + r.Snapshots.Target.Password)
	if bytes.Contains(out, []byte("change-me")) || bytes.Contains(out, []byte("smb-password")) {
		t.Fatalf("secrets left: %s", out)
	}
	if m.Admin.OneTimePassword == r.Admin.OneTimePassword {
		t.Fatal("Redacted changed nothing")
	}
}

func TestSignVerify(t *testing.T) {
	priv, pub, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte(base())
	sig := Sign(k, doc)
	if err := Verify(p, doc, sig); err != nil {
		t.Fatal(err)
	}
	if err := Verify(p, append(doc, ' '), sig); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("changed manifest: %v", err)
	}
	if err := Verify(p, doc, nil); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	_, other, _ := NewKey()
	op, _ := ParsePublicKey(other)
	if err := Verify(op, doc, sig); err == nil {
		t.Fatal("verified with another key")
	}
	if _, err := ParsePublicKey(priv); err == nil {
		t.Fatal("a private key parsed as public")
	}
}

func TestFleet(t *testing.T) {
	tmpl, _ := os.ReadFile("examples/fleet-template.json")
	f, _ := os.Open("examples/fleet.csv")
	defer f.Close()
	out, err := Fleet(tmpl, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d manifests", len(out))
	}
	m, err := Parse(out["branch-18.json"])
	if err != nil || m.ServerName != "chat.branch-18.example.com" || m.Network.Address != "192.168.18.10/24" {
		t.Fatalf("branch-18: %+v %v", m, err)
	}
	// A bad row is named with its line and field.
	_, err = Fleet(tmpl, strings.NewReader("name,site,ip,gateway,otp\nok,ok,10.0.0.2,10.0.0.1,first-login-ok\nbad,bad,10.0.0.2,10.9.9.9,first-login-bad\n"))
	if err == nil || !strings.Contains(err.Error(), "row 3") || !strings.Contains(err.Error(), "network.gateway") {
		t.Fatalf("bad row: %v", err)
	}
	// A quote in a value cannot break out of its JSON string.
	_, err = Fleet(tmpl, strings.NewReader("name,site,ip,gateway,otp\nx,\"a\"\",\"\"admin\"\":{},\"\"b\",10.0.0.2,10.0.0.1,first-login-x\n"))
	if err == nil || !strings.Contains(err.Error(), "server_name") {
		t.Fatalf("injection: %v", err)
	}
	if _, err := Fleet(tmpl, strings.NewReader("name,site\nx,y\n")); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Fatalf("missing column: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base()))
	if b, err := os.ReadFile("examples/branch.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"outpost_manifest":1,"network":{"mode":"static","address":"1.2.3.4/0"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err == nil {
			// Whatever parses must survive a round trip and still parse.
			if m.Redacted().ServerName != m.ServerName {
				t.Fatal("Redacted changed the server name")
			}
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
			t.Fatalf("error without a field: %v", err)
		}
	})
}
