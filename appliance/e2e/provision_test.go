package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/netcfg"
	"github.com/outpost-im/outpost/appliance/snapshot"
)

func outpostCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bins.outpost, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("outpost %v: %v\n%s", args, err, e.String())
	}
	return o.String(), e.String()
}

// TestProvisioning is zero-touch setup on a laptop data dir: headquarters writes and signs a
// manifest with the CLI; outpostd started with -provision sets itself up with no UI, wipes
// the manifest's secrets, takes the first snapshot to the configured target; the admin must
// replace the one-time password at the first console sign-in. An unsigned manifest is refused
// when a company key is pinned.
func TestProvisioning(t *testing.T) {
	hq := t.TempDir()
	usb := t.TempDir()
	_, recipient, err := snapshot.NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(hq, "branch-17.json")
	_, errOut := outpostCLI(t, "", "provision", "new", "--out", manifest, "--server-name", "branch17.test", "--admin", "boss",
		"--one-time-password", "--recovery-recipient", recipient, "--kind", "local", "--path", usb, "--brand", "ACME Branch 17",
		"--static", "192.168.17.10/24", "--gateway", "192.168.17.1", "--dns", "192.168.17.1")
	otp := regexp.MustCompile(`one-time admin password \(changed at first sign-in\): (\S+)`).FindStringSubmatch(errOut)
	if otp == nil {
		t.Fatalf("no one-time password printed: %s", errOut)
	}
	outpostCLI(t, "", "provision", "keygen", "--out", filepath.Join(hq, "company.key"))
	pub := filepath.Join(hq, "company.key.pub")

	// Unsigned, with a key pinned: refused, nothing consumed, the setup page stays.
	unsigned := startDaemon(t, t.TempDir(), "-provision", manifest, "-provision-key", pub)
	waitFor(t, 20*time.Second, "the refusal on the console", func() bool { return strings.Contains(unsigned.console(), "not signed") })
	if unsigned.status().SetupComplete {
		t.Fatal("an unsigned manifest was applied although a key is pinned")
	}
	unsigned.stop()
	if _, err := os.Stat(manifest); err != nil {
		t.Fatal("a refused manifest was consumed")
	}

	// A broken manifest is refused with the field named, on the console and by `check`.
	if out, err := exec.Command(bins.outpost, "provision", "check", filepath.Join("..", "..", "provisioning", "examples", "fleet.csv")).CombinedOutput(); err == nil || !strings.Contains(string(out), "(file)") {
		t.Fatalf("check of a CSV file: %v %s", err, out)
	}

	outpostCLI(t, "", "provision", "sign", "--key", filepath.Join(hq, "company.key"), manifest)
	out, _ := outpostCLI(t, "", "provision", "check", manifest, "--key", pub)
	if !strings.Contains(out, "signature OK") || !strings.Contains(out, "valid manifest for branch17.test") {
		t.Fatalf("check: %s", out)
	}

	signedManifest, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	signature, err := os.ReadFile(manifest + ".sig")
	if err != nil {
		t.Fatal(err)
	}

	dataDir := t.TempDir()
	d := startDaemon(t, dataDir, "-provision", manifest, "-provision-key", pub)
	waitFor(t, 120*time.Second, "the box to set itself up from the manifest", func() bool {
		st := d.status()
		return st.SetupComplete && st.Homeserver.State == "running"
	})
	if st := d.status(); st.ServerName != "branch17.test" {
		t.Fatalf("server name %q", st.ServerName)
	}
	// The manifest's secrets are gone from where it was (right after setup completes); a
	// redacted copy says what happened.
	waitFor(t, 30*time.Second, "the applied manifest to be wiped", func() bool {
		_, err := os.Stat(manifest)
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(manifest + ".sig"); !os.IsNotExist(err) {
		t.Fatal("the signature was left behind")
	}
	applied, err := os.ReadFile(filepath.Join(hq, "branch-17.applied.json"))
	if err != nil || strings.Contains(string(applied), otp[1]) || !strings.Contains(string(applied), "branch17.test") {
		t.Fatalf("applied copy: %v\n%s", err, applied)
	}
	if strings.Contains(d.log(), otp[1]) {
		t.Fatal("the one-time password is in the log")
	}
	// The configured target received the first snapshot.
	waitFor(t, 120*time.Second, "the first snapshot on the provisioned target", func() bool {
		m, _ := filepath.Glob(filepath.Join(usb, "snapshots", "*", "manifest.json.age"))
		return len(m) == 1
	})

	// The admin signs in with the one-time password and can do nothing but replace it.
	b := newBrowser(t, d.surl(""), "127.0.0.1")
	var sess struct {
		CSRF       string `json:"csrf"`
		MustChange bool   `json:"must_change_password"`
	}
	// Element (any Matrix client) cannot sign in with the one-time password either.
	if err := newClient(t, d.surl("")).do("POST", "/_matrix/client/v3/login", loginBody("boss", otp[1]), nil); err == nil || !strings.Contains(err.Error(), "admin console") {
		t.Fatalf("Matrix login with the one-time password: %v", err)
	}
	b.mustCall("POST", "/admin/api/login", map[string]string{"username": "boss", "password": otp[1]}, &sess)
	if !sess.MustChange {
		t.Fatal("the console does not ask for a new password")
	}
	b.csrf = sess.CSRF
	var apiErr struct {
		Field string `json:"field"`
	}
	if code := b.call("GET", "/admin/api/overview", nil, &apiErr); code != 403 || apiErr.Field != "password_change" {
		t.Fatalf("overview before the change: HTTP %d %+v", code, apiErr)
	}
	if code := b.call("POST", "/admin/api/password", map[string]string{"password": "short", "confirm": "short"}, &apiErr); code != 400 {
		t.Fatalf("a short password: HTTP %d", code)
	}
	newPW := "boss has his own password now"
	b.mustCall("POST", "/admin/api/password", map[string]string{"password": newPW, "confirm": newPW}, nil)
	var overview map[string]any
	b.mustCall("GET", "/admin/api/overview", nil, &overview)
	c := newClient(t, d.surl(""))
	if err := c.do("POST", "/_matrix/client/v3/login", loginBody("boss", otp[1]), nil); err == nil {
		t.Fatal("the one-time password still works after the change")
	}
	c.login("boss", newPW)

	var snap map[string]any
	json.Unmarshal([]byte(d.mustCLI("", "snapshot", "status", "--json")), &snap)
	if snap["target"] != "provisioned" || snap["recovery_key_set"] != true {
		t.Fatalf("snapshot settings from the manifest: %v", snap)
	}

	// The manifest's network went through the network manager (kept at once: nobody is
	// there to confirm); on a laptop it is stored, never applied to the host.
	var nv adminapi.NetworkView
	if err := json.Unmarshal([]byte(d.mustCLI("", "network", "--json")), &nv); err != nil {
		t.Fatal(err)
	}
	want := netcfg.Config{Mode: "static", Address: "192.168.17.10/24", Gateway: "192.168.17.1", DNS: []string{"192.168.17.1"}}
	if nv.Managed || !nv.Committed.Equal(want) || nv.Last == nil || nv.Last.Outcome != netcfg.OutcomeKept {
		t.Fatalf("network after provisioning: %+v", nv)
	}
	// A wrong change is refused with the field named, before anything is tried.
	if _, errOut, _ := d.cli("", "network", "set", "--static", "192.168.17.10/24", "--gateway", "10.0.0.1"); !strings.Contains(errOut, "gateway: 10.0.0.1 is not in the box's subnet 192.168.17.0/24") {
		t.Fatalf("bad gateway: %q", errOut)
	}

	// A power cut between setup and the wipe leaves the manifest behind: the next start
	// wipes it and applies nothing again (the admin keeps the password they chose).
	d.stop()
	if err := os.WriteFile(manifest, signedManifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest+".sig", signature, 0o600); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dataDir, "-provision", manifest, "-provision-key", pub)
	waitFor(t, 30*time.Second, "the leftover manifest to be wiped", func() bool {
		_, err := os.Stat(manifest)
		return os.IsNotExist(err) && strings.Contains(d.log(), "wiped a provisioning manifest applied before a restart")
	})
	if _, err := os.Stat(manifest + ".sig"); !os.IsNotExist(err) {
		t.Fatal("the leftover signature was not wiped")
	}
	waitFor(t, 60*time.Second, "the homeserver after the restart", func() bool { return d.status().Homeserver.State == "running" })
	newClient(t, d.surl("")).login("boss", newPW)
}
