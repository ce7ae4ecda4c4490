package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// browser is an HTTP client with cookies, posting JSON like the web pages do.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newBrowser(t *testing.T, base, fromIP string) *browser {
	jar, _ := cookiejar.New(nil)
	hc := httpClientFrom(fromIP)
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, base: base, hc: hc}
}

// call sends JSON and decodes the answer; it returns the status.
func (b *browser) call(method, path string, in, out any, hdr ...string) int {
	b.t.Helper()
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	if b.csrf != "" {
		req.Header.Set("X-Outpost-CSRF", b.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(data, out) //nolint:errcheck
	}
	return resp.StatusCode
}

func (b *browser) mustCall(method, path string, in, out any) {
	b.t.Helper()
	var raw json.RawMessage
	if code := b.call(method, path, in, &raw); code != 200 {
		b.t.Fatalf("%s %s: HTTP %d %s", method, path, code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatal(err)
		}
	}
}

func readClaimCode(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "claim-code"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestSetupWizardAPI drives the wizard's API as its page does: the code gates everything,
// wrong codes are rate limited, answers are validated per step, and the code dies with setup.
func TestSetupWizardAPI(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	code := readClaimCode(t, dataDir)
	if out := strings.TrimSpace(d.mustCLI("", "setup-code")); out != code {
		t.Fatalf("setup-code printed %q, file has %q", out, code)
	}
	if fi, _ := os.Stat(filepath.Join(dataDir, "claim-code")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("claim code file mode %v", fi.Mode().Perm())
	}
	base := d.url("")

	// Nothing works without the code.
	anon := newBrowser(t, base, "127.0.0.4")
	for _, path := range []string{"/setup/api/step", "/setup/api/complete"} {
		if got := anon.call("POST", path, map[string]any{"step": "server", "values": map[string]string{"server_name": "evil.lan"}}, nil); got != 401 {
			t.Errorf("%s without the code: HTTP %d, want 401", path, got)
		}
	}

	// Guessing is rate limited per client, and a guesser does not lock out the real admin.
	guesser := newBrowser(t, base, "127.0.0.5")
	limited := false
	for i := 0; i < 8; i++ {
		got := guesser.call("POST", "/setup/api/claim", map[string]string{"code": fmt.Sprintf("AAAA-AAAA-AAA%d", i)}, nil)
		if got == 429 {
			limited = true
			if i < 5 {
				t.Fatalf("limited after only %d wrong codes", i)
			}
			break
		}
		if got != 403 {
			t.Fatalf("wrong code: HTTP %d", got)
		}
	}
	if !limited {
		t.Fatal("8 wrong codes in a row were never rate limited")
	}
	// Even the right code is refused while the guesser is locked out.
	if got := guesser.call("POST", "/setup/api/claim", map[string]string{"code": code}, nil); got != 429 {
		t.Fatalf("locked-out client with the right code: HTTP %d", got)
	}

	admin := newBrowser(t, base, "127.0.0.6")
	var claimResp struct{ CSRF string }
	admin.mustCall("POST", "/setup/api/claim", map[string]string{"code": strings.ToLower(strings.ReplaceAll(code, "-", " "))}, &claimResp)
	if claimResp.CSRF == "" {
		t.Fatal("no CSRF token")
	}
	// Without the CSRF token a claimed session still cannot change anything.
	if got := admin.call("POST", "/setup/api/step", map[string]any{"step": "server", "values": map[string]string{"server_name": "box.lan"}}, nil); got != 403 {
		t.Fatalf("step without CSRF token: HTTP %d", got)
	}
	admin.csrf = claimResp.CSRF
	var apiErr struct{ Error, Field string }
	if got := admin.call("POST", "/setup/api/step", map[string]any{"step": "server", "values": map[string]string{"server_name": "https://box.lan/"}}, &apiErr); got != 400 || apiErr.Field != "server_name" {
		t.Fatalf("bad server name: HTTP %d %+v", got, apiErr)
	}
	admin.mustCall("POST", "/setup/api/step", map[string]any{"step": "server", "values": map[string]string{"server_name": "box.lan"}}, nil)
	if got := admin.call("POST", "/setup/api/step", map[string]any{"step": "admin", "values": map[string]string{"admin_user": "alice", "admin_password": password("alice"), "confirm": "different"}}, &apiErr); got != 400 || apiErr.Field != "confirm" {
		t.Fatalf("mismatched confirmation: HTTP %d %+v", got, apiErr)
	}
	// Finishing early names the missing step.
	if got := admin.call("POST", "/setup/api/complete", map[string]any{}, &apiErr); got != 400 || apiErr.Field == "" {
		t.Fatalf("complete before all steps: HTTP %d %+v", got, apiErr)
	}
	admin.mustCall("POST", "/setup/api/step", map[string]any{"step": "admin", "values": map[string]string{"admin_user": "alice", "admin_password": password("alice"), "confirm": password("alice")}}, nil)
	if got := admin.call("POST", "/setup/api/step", map[string]any{"step": "tls", "values": map[string]string{"tls_mode": "acme", "acme_directory": "http://ca.lan/dir"}}, &apiErr); got != 400 || apiErr.Field != "acme_directory" {
		t.Fatalf("ACME over http: HTTP %d %+v", got, apiErr)
	}
	admin.mustCall("POST", "/setup/api/step", map[string]any{"step": "tls", "values": map[string]string{"tls_mode": "box-ca"}}, nil)
	admin.mustCall("POST", "/setup/api/step", map[string]any{"step": "federation", "values": map[string]bool{"federation": false}}, nil)
	// The recovery key: made once, shown once, and its saving confirmed.
	if got := admin.call("POST", "/setup/api/step", map[string]any{"step": "recovery", "values": map[string]bool{"saved": true}}, &apiErr); got != 400 || apiErr.Field != "saved" {
		t.Fatalf("recovery step before a key exists: HTTP %d %+v", got, apiErr)
	}
	var key struct {
		Identity string   `json:"identity"`
		QR       []string `json:"qr"`
	}
	admin.mustCall("POST", "/setup/api/recovery-key", map[string]any{}, &key)
	if !strings.HasPrefix(key.Identity, "AGE-SECRET-KEY-1") || len(key.QR) < 21 {
		t.Fatalf("recovery key: %+v", key)
	}
	if got := admin.call("POST", "/setup/api/step", map[string]any{"step": "recovery", "values": map[string]bool{"saved": false}}, &apiErr); got != 400 || apiErr.Field != "saved" {
		t.Fatalf("recovery step without confirmation: HTTP %d %+v", got, apiErr)
	}
	admin.mustCall("POST", "/setup/api/step", map[string]any{"step": "recovery", "values": map[string]bool{"saved": true}}, nil)

	// A reload resumes: the state shows what is done (never the password).
	var state map[string]any
	admin.mustCall("GET", "/setup/api/state", nil, &state)
	if state["claimed"] != true || fmt.Sprint(state["done"]) != "[server admin tls federation recovery]" || state["have_password"] != true {
		t.Fatalf("state after all steps: %v", state)
	}
	raw, _ := json.Marshal(state)
	if strings.Contains(string(raw), password("alice")) {
		t.Fatal("state leaks the password")
	}
	if strings.Contains(string(raw), key.Identity) || strings.Contains(d.log(), key.Identity) {
		t.Fatal("the recovery key is in the setup state or in the log")
	}

	var done map[string]string
	admin.mustCall("POST", "/setup/api/complete", map[string]any{}, &done)
	if done["user_id"] != "@alice:box.lan" {
		t.Fatalf("complete: %v", done)
	}
	// Plain HTTP now only leads to HTTPS (308 keeps the method).
	if got := admin.call("POST", "/setup/api/claim", map[string]string{"code": code}, nil); got != http.StatusPermanentRedirect {
		t.Fatalf("claim over plain HTTP after setup: HTTP %d", got)
	}
	// The wizard and the code are gone.
	admin.base = d.surl("")
	if got := admin.call("POST", "/setup/api/claim", map[string]string{"code": code}, nil); got != 404 {
		t.Fatalf("claim after setup: HTTP %d", got)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "claim-code")); !os.IsNotExist(err) {
		t.Fatalf("claim code file survives setup: %v", err)
	}
	if _, errOut, code := d.cli("", "setup-code"); code == 0 || !strings.Contains(errOut, "no longer valid") {
		t.Fatalf("setup-code after setup: %d %q", code, errOut)
	}
	resp, err := httpClientFrom("127.0.0.1").Get(d.url("/setup/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/admin/" || resp.Request.URL.Scheme != "https" {
		t.Fatalf("/setup/ after setup ends at %s", resp.Request.URL)
	}
	c := newClient(t, d.surl(""))
	c.login("alice", password("alice"))

	// The audit log records who set the box up, from where.
	var entries []struct{ Actor, Action, Target string }
	json.Unmarshal([]byte(d.mustCLI("", "audit", "--json")), &entries) //nolint:errcheck
	if len(entries) == 0 || entries[len(entries)-1].Action != "setup.complete" || !strings.Contains(entries[len(entries)-1].Actor, "setup wizard (127.0.0.6)") {
		t.Fatalf("audit after setup: %+v", entries)
	}
	assertNoSecretsInLog(t, d, password("alice"), code)
}

func assertNoSecretsInLog(t *testing.T, d *daemon, secrets ...string) {
	t.Helper()
	log := d.log()
	for _, s := range secrets {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("secret %.4s… appears in the log", s)
		}
	}
	// The box's own secrets, from its settings database, never reach the log either.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(d.dataDir, "settings.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT key, value FROM settings WHERE key LIKE '%secret%' OR key LIKE '%password%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var k, v string
		rows.Scan(&k, &v) //nolint:errcheck
		n++
		if len(v) >= 16 && strings.Contains(log, v) {
			t.Errorf("settings secret %s appears in the log", k)
		}
	}
	if n < 3 {
		t.Errorf("expected at least 3 secrets in settings, found %d", n)
	}
}

// TestConsoleAPI covers the admin console's server side: sign-in for admins only, cookie
// flags, CSRF on every change, each action in the audit log, and invitations end to end.
func TestConsoleAPI(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	d.setup("box.lan")
	base := d.surl("")

	// bob is not an admin: refused.
	bobBrowser := newBrowser(t, base, "127.0.0.7")
	var e struct{ Error string }
	if got := bobBrowser.call("POST", "/admin/api/login", map[string]string{"username": "bob", "password": password("bob")}, &e); got != 403 || !strings.Contains(e.Error, "not an administrator") {
		t.Fatalf("non-admin login: HTTP %d %q", got, e.Error)
	}
	if got := bobBrowser.call("GET", "/admin/api/users", nil, nil); got != 401 {
		t.Fatalf("users without session: HTTP %d", got)
	}
	// Wrong passwords are refused and counted.
	if got := bobBrowser.call("POST", "/admin/api/login", map[string]string{"username": "alice", "password": "wrong-password-123"}, &e); got != 403 {
		t.Fatalf("wrong password: HTTP %d", got)
	}

	// alice signs in; check the cookie.
	admin := newBrowser(t, base, "127.0.0.8")
	req, _ := http.NewRequest("POST", base+"/admin/api/login", strings.NewReader(fmt.Sprintf(`{"username":"alice","password":%q}`, password("alice"))))
	resp, err := admin.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		UserID string `json:"user_id"`
		CSRF   string `json:"csrf"`
	}
	json.NewDecoder(resp.Body).Decode(&login) //nolint:errcheck
	resp.Body.Close()
	if resp.StatusCode != 200 || login.UserID != "@alice:box.lan" {
		t.Fatalf("admin login: HTTP %d %+v", resp.StatusCode, login)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Path != "/admin/" || cookies[0].MaxAge <= 0 {
		t.Fatalf("session cookie: %+v", cookies)
	}
	setCookie := resp.Header.Get("Set-Cookie")
	if !strings.Contains(setCookie, "HttpOnly") || !strings.Contains(setCookie, "SameSite=Strict") {
		t.Fatalf("Set-Cookie: %s", setCookie)
	}

	// Every state change needs the CSRF token, and a foreign Origin is refused even with it.
	if got := admin.call("POST", "/admin/api/users", map[string]any{"username": "carol"}, nil); got != 403 {
		t.Fatalf("create user without CSRF: HTTP %d", got)
	}
	admin.csrf = login.CSRF
	if got := admin.call("POST", "/admin/api/users", map[string]any{"username": "carol"}, nil, "Origin", "http://evil.example"); got != 403 {
		t.Fatalf("create user from a foreign origin: HTTP %d", got)
	}
	if list := d.mustCLI("", "users", "list"); strings.Contains(list, "carol") {
		t.Fatal("refused requests created a user")
	}

	// Create carol with a one-time password; she can sign in with it.
	var created struct {
		UserID   string `json:"user_id"`
		Password string `json:"password"`
	}
	admin.mustCall("POST", "/admin/api/users", map[string]any{"username": "carol"}, &created)
	if created.UserID != "@carol:box.lan" || len(created.Password) < 16 {
		t.Fatalf("created %+v", created)
	}
	carol := newClient(t, base)
	carol.login("carol", created.Password)
	var apiErr struct{ Error, Field string }
	if got := admin.call("POST", "/admin/api/users", map[string]any{"username": "carol"}, &apiErr); got != 409 || apiErr.Field != "username" {
		t.Fatalf("duplicate: HTTP %d %+v", got, apiErr)
	}

	// Reset her password: the old session dies, the new password works.
	var reset struct{ Password string }
	admin.mustCall("POST", "/admin/api/users/carol/reset-password", map[string]any{}, &reset)
	if err := carol.do("GET", "/_matrix/client/v3/account/whoami", nil, nil); err == nil {
		t.Fatal("carol's old session survived the reset")
	}
	carol.login("carol", reset.Password)

	// Promote and demote; the last admin cannot be demoted or deactivated.
	admin.mustCall("POST", "/admin/api/users/carol/admin", map[string]bool{"admin": true}, nil)
	var users []struct {
		Localpart string
		Admin     bool
	}
	admin.mustCall("GET", "/admin/api/users", nil, &users)
	admins := 0
	for _, u := range users {
		if strings.HasPrefix(u.Localpart, "_") {
			t.Fatalf("system account listed: %s", u.Localpart)
		}
		if u.Admin {
			admins++
		}
	}
	if admins != 2 {
		t.Fatalf("admins after promote: %+v", users)
	}
	admin.mustCall("POST", "/admin/api/users/carol/admin", map[string]bool{"admin": false}, nil)
	if got := admin.call("POST", "/admin/api/users/alice/admin", map[string]bool{"admin": false}, &apiErr); got != 409 {
		t.Fatalf("self-demotion: HTTP %d %+v", got, apiErr)
	}
	if got := admin.call("POST", "/admin/api/users/alice/deactivate", map[string]any{}, &apiErr); got != 409 {
		t.Fatalf("self-deactivation: HTTP %d %+v", got, apiErr)
	}

	// Invitations: create, redeem once, second use and revoked codes refused.
	var inv struct {
		Code   string
		Invite struct{ ID int64 }
	}
	admin.mustCall("POST", "/admin/api/invites", map[string]any{"expires_hours": 24, "note": "new hire"}, &inv)
	newcomer := newBrowser(t, base, "127.0.0.9")
	var redeemed map[string]string
	if got := newcomer.call("POST", "/invite/api/redeem", map[string]string{"code": inv.Code, "username": "Dave", "password": password("dave")}, &apiErr); got != 400 || apiErr.Field != "username" {
		t.Fatalf("bad name on redeem: HTTP %d %+v", got, apiErr)
	}
	newcomer.mustCall("POST", "/invite/api/redeem", map[string]string{"code": inv.Code, "username": "dave", "password": password("dave")}, &redeemed)
	if redeemed["user_id"] != "@dave:box.lan" {
		t.Fatalf("redeem: %v", redeemed)
	}
	dave := newClient(t, base)
	dave.login("dave", password("dave"))
	if got := newcomer.call("POST", "/invite/api/redeem", map[string]string{"code": inv.Code, "username": "eve", "password": password("eve")}, &apiErr); got != 403 || apiErr.Field != "code" {
		t.Fatalf("second use of an invitation: HTTP %d %+v", got, apiErr)
	}
	admin.mustCall("POST", "/admin/api/invites", map[string]any{"expires_hours": 24}, &inv)
	admin.mustCall("POST", fmt.Sprintf("/admin/api/invites/%d/revoke", inv.Invite.ID), map[string]any{}, nil)
	if got := newcomer.call("POST", "/invite/api/redeem", map[string]string{"code": inv.Code, "username": "eve", "password": password("eve")}, nil); got != 403 {
		t.Fatalf("revoked invitation: HTTP %d", got)
	}

	// Deactivate dave: his session dies and he cannot sign in again.
	admin.mustCall("POST", "/admin/api/users/dave/deactivate", map[string]any{}, nil)
	if err := dave.do("GET", "/_matrix/client/v3/account/whoami", nil, nil); err == nil {
		t.Fatal("dave's session survived deactivation")
	}
	if err := newClient(t, base).do("POST", "/_matrix/client/v3/login", loginBody("dave", password("dave")), nil); err == nil {
		t.Fatal("deactivated dave can still log in")
	}
	if out := d.mustCLI("", "users", "list"); !strings.Contains(out, "@dave:box.lan") || !strings.Contains(out, "deactivated") {
		t.Fatalf("users list after deactivation:\n%s", out)
	}

	// Federation switch: the homeserver restarts with federation on.
	admin.mustCall("POST", "/admin/api/federation", map[string]bool{"enabled": true}, nil)
	waitFor(t, 60*time.Second, "homeserver after the federation switch", func() bool {
		resp, err := httpClientFrom("127.0.0.1").Get(base + "/_matrix/federation/v1/version")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	admin.mustCall("POST", "/admin/api/federation", map[string]bool{"enabled": false}, nil)

	// Overview.
	var ov struct {
		Users, Rooms int
		Homeserver   struct{ State string }
	}
	admin.mustCall("GET", "/admin/api/overview", nil, &ov)
	if ov.Users != 3 || ov.Homeserver.State != "running" { // alice, bob, carol (dave deactivated)
		t.Fatalf("overview %+v", ov)
	}

	// Every admin action is in the audit log, attributed to alice at her address.
	var log []struct{ Actor, Action, Target string }
	admin.mustCall("GET", "/admin/api/audit", nil, &log)
	want := map[string]bool{"console.sign_in": false, "user.create": false, "user.reset_password": false, "user.promote": false,
		"user.demote": false, "invite.create": false, "invite.revoke": false, "user.deactivate": false, "federation.set": false}
	for _, e := range log {
		if _, ok := want[e.Action]; ok && strings.HasPrefix(e.Actor, "@alice:box.lan (console 127.0.0.8)") {
			want[e.Action] = true
		}
	}
	for action, seen := range want {
		if !seen {
			t.Errorf("audit log lacks %s by alice: %+v", action, log)
		}
	}
	redeemSeen := false
	for _, e := range log {
		if e.Action == "user.create" && strings.HasPrefix(e.Actor, "invite #") && e.Target == "@dave:box.lan" {
			redeemSeen = true
		}
	}
	if !redeemSeen {
		t.Errorf("audit log lacks the invitation redemption: %+v", log)
	}

	// Demoting alice's console rights ends her session (via the CLI, as another admin would).
	d.mustCLI("", "users", "promote", "carol")
	d.mustCLI("", "users", "demote", "alice")
	if got := admin.call("GET", "/admin/api/users", nil, nil); got != 401 {
		t.Fatalf("demoted admin's session still works: HTTP %d", got)
	}

	assertNoSecretsInLog(t, d, password("alice"), password("bob"), password("dave"), created.Password, reset.Password, inv.Code, login.CSRF)
}

// TestCLIUserManagement exercises the same verbs through the admin socket.
func TestCLIUserManagement(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	d.setup("box.lan")
	out := d.mustCLI("", "users", "add", "erin", "--one-time-password")
	var pw string
	for _, line := range strings.Split(out, "\n") {
		if i := strings.LastIndex(line, ": "); i > 0 && strings.HasPrefix(line, "One-time password") {
			pw = strings.TrimSpace(line[i+2:])
		}
	}
	if pw == "" {
		t.Fatalf("no one-time password in %q", out)
	}
	newClient(t, d.surl("")).login("erin", pw)
	d.mustCLI(password("erin")+"\n", "users", "reset-password", "erin", "--password-stdin")
	newClient(t, d.surl("")).login("erin", password("erin"))
	if _, errOut, code := d.cli("", "users", "deactivate", "erin"); code == 0 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("deactivate without --yes: %d %q", code, errOut)
	}
	d.mustCLI("", "users", "deactivate", "erin", "--yes")
	if err := newClient(t, d.surl("")).do("POST", "/_matrix/client/v3/login", loginBody("erin", password("erin")), nil); err == nil {
		t.Fatal("deactivated account can log in")
	}
	if _, errOut, code := d.cli("", "users", "deactivate", "nobody", "--yes"); code == 0 || !strings.Contains(errOut, "no active account") {
		t.Fatalf("deactivate unknown: %d %q", code, errOut)
	}
	if _, errOut, code := d.cli("", "users", "demote", "alice"); code == 0 || !strings.Contains(errOut, "last administrator") {
		t.Fatalf("demote last admin: %d %q", code, errOut)
	}
	out = d.mustCLI("", "invites", "create", "--expires", "2h", "--note", "for frank")
	if !strings.Contains(out, "Code (shown once): ") {
		t.Fatalf("invites create: %q", out)
	}
	list := d.mustCLI("", "invites", "list")
	if !strings.Contains(list, "open") || !strings.Contains(list, "for frank") {
		t.Fatalf("invites list: %q", list)
	}
	d.mustCLI("", "invites", "revoke", "1")
	if list := d.mustCLI("", "invites", "list"); !strings.Contains(list, "revoked") {
		t.Fatalf("after revoke: %q", list)
	}
	if _, errOut, code := d.cli("", "invites", "create", "--expires", "5000h"); code == 0 || !strings.Contains(errOut, "90 days") {
		t.Fatalf("over-long invite: %d %q", code, errOut)
	}
	audit := d.mustCLI("", "audit")
	for _, a := range []string{"user.create", "user.reset_password", "user.deactivate", "invite.create", "invite.revoke"} {
		if !strings.Contains(audit, a) {
			t.Errorf("audit lacks %s:\n%s", a, audit)
		}
	}
}

// TestSetupSurvivesFailureAndCrash: a setup that fails, or is cut short by a crash, leaves
// the box not set up, and the next attempt succeeds from scratch.
func TestSetupSurvivesFailureAndCrash(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	real := dendriteBinary(t)

	// 1. The homeserver cannot start: setup fails with a clear error and changes nothing.
	d.stop()
	d.dendrite = "/bin/false"
	d.start()
	_, errOut, code := d.cli(password("alice")+"\n", "setup", "--server-name", "first.lan", "--admin", "alice", "--password-stdin")
	if code == 0 || !strings.Contains(errOut, "homeserver did not start") {
		t.Fatalf("setup with a broken homeserver: exit %d %q", code, errOut)
	}
	if st := d.status(); st.SetupComplete {
		t.Fatalf("failed setup left the box set up: %+v", st)
	}
	oldCode := readClaimCode(t, dataDir)

	// 2. Crash (SIGKILL) in the middle of a setup.
	d.stop()
	d.dendrite = real
	d.start()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.cli(password("alice")+"\n", "setup", "--server-name", "second.lan", "--admin", "alice", "--password-stdin") //nolint:errcheck
	}()
	waitFor(t, 30*time.Second, "the homeserver to start during setup", func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "homeserver", "dendrite.pid"))
		return err == nil
	})
	d.kill()
	<-done
	d.start()
	st := d.status()
	if st.SetupComplete {
		// The crash came after the commit: then it must be complete and consistent.
		newClient(t, d.surl("")).login("alice", password("alice"))
		t.Log("the crash landed after setup committed")
		return
	}
	if got := readClaimCode(t, dataDir); got != oldCode {
		t.Fatalf("claim code changed across the crash: %q -> %q", oldCode, got)
	}

	// 3. Setup again, with another server name: nothing of the cut-short attempt remains.
	d.mustCLI(password("alice")+"\n", "setup", "--server-name", "third.lan", "--admin", "alice", "--password-stdin")
	c := newClient(t, d.surl(""))
	c.login("alice", password("alice"))
	if c.userID != "@alice:third.lan" {
		t.Fatalf("user id %s", c.userID)
	}
	if st := d.status(); !st.SetupComplete || st.ServerName != "third.lan" {
		t.Fatalf("status %+v", st)
	}
}
