package imagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-im/outpost/appliance/gpt"
	"github.com/outpost-im/outpost/appliance/snapshot"
)

var (
	provisionedRE = regexp.MustCompile(`Provisioned from the image as (\S+)\.`)
	stickDoneRE   = regexp.MustCompile(`Snapshot \S+ written to USB stick SNAPUSB and verified`)
)

// TestProvisionedImageInQEMU is zero-touch provisioning on the real image: a signed manifest
// baked into an image that pins the company key (make image PROVISION=… PROVISION_KEY=…)
// sets the box up on its first boot with no setup page, and is gone from the image
// afterwards, leaving a copy without secrets.
func TestProvisionedImageInQEMU(t *testing.T) {
	if os.Getenv("OUTPOST_IMAGE") == "" {
		if os.Getenv("OUTPOST_REQUIRE_IMAGE") != "" {
			t.Fatal("OUTPOST_IMAGE is not set (make test-image sets it)")
		}
		t.Skip("OUTPOST_IMAGE not set: run `make test-image`")
	}
	for _, tool := range []string{"qemu-system-x86_64", "timeout", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing (apt-get install qemu-system-x86 e2fsprogs)", tool)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(password("boss")), 10)
	if err != nil {
		t.Fatal(err)
	}
	_, recipient, err := snapshot.NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	manifest := map[string]any{
		"outpost_manifest": 1,
		"server_name":      "branch.test",
		"admin":            map[string]string{"username": "boss", "password_hash": string(hash)},
		"branding":         map[string]string{"name": "ACME Branch 17"},
		// A fixed address, kept by itself once QEMU's router answers (nobody confirms).
		"network": map[string]any{"mode": "static", "address": staticIP + "/24", "gateway": "10.0.2.2", "dns": []string{"10.0.2.3"}},
		// Snapshots go to whichever USB stick labelled SNAPUSB is plugged in.
		"snapshots": map[string]any{
			"target":             map[string]string{"name": "usb", "kind": "local", "path": "/run/outpost/usb/SNAPUSB"},
			"recovery_recipient": recipient,
		},
	}
	mb, _ := json.MarshalIndent(manifest, "", "  ")
	mpath := filepath.Join(dir, "branch.json")
	if err := os.WriteFile(mpath, mb, 0o600); err != nil {
		t.Fatal(err)
	}
	// Headquarters signs it with the company key that the image pins.
	outpost := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", append([]string{"run", "./cmd/outpost"}, args...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("outpost %v: %v\n%s", args, err, out)
		}
	}
	key := filepath.Join(dir, "company.key")
	outpost("provision", "keygen", "--out", key)
	outpost("provision", "sign", "--key", key, mpath)
	// The same build `make image PROVISION=branch.json PROVISION_KEY=company.key.pub` runs.
	start := time.Now()
	build := exec.Command("firmware/build-image.sh", "amd64", filepath.Join(dir, "out"), "provisioning-test")
	build.Dir = root
	build.Env = append(os.Environ(), "OUTPOST_PROVISION="+mpath, "OUTPOST_PROVISION_KEY="+key+".pub")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the provisioned image: %v\n%s", err, out)
	}
	t.Logf("MEASURE provisioned image built in %s", time.Since(start).Round(time.Second))
	img := filepath.Join(dir, "out", "outpost-amd64.img")
	if out := permFile(t, img, "/outpost-provision.json"); !strings.Contains(out, "branch.test") {
		t.Fatalf("the manifest is not in the image's /perm: %q", out)
	}

	ports := freePorts(t, 4)
	v := &vm{t: t, dir: dir, disk: filepath.Join(dir, "disk.img"), http: ports[0], tls: ports[1], staticTLS: ports[2], staticHTTP: ports[3]}
	t.Cleanup(v.kill)
	copySparse(t, img, v.disk, diskBytes)
	v.boot()
	p := v.waitConsole(provisionedRE, 5*time.Minute)
	if p[1] != "branch.test" {
		t.Fatalf("provisioned as %q", p[1])
	}
	if !strings.Contains(v.console(), "signature checked with the pinned company key") {
		t.Fatalf("the image did not check the manifest's signature; console:\n%s", tail(v.console()))
	}
	ready := v.waitConsole(readyRE, 2*time.Minute)
	plain := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// The manifest's static address is where the box is from now on.
	kept := regexp.MustCompile(`Network: static ` + regexp.QuoteMeta(staticIP) + `/24 via 10.0.2.2, DNS 10.0.2.3 kept`)
	v.waitConsole(kept, 2*time.Minute)
	httpBase := fmt.Sprintf("http://127.0.0.1:%d", v.staticHTTP)
	rootCert := fetchRoot(t, plain, httpBase)
	if got, want := normFP(ready[2]), rootFP(rootCert); got != want {
		t.Fatalf("console fingerprint %s, /ca.crt has %s", ready[2], want)
	}
	hc := tlsClient(rootCert)
	hc.Transport.(*http.Transport).TLSClientConfig.ServerName = "branch.test"
	base := fmt.Sprintf("https://127.0.0.1:%d", v.staticTLS)
	if err := waitHTTP(context.Background(), getter(hc, base+"/_matrix/client/versions"), 200, 3*time.Minute); err != nil {
		t.Fatalf("homeserver after provisioning: %v", err)
	}
	if reachable(hc, fmt.Sprintf("https://127.0.0.1:%d", v.tls)) {
		t.Error("the provisioned box still answers at its DHCP address")
	}
	// The network was applied before setup made the box's root, so the root vouches for the
	// static address too: a browser going to https://10.0.2.20/ trusts it.
	byIP := tlsClient(rootCert)
	byIP.Transport.(*http.Transport).TLSClientConfig.ServerName = staticIP
	if err := waitHTTP(context.Background(), getter(byIP, base+"/_matrix/client/versions"), 200, time.Minute); err != nil {
		t.Fatalf("TLS by the static address: %v", err)
	}
	t.Logf("MEASURE power-on to chat-ready, provisioned, no setup page: %s", v.since())
	boss := newClient(t, base, hc)
	boss.login("boss", password("boss"))
	// The setup page is gone: the box is set up.
	if resp, err := hc.Get(base + "/setup/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/setup/" {
			t.Fatal("the setup page is still offered after provisioning")
		}
	}
	// USB sticks, hot-plugged one after the other (ext4, then vfat, same label, as an office
	// rotates two sticks): each is detected, gets a verified snapshot, and may be pulled.
	sticks := []struct{ id, fs string }{{"s1", "ext4"}, {"s2", "vfat"}}
	for i, st := range sticks {
		img := filepath.Join(dir, st.id+".img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(img, 96<<20) //nolint:errcheck
		mkfs := exec.Command("mkfs.ext4", "-q", "-F", "-L", "SNAPUSB", img)
		if st.fs == "vfat" {
			mkfs = exec.Command("mkfs.vfat", "-n", "SNAPUSB", img)
		}
		if out, err := mkfs.CombinedOutput(); err != nil {
			t.Fatalf("mkfs %s: %v\n%s", st.fs, err, out)
		}
		plugged := time.Now()
		v.plugStick(st.id, img)
		deadline := time.Now().Add(4 * time.Minute)
		for len(stickDoneRE.FindAllString(v.console(), -1)) < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("no snapshot on the %s stick; console:\n%s", st.fs, tail(v.console()))
			}
			time.Sleep(time.Second)
		}
		t.Logf("MEASURE %s USB stick plugged in -> snapshot verified, safe to pull: %s", st.fs, time.Since(plugged).Round(100*time.Millisecond))
		v.unplugStick(st.id)
	}
	v.powerButton(2 * time.Minute)
	checkPerm(t, v)
	for _, st := range sticks {
		img := filepath.Join(dir, st.id+".img")
		var out []byte
		if st.fs == "ext4" {
			out, _ = exec.Command("debugfs", "-R", "ls -l /snapshots", img).CombinedOutput()
		} else {
			out, _ = exec.Command("mdir", "-i", img, "::/snapshots").CombinedOutput()
		}
		if !regexp.MustCompile(`[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}`).Match(out) {
			t.Fatalf("no snapshot directory on the %s stick:\n%s", st.fs, out)
		}
	}
	// /perm no longer holds the manifest; a copy without the hash says what was applied.
	if out := permFile(t, v.disk, "/outpost-provision.json"); strings.Contains(out, "branch.test") {
		t.Fatal("the manifest is still in /perm after provisioning")
	}
	applied := permFile(t, v.disk, "/outpost-provision.applied.json")
	if strings.Contains(applied, string(hash)) || !strings.Contains(applied, "removed after provisioning") {
		t.Fatalf("applied copy:\n%s", applied)
	}
	if out := permFile(t, v.disk, "/outpost-provision.json.sig"); strings.Contains(out, "signature") {
		t.Fatal("the signature was left in /perm")
	}
}

// permFile reads a file from the /perm file system of a disk image with debugfs (no mount,
// no root); a missing file reads as "".
func permFile(t *testing.T, disk, name string) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	perm, ok := tab.Partition(4)
	if !ok {
		t.Fatal("no /perm partition")
	}
	out, _ := exec.Command("debugfs", "-R", "cat "+name, fmt.Sprintf("%s?offset=%d", disk, perm.Start())).Output()
	return string(out)
}
