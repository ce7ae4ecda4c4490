// Package imagetest boots the amd64 appliance image in QEMU and uses it as a person would:
// read the setup code from the serial console, finish setup over the forwarded port, chat
// between two accounts, then power-cycle the box (clean power-off, then a pulled plug) and
// check that everything survived and /perm is intact. `make test-image` runs it with the
// freshly built image in OUTPOST_IMAGE.
package imagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/gpt"
)

const (
	serverName = "outpost.test"
	diskBytes  = 3 << 30 // larger than the image: /perm must grow on the first boot
)

var (
	claimRE     = regexp.MustCompile(`Open (http://\S+/setup/)[\s\S]*?setup code:\s+([A-Z0-9-]+)`)
	readyRE     = regexp.MustCompile(`Outpost is ready at (https://\S+)[\s\S]*?fingerprint:\s+(\S+)`)
	resourcesRE = regexp.MustCompile(`resources: outpostd ([0-9.]+) MiB, dendrite ([0-9.]+) MiB resident; /perm ([0-9.]+)% of ([0-9.]+) GiB used`)
	grownRE     = regexp.MustCompile(`Data partition grown to ([0-9.]+) GiB`)
)

func TestImageInQEMU(t *testing.T) {
	img := os.Getenv("OUTPOST_IMAGE")
	if img == "" {
		if os.Getenv("OUTPOST_REQUIRE_IMAGE") != "" {
			t.Fatal("OUTPOST_IMAGE is not set (make test-image sets it)")
		}
		t.Skip("OUTPOST_IMAGE not set: run `make test-image`")
	}
	for _, tool := range []string{"qemu-system-x86_64", "timeout", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing (apt-get install qemu-system-x86 e2fsprogs coreutils)", tool)
		}
	}
	dir := t.TempDir()
	ports := freePorts(t, 3)
	v := &vm{t: t, dir: dir, disk: filepath.Join(dir, "disk.img"), http: ports[0], tls: ports[1], staticTLS: ports[2]}
	t.Cleanup(v.kill)
	copySparse(t, img, v.disk, diskBytes)

	// Boot 1: first-run page, setup, chat.
	v.boot()
	m := v.waitConsole(claimRE, 5*time.Minute)
	code := m[2]
	t.Logf("console: setup at %s, code %s… (%s after power-on)", m[1], code[:4], v.since())
	if !strings.Contains(m[1], "10.0.2.15") {
		t.Errorf("the setup URL on the console does not name the box's address: %s", m[1])
	}
	ctx := context.Background()
	plain := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	httpBase := fmt.Sprintf("http://127.0.0.1:%d", v.http)
	if err := waitHTTP(ctx, getter(plain, httpBase+"/setup/"), 200, 2*time.Minute); err != nil {
		t.Fatalf("first-run page: %v", err)
	}
	firstRun := v.since()
	t.Logf("MEASURE power-on to first-run page: %s", firstRun)
	if g := grownRE.FindStringSubmatch(v.console()); g == nil {
		t.Errorf("/perm was not grown to the %d GiB disk; console:\n%s", diskBytes>>30, tail(v.console()))
	} else {
		t.Logf("MEASURE /perm grown to %s GiB on first boot", g[1])
	}

	setupStart := time.Now()
	wizard := newBrowser(t, httpBase)
	var claim struct{ CSRF string }
	wizard.mustCall("POST", "/setup/api/claim", map[string]string{"code": code}, &claim)
	wizard.csrf = claim.CSRF
	wizard.mustCall("POST", "/setup/api/step", map[string]any{"step": "server", "values": map[string]string{"server_name": serverName}}, nil)
	wizard.mustCall("POST", "/setup/api/step", map[string]any{"step": "admin", "values": map[string]string{"admin_user": "alice", "admin_password": password("alice"), "confirm": password("alice")}}, nil)
	wizard.mustCall("POST", "/setup/api/step", map[string]any{"step": "tls", "values": map[string]string{"tls_mode": "box-ca"}}, nil)
	wizard.mustCall("POST", "/setup/api/step", map[string]any{"step": "federation", "values": map[string]bool{"federation": false}}, nil)
	// The snapshot recovery key is made and shown once; the person confirms it is saved.
	wizard.mustCall("POST", "/setup/api/recovery-key", map[string]any{}, nil)
	wizard.mustCall("POST", "/setup/api/step", map[string]any{"step": "recovery", "values": map[string]bool{"saved": true}}, nil)
	var done map[string]string
	wizard.mustCall("POST", "/setup/api/complete", map[string]any{}, &done)
	if done["user_id"] != "@alice:"+serverName {
		t.Fatalf("setup: %v", done)
	}
	t.Logf("MEASURE setup over the forwarded port: %s", time.Since(setupStart).Round(100*time.Millisecond))

	// The box root, fetched over plain HTTP, must match the fingerprint on the console; from
	// here on TLS is verified against it.
	ready := v.waitConsole(readyRE, time.Minute)
	root := fetchRoot(t, plain, httpBase)
	if got, want := normFP(ready[2]), rootFP(root); got != want {
		t.Fatalf("console fingerprint %s, /ca.crt has %s", ready[2], want)
	}
	if !strings.Contains(ready[1], "10.0.2.15") {
		t.Errorf("the ready URL on the console does not name the box's address: %s", ready[1])
	}
	hc := tlsClient(root)
	base := fmt.Sprintf("https://127.0.0.1:%d", v.tls)
	if err := waitHTTP(ctx, getter(hc, base+"/_matrix/client/versions"), 200, 2*time.Minute); err != nil {
		t.Fatalf("homeserver after setup: %v", err)
	}
	t.Logf("MEASURE power-on to chat-ready (first boot, incl. setup): %s", v.since())

	admin := newBrowser(t, base)
	admin.hc.Transport = hc.Transport
	var login struct{ CSRF string }
	admin.mustCall("POST", "/admin/api/login", map[string]string{"username": "alice", "password": password("alice")}, &login)
	admin.csrf = login.CSRF
	var bobAcct struct {
		UserID   string `json:"user_id"`
		Password string `json:"password"`
	}
	admin.mustCall("POST", "/admin/api/users", map[string]any{"username": "bob"}, &bobAcct)

	alice, bob := newClient(t, base, hc), newClient(t, base, hc)
	alice.login("alice", password("alice"))
	bob.login("bob", bobAcct.Password)
	room := alice.createRoom("image test", bob.userID)
	bob.join(room)
	alice.send(room, "a1", "hello from alice")
	if !bob.waitMessage(room, "hello from alice", time.Minute) {
		t.Fatal("bob never saw alice's message")
	}
	bob.send(room, "b1", "hello back from bob")
	if !alice.waitMessage(room, "hello back from bob", time.Minute) {
		t.Fatal("alice never saw bob's reply")
	}

	r := v.waitConsole(resourcesRE, 3*time.Minute)
	t.Logf("MEASURE idle RSS after boot: outpostd %s MiB, dendrite %s MiB; /perm %s%% of %s GiB used", r[1], r[2], r[3], r[4])

	// A fixed address from the console; the reboots below must keep it.
	dhcpBase := base
	base = staticNetwork(t, v, admin, hc)

	// Clean power-off (ACPI power button), then check /perm from the host.
	v.powerButton(2 * time.Minute)
	checkPerm(t, v)

	// Boot 2: everything is still there.
	v.boot()
	v.waitConsole(readyRE, 5*time.Minute)
	if claimRE.MatchString(v.console()) {
		t.Fatal("the box asks for setup again after a reboot")
	}
	if err := waitHTTP(ctx, getter(hc, base+"/_matrix/client/versions"), 200, 3*time.Minute); err != nil {
		t.Fatalf("homeserver after reboot: %v", err)
	}
	t.Logf("MEASURE power-on to chat-ready (set-up box, clean reboot): %s", v.since())
	afterReboot(t, hc, base, room, bobAcct.Password, "hello from alice", "hello back from bob")
	alice = newClient(t, base, hc)
	alice.login("alice", password("alice"))
	alice.send(room, "a2", "sent just before the plug is pulled")
	// ext4 commits its journal every 5 s; a message older than that is on the (virtual) disk.
	time.Sleep(8 * time.Second)
	v.kill()

	// Boot 3, after a pulled plug: the journal replays, the data is there.
	v.boot()
	v.waitConsole(readyRE, 5*time.Minute)
	if v.panicked() {
		t.Log("NOTE: the guest kernel panicked early in boot 3 and rebooted itself (TCG; see panicked)")
	}
	if err := waitHTTP(ctx, getter(hc, base+"/_matrix/client/versions"), 200, 3*time.Minute); err != nil {
		t.Fatalf("homeserver after a pulled plug: %v", err)
	}
	t.Logf("MEASURE power-on to chat-ready (after a pulled plug): %s", v.since())
	afterReboot(t, hc, base, room, bobAcct.Password, "hello from alice", "hello back from bob", "sent just before the plug is pulled")
	backToDHCP(t, v, base, dhcpBase, hc)
	v.powerButton(2 * time.Minute)
	checkPerm(t, v)
	if v.panicked() {
		t.Log("NOTE: the guest kernel panicked in this boot and rebooted itself (see panicked)")
	}
}

// afterReboot checks the settings (server name, setup done), both accounts and the messages.
func afterReboot(t *testing.T, hc *http.Client, base, room, bobPassword string, bodies ...string) {
	t.Helper()
	var wk struct {
		HS struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	c := newClient(t, base, hc)
	c.must("GET", "/.well-known/matrix/client", nil, &wk)
	c.login("alice", password("alice"))
	if c.userID != "@alice:"+serverName {
		t.Fatalf("alice is %s after reboot", c.userID)
	}
	bob := newClient(t, base, hc)
	bob.login("bob", bobPassword)
	got := map[string]bool{}
	for _, e := range bob.messages(room) {
		if b, ok := e.Content["body"].(string); ok && e.Type == "m.room.message" {
			got[b] = true
		}
	}
	for _, b := range bodies {
		if !got[b] {
			t.Errorf("message %q lost across the reboot (have %v)", b, got)
		}
	}
}

// checkPerm runs a forced read-only e2fsck of /perm in the powered-off disk image and checks
// the file system fills its (grown) partition.
func checkPerm(t *testing.T, v *vm) {
	t.Helper()
	disk := v.disk
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f)
	if err != nil {
		t.Fatalf("partition table after boot: %v", err)
	}
	perm, ok := tab.Partition(4)
	if !ok {
		t.Fatal("no /perm partition")
	}
	if perm.Start()+perm.Size() < diskBytes-(64<<20) {
		t.Errorf("/perm ends at %d, the disk at %d: not grown", perm.Start()+perm.Size(), diskBytes)
	}
	out, err := exec.Command("e2fsck", "-f", "-n", fmt.Sprintf("%s?offset=%d", disk, perm.Start())).CombinedOutput()
	if err != nil {
		// The console's end says how the shutdown went (services stopped, /perm unmounted).
		t.Fatalf("e2fsck of /perm: %v\n%s\nconsole before the power-off:\n%s", err, out, tail(v.console()))
	}
	t.Logf("e2fsck /perm: %s\nshutdown:\n%s", lastLine(string(out)), shutdownLines(v.console()))
}

// shutdownLines are gokrazy's console lines about the last power-off.
func shutdownLines(console string) string {
	var out []string
	for _, l := range strings.Split(console, "\n") {
		// gokrazy logs its shutdown steps from these two files.
		if strings.Contains(l, "supervise.go:") || strings.Contains(l, "update.go:") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	if len(out) > 12 {
		out = out[len(out)-12:]
	}
	return strings.Join(out, "\n")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

func copySparse(t *testing.T, src, dst string, size int64) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy image: %v %s", err, out)
	}
	if err := os.Truncate(dst, size); err != nil {
		t.Fatal(err)
	}
}

func password(user string) string { return user + "-correct-horse-battery" }

func getter(hc *http.Client, u string) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

func fetchRoot(t *testing.T, hc *http.Client, base string) *x509.Certificate {
	t.Helper()
	resp, err := hc.Get(base + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/ca.crt: HTTP %d", resp.StatusCode)
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("/ca.crt: %v", err)
	}
	return cert
}

func rootFP(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

func normFP(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
}

// tlsClient trusts only the box's root and checks the certificate for the server name.
func tlsClient(root *x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
	}}
}

// browser calls the wizard's and console's JSON APIs with a cookie jar and CSRF token.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 4 * time.Minute}}
}

func (b *browser) mustCall(method, path string, in, out any) {
	b.t.Helper()
	var body io.Reader
	if in != nil {
		j, _ := json.Marshal(in)
		body = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	if b.csrf != "" {
		req.Header.Set("X-Outpost-CSRF", b.csrf)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		b.t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			b.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// client is a minimal Matrix client.
type client struct {
	t             *testing.T
	base          string
	hc            *http.Client
	token, userID string
}

func newClient(t *testing.T, base string, hc *http.Client) *client {
	return &client{t: t, base: base, hc: hc}
}

func (c *client) must(method, path string, in, out any) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		j, _ := json.Marshal(in)
		body = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (c *client) login(user, pw string) {
	c.t.Helper()
	var resp struct {
		AccessToken string `json:"access_token"`
		UserID      string `json:"user_id"`
	}
	c.must("POST", "/_matrix/client/v3/login", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": user}, "password": pw,
	}, &resp)
	c.token, c.userID = resp.AccessToken, resp.UserID
}

func (c *client) createRoom(name string, invite ...string) string {
	c.t.Helper()
	var resp struct {
		RoomID string `json:"room_id"`
	}
	c.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "name": name, "invite": invite}, &resp)
	return resp.RoomID
}

func (c *client) join(room string) {
	c.t.Helper()
	c.must("POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{}, nil)
}

func (c *client) send(room, txn, body string) {
	c.t.Helper()
	c.must("PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/"+txn, map[string]any{"msgtype": "m.text", "body": body}, nil)
}

type event struct {
	Type    string         `json:"type"`
	Sender  string         `json:"sender"`
	Content map[string]any `json:"content"`
}

func (c *client) messages(room string) []event {
	c.t.Helper()
	var resp struct {
		Chunk []event `json:"chunk"`
	}
	c.must("GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=100", nil, &resp)
	return resp.Chunk
}

func (c *client) waitMessage(room, body string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, e := range c.messages(room) {
			if e.Content["body"] == body {
				return true
			}
		}
		time.Sleep(time.Second)
	}
	return false
}
