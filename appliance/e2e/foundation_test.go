package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/outpost-im/outpost/appliance/homeserver"
)

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := httpClientFrom("127.0.0.1").Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBeforeSetup: a fresh box serves only the first-run page and refuses what needs setup.
func TestBeforeSetup(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	// / leads to the setup wizard, and the console shows where to go and the code to enter.
	resp, err := http.Get(d.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/setup/" || !strings.Contains(string(body), "Claim this box") {
		t.Fatalf("/ before setup: %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	con := d.console()
	if !strings.Contains(con, readClaimCode(t, dataDir)) || !strings.Contains(con, d.url("/setup/")) {
		t.Fatalf("console does not show the setup address and code:\n%s", con)
	}
	if strings.Contains(d.log(), readClaimCode(t, dataDir)) {
		t.Fatal("the setup code is in the log")
	}
	if code, _ := get(t, d.url("/_matrix/client/versions")); code != http.StatusServiceUnavailable {
		t.Fatalf("/_matrix before setup: %d, want 503", code)
	}
	if code, _ := get(t, d.url("/.well-known/matrix/client")); code != 404 {
		t.Fatalf("well-known before setup: %d", code)
	}
	st := d.status()
	if st.SetupComplete || st.Homeserver.State != homeserver.StateStopped {
		t.Fatalf("status before setup: %+v", st)
	}
	// Accounts cannot be made before setup.
	if _, errOut, code := d.cli(password("bob")+"\n", "users", "add", "bob", "--password-stdin"); code == 0 || !strings.Contains(errOut, "not set up") {
		t.Fatalf("users add before setup: exit %d %q", code, errOut)
	}
	// Bad input: one clear line, non-zero exit, nothing changed.
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"setup", "--server-name", "box.lan", "--admin", "alice", "--password", "hunter2hunter2"}, "refusing a password on the command line"},
		{"", []string{"setup", "--server-name", "box.lan", "--admin", "alice"}, "--password-stdin"},
		{"pw-long-enough-1\n", []string{"setup", "--server-name", "https://box.lan", "--admin", "alice", "--password-stdin"}, "server_name:"},
		{"pw-long-enough-1\n", []string{"setup", "--server-name", "box.lan", "--admin", "Alice", "--password-stdin"}, "admin_user:"},
		{"short\n", []string{"setup", "--server-name", "box.lan", "--admin", "alice", "--password-stdin"}, "admin_password:"},
		{"", []string{"frobnicate"}, "unknown command"},
	} {
		_, errOut, code := d.cli(tc.stdin, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("outpost %v: exit %d, stderr %q; want an error mentioning %q", tc.args, code, errOut, tc.want)
		}
		if strings.Contains(errOut, "hunter2") {
			t.Errorf("error echoes the password: %q", errOut)
		}
	}
	if d.status().SetupComplete {
		t.Fatal("a failed setup left the box set up")
	}
	// The CLI tells the operator when no daemon runs for a data dir.
	out, errOut, code := (&daemon{t: t, dataDir: t.TempDir()}).cli("", "status")
	if code == 0 || !strings.Contains(errOut, "outpostd is not running") {
		t.Fatalf("status without daemon: %d %q %q", code, out, errOut)
	}
}

// TestChat is the walking skeleton: setup, two users, a private room, messages both ways
// through the gateway, the closed endpoints, and everything surviving a restart.
func TestChat(t *testing.T) {
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	d.setup("box.lan")

	// A second setup is refused and changes nothing.
	if _, errOut, code := d.cli(password("eve")+"\n", "setup", "--server-name", "evil.lan", "--admin", "eve", "--password-stdin"); code == 0 || !strings.Contains(errOut, "already set up") {
		t.Fatalf("second setup: exit %d %q", code, errOut)
	}
	// A taken name is reported as such.
	if _, errOut, code := d.cli(password("bob")+"\n", "users", "add", "bob", "--password-stdin"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate user: exit %d %q", code, errOut)
	}

	st := d.status()
	if !st.SetupComplete || st.ServerName != "box.lan" || st.Federation || st.Homeserver.State != homeserver.StateRunning || st.Homeserver.PID == 0 {
		t.Fatalf("status after setup: %+v", st)
	}
	if st.Versions.Dendrite != "0.15.2" {
		t.Fatalf("dendrite version %q", st.Versions.Dendrite)
	}

	base := d.surl("")
	alice, bob := newClient(t, base), newClient(t, base)
	alice.login("alice", password("alice"))
	bob.login("bob", password("bob"))
	if alice.userID != "@alice:box.lan" || bob.userID != "@bob:box.lan" {
		t.Fatalf("user ids %s %s", alice.userID, bob.userID)
	}

	room := alice.createRoom("Team", bob.userID)
	bob.join(room)
	if _, err := alice.send(room, "a1", "hello bob"); err != nil {
		t.Fatal(err)
	}
	if sender, ok := bob.syncUntil(room, "hello bob", 30*time.Second); !ok || sender != alice.userID {
		t.Fatalf("bob did not get alice's message (sender %q)", sender)
	}
	if _, err := bob.send(room, "b1", "hi alice"); err != nil {
		t.Fatal(err)
	}
	if sender, ok := alice.syncUntil(room, "hi alice", 30*time.Second); !ok || sender != bob.userID {
		t.Fatalf("alice did not get bob's message (sender %q)", sender)
	}

	// Older clients: r0 paths and the token in the query string pass through unchanged.
	code, body := get(t, base+"/_matrix/client/r0/account/whoami?access_token="+url.QueryEscape(alice.token))
	if code != 200 || !strings.Contains(body, alice.userID) {
		t.Fatalf("r0 whoami with query token: %d %s", code, body)
	}

	// Discovery.
	if code, body := get(t, base+"/.well-known/matrix/client"); code != 200 || !strings.Contains(body, `"base_url":"`+base+`"`) {
		t.Fatalf("well-known client: %d %s", code, body)
	}

	// Closed doors: admin APIs, dendrite's own routes, metrics and, with federation off,
	// every federation endpoint.
	for _, p := range []string{
		"/_synapse/admin/v1/register",
		"/_synapse/admin/v1/users/@alice:box.lan/admin",
		"/_dendrite/admin/evacuateUser/@bob:box.lan",
		"/_dendrite/admin/fulltext/reindex",
		"/metrics",
		"/_matrix/federation/v1/version",
		"/_matrix/federation/v1/query/profile?user_id=@alice:box.lan",
		"/_matrix/key/v2/server",
		"/.well-known/matrix/server",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, base+p, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+alice.token)
			resp, err := httpClientFrom("127.0.0.1").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Errorf("%s %s: %d, want 404", method, p, resp.StatusCode)
			}
		}
	}

	// Every homeserver database runs in WAL mode, as recorded on disk.
	cfg := homeserver.Config{Dir: filepath.Join(dataDir, "homeserver")}
	for _, comp := range homeserver.Components {
		path := cfg.DatabasePath(comp)
		if _, err := os.Stat(path); err != nil {
			if comp == "relayapi" || comp == "mscs" {
				continue // created only when their feature is used
			}
			t.Errorf("%s: %v", comp, err)
			continue
		}
		if mode := journalMode(t, path); mode != "wal" {
			t.Errorf("%s: journal_mode %q, want wal", comp, mode)
		}
	}
	// Sockets and secrets are private.
	for p, want := range map[string]os.FileMode{
		filepath.Join(dataDir, "admin.sock"):                   0o600,
		filepath.Join(dataDir, "homeserver", "dendrite.sock"):  0o660,
		filepath.Join(dataDir, "homeserver", "dendrite.yaml"):  0o600,
		filepath.Join(dataDir, "homeserver", "matrix_key.pem"): 0o600,
		filepath.Join(dataDir, "settings.db"):                  0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}

	// No credential reaches the log, though the access log (debug level) saw them all.
	log := d.log()
	for what, secret := range map[string]string{"alice's token": alice.token, "bob's token": bob.token, "alice's password": password("alice"), "bob's password": password("bob")} {
		if strings.Contains(log, secret) {
			t.Errorf("%s appears in the log", what)
		}
	}
	if !strings.Contains(log, "access_token=…") {
		t.Errorf("access log does not show the redacted query token; log:\n%s", log)
	}

	// Restart outpostd: everything survives, and the homeserver process went away with it.
	oldPID := st.Homeserver.PID
	d.stop()
	if err := syscall.Kill(oldPID, 0); err == nil {
		t.Fatalf("dendrite pid %d still alive after outpostd stopped", oldPID)
	}
	d.start()
	waitFor(t, 60*time.Second, "homeserver after restart", func() bool {
		code, _ := get(t, d.url("/healthz"))
		return code == 200
	})
	st = d.status()
	if !st.SetupComplete || st.ServerName != "box.lan" || st.Homeserver.State != homeserver.StateRunning {
		t.Fatalf("status after restart: %+v", st)
	}
	alice2 := newClient(t, base)
	alice2.login("alice", password("alice"))
	bob2 := newClient(t, base)
	bob2.login("bob", password("bob"))
	var bodies []string
	for _, ev := range bob2.messages(room) {
		if ev.Type == "m.room.message" {
			bodies = append(bodies, fmt.Sprint(ev.Content["body"]))
		}
	}
	if strings.Join(bodies, "|") != "hello bob|hi alice" {
		t.Fatalf("history after restart: %q", bodies)
	}
	if code, body := get(t, d.url("/")); code != 200 || strings.Contains(body, "Claim this box") {
		t.Fatalf("/ after setup still leads to setup: %d", code)
	}
}

func journalMode(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return mode
}

// TestRateLimitKeysOnRealClient: login rate limiting must see each LAN client as itself.
// The gateway overwrites X-Forwarded-For with the peer address, so a client can neither
// escape its bucket by forging the header nor fill another client's bucket.
func TestRateLimitKeysOnRealClient(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	d.setup("box.lan")
	loginURL := d.surl("/_matrix/client/v3/login")
	attempt := func(hc *http.Client, forged string) int {
		body := strings.NewReader(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"nobody"},"password":"wrong-password-1"}`)
		req, _ := http.NewRequest(http.MethodPost, loginURL, body)
		if forged != "" {
			req.Header.Set("X-Forwarded-For", forged)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode
	}

	// Machine A (127.0.0.2) hammers login, forging a different X-Forwarded-For each time.
	machineA, machineB := httpClientFrom("127.0.0.2"), httpClientFrom("127.0.0.3")
	var mu sync.Mutex
	limited := 0
	firstLimit := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if attempt(machineA, fmt.Sprintf("203.0.113.%d", i)) == http.StatusTooManyRequests {
				mu.Lock()
				limited++
				mu.Unlock()
				once.Do(func() { close(firstLimit) })
			}
		}()
	}
	select {
	case <-firstLimit:
	case <-time.After(30 * time.Second):
		t.Fatal("40 concurrent logins from one machine were never rate limited: forged X-Forwarded-For gave each its own bucket")
	}
	// While A's bucket is full, machine B is not affected.
	for i := 0; i < 3; i++ {
		if code := attempt(machineB, ""); code == http.StatusTooManyRequests {
			t.Fatalf("machine B was rate limited by machine A's requests (shared bucket)")
		} else if code != http.StatusForbidden {
			t.Fatalf("machine B login: HTTP %d, want 403 for a wrong password", code)
		}
	}
	wg.Wait()
	if limited == 0 {
		t.Fatal("no request was limited")
	}
	t.Logf("%d of 40 forged-header logins from one machine were limited", limited)
}

// TestHomeserverCrash: kill -9 the homeserver in the middle of a stream of sends. outpostd
// restarts it, the client carries on, and every acknowledged message is in the room.
func TestHomeserverCrash(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	d.setup("box.lan")
	alice := newClient(t, d.surl(""))
	alice.login("alice", password("alice"))
	room := alice.createRoom("Crash test")
	before := d.status().Homeserver

	const total = 60
	acked := map[string]string{} // event ID -> body
	killed := false
	var sendErrs []error
	for i := 0; i < total; i++ {
		body := fmt.Sprintf("message %02d", i)
		txn := fmt.Sprintf("txn-%d", i)
		deadline := time.Now().Add(90 * time.Second)
		for {
			id, err := alice.send(room, txn, body)
			if err == nil {
				acked[id] = body
				break
			}
			sendErrs = append(sendErrs, err)
			if time.Now().After(deadline) {
				t.Fatalf("could not send %q for 90s: %v\nlog:\n%s", body, err, d.log())
			}
			time.Sleep(200 * time.Millisecond)
		}
		if i == total/3 && !killed {
			if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	after := d.status().Homeserver
	if after.Restarts < 1 || after.PID == before.PID || after.State != homeserver.StateRunning {
		t.Fatalf("homeserver not restarted: before %+v after %+v", before, after)
	}
	got := map[string]string{}
	for _, ev := range alice.messages(room) {
		if ev.Type == "m.room.message" {
			got[ev.EventID] = fmt.Sprint(ev.Content["body"])
		}
	}
	for id, body := range acked {
		if got[id] != body {
			t.Errorf("acknowledged %q (%s) missing after the crash", body, id)
		}
	}
	var me *matrixErr
	for _, err := range sendErrs {
		if errors.As(err, &me) && me.Status == http.StatusInternalServerError {
			t.Logf("send error during restart: %v", err)
		}
	}
	t.Logf("%d messages acknowledged, %d send attempts failed during the restart, restarts=%d", len(acked), len(sendErrs), after.Restarts)
}
