package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/testenv"
)

// upload stores data as media and returns its mxc:// URI.
func (c *client) upload(name string, data []byte) string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/_matrix/media/v3/upload?filename="+url.QueryEscape(name), bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ContentURI == "" {
		c.t.Fatalf("upload %s: HTTP %d %v", name, resp.StatusCode, err)
	}
	return out.ContentURI
}

// download fetches an mxc:// URI.
func (c *client) download(mxc string) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodGet, c.base+"/_matrix/media/v3/download/"+strings.TrimPrefix(mxc, "mxc://"), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %d", mxc, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// otkCount uploads nothing and returns the server's count of the device's one-time keys.
func (c *client) otkCount() int {
	c.t.Helper()
	var out struct {
		Counts map[string]int `json:"one_time_key_counts"`
	}
	c.must(http.MethodPost, "/_matrix/client/v3/keys/upload", map[string]any{}, &out)
	return out.Counts["signed_curve25519"]
}

func (c *client) sinceToken() string {
	c.t.Helper()
	var out struct {
		NextBatch string `json:"next_batch"`
	}
	c.must(http.MethodGet, "/_matrix/client/v3/sync?timeout=0", nil, &out)
	return out.NextBatch
}

type acked struct {
	body string
	at   time.Time
}

// TestSnapshotRestore is the promise of snapshots, end to end with the real dendrite: chat
// with media under continuous sends, a snapshot taken while sending, the data dir wiped,
// the snapshot restored onto a new data dir (directly) and onto a fresh running box (through
// outpostd), and every message acknowledged before the snapshot started is there, every
// media file too, and clients that kept running against the newer state go on working.
func TestSnapshotRestore(t *testing.T) {
	usb := t.TempDir() // a local directory standing in for a USB drive
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	d.setup("snap.test")

	alice, bob := newClient(t, d.surl("")), newClient(t, d.surl(""))
	alice.login("alice", password("alice"))
	bob.login("bob", password("bob"))
	room := alice.createRoom("history", bob.userID)
	bob.join(room)

	media := map[string][]byte{}
	for i := 0; i < 3; i++ {
		data := make([]byte, 50_000+i*20_000)
		rand.Read(data)
		mxc := alice.upload(fmt.Sprintf("photo-%d.jpg", i), data)
		media[mxc] = data
		if _, err := alice.send(room, fmt.Sprintf("img-%d", i), "photo "+mxc); err != nil {
			t.Fatal(err)
		}
	}
	// bob's device publishes one-time keys, as an E2EE client does.
	otks := map[string]any{}
	for i := 0; i < 5; i++ {
		otks[fmt.Sprintf("signed_curve25519:AAAAA%d", i)] = map[string]any{"key": fmt.Sprintf("key%d", i)}
	}
	bob.must(http.MethodPost, "/_matrix/client/v3/keys/upload", map[string]any{"one_time_keys": otks}, nil)
	if n := bob.otkCount(); n != 5 {
		t.Fatalf("bob has %d one-time keys, want 5", n)
	}

	// No target or recovery key yet: the snapshot refuses with advice.
	if _, errOut, code := d.cli("", "snapshot", "now"); code == 0 || !strings.Contains(errOut, "recovery key") && !strings.Contains(errOut, "target") {
		t.Fatalf("snapshot without setup: exit %d, %s", code, errOut)
	}
	keyOut := d.mustCLI("", "recovery-key", "new")
	recovery := regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`).FindString(keyOut)
	if recovery == "" {
		t.Fatalf("no recovery key printed: %q", keyOut)
	}
	if strings.Contains(d.log(), recovery) {
		t.Fatal("the recovery key is in outpostd's log")
	}
	keyFile := filepath.Join(t.TempDir(), "recovery.txt")
	os.WriteFile(keyFile, []byte(keyOut), 0o600)
	if _, errOut, code := d.cli("", "targets", "add", "--name", "usb", "--kind", "local", "--path", filepath.Join(usb, "not-mounted")); code == 0 {
		t.Fatal("a missing directory was accepted as a target")
	} else if !strings.Contains(errOut, "not-mounted") {
		t.Fatalf("unclear error for a missing target dir: %s", errOut)
	}
	d.mustCLI("", "targets", "add", "--name", "usb", "--kind", "local", "--path", usb)

	// Continuous sends while the snapshot runs.
	var mu sync.Mutex
	var sent []acked
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf("msg-%d", i)
			if _, err := alice.send(room, "t"+body, body); err == nil {
				mu.Lock()
				sent = append(sent, acked{body, time.Now()})
				mu.Unlock()
			}
		}
	}()
	time.Sleep(2 * time.Second)
	snapStart := time.Now()
	out := d.mustCLI("", "snapshot", "now")
	close(stop)
	wg.Wait()
	t.Logf("snapshot: %s", out)
	if !strings.Contains(out, "verified restorable") {
		t.Fatalf("snapshot output lacks the verification: %s", out)
	}
	pause := regexp.MustCompile(`paused ([0-9.]+) ms`).FindStringSubmatch(out)
	if pause == nil {
		t.Fatalf("no pause reported: %s", out)
	}
	var before []string
	for _, a := range sent {
		if a.at.Before(snapStart) {
			before = append(before, a.body)
		}
	}
	if len(before) < 5 {
		t.Fatalf("only %d messages were acknowledged before the snapshot", len(before))
	}

	// After the snapshot: a one-time key is claimed, more messages are sent, and bob's
	// client holds a sync token from that newer state.
	var claim struct {
		OneTimeKeys map[string]map[string]map[string]any `json:"one_time_keys"`
	}
	alice.must(http.MethodPost, "/_matrix/client/v3/keys/claim", map[string]any{
		"one_time_keys": map[string]any{bob.userID: map[string]any{bobDevice(t, bob): "signed_curve25519"}},
	}, &claim)
	for i := 0; i < 20; i++ {
		alice.send(room, fmt.Sprintf("late-%d", i), fmt.Sprintf("after the snapshot %d", i)) //nolint:errcheck
	}
	bobSince := bob.sinceToken()

	st := d.mustCLI("", "snapshot", "status", "--json")
	var status backup.Status
	json.Unmarshal([]byte(st), &status)
	if status.LastSnapshot == nil || status.LastVerified == nil || len(status.Alerts) != 0 {
		t.Fatalf("status after a good snapshot: %s", st)
	}
	list := d.mustCLI("", "snapshot", "list")
	if !strings.Contains(list, "complete") {
		t.Fatalf("snapshot list: %s", list)
	}
	snapID := regexp.MustCompile(`[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}`).FindString(list)

	// The box dies: its data dir is gone.
	d.stop()
	os.RemoveAll(dataDir)

	// 1. Restore onto a new data dir with no outpostd running.
	newDir := t.TempDir()
	cmd := exec.Command(bins.outpost, "-data", newDir, "restore", "--kind", "local", "--path", usb, "--recovery-key", keyFile)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("offline restore: %v\n%s", err, b)
	}
	t.Logf("restore: %s", b)
	d2 := startDaemon(t, newDir)
	waitFor(t, 60*time.Second, "the restored homeserver", func() bool { return d2.status().Homeserver.State == "running" })
	checkRestored(t, d2, room, before, media)

	// bob's client kept running: its keys from before still work (same device, same token),
	// the stale one-time keys are gone so it uploads fresh ones, and its newer sync token
	// still receives new messages.
	bob2 := newClient(t, d2.surl(""))
	bob2.token, bob2.userID = bob.token, bob.userID
	if n := bob2.otkCount(); n != 0 {
		t.Fatalf("bob still has %d one-time keys after the restore; a claimed one could be handed out again", n)
	}
	alice2 := newClient(t, d2.surl(""))
	alice2.login("alice", password("alice"))
	if _, err := alice2.send(room, "after-restore", "hello after the restore"); err != nil {
		t.Fatal(err)
	}
	if _, ok := bob2.syncFrom(bobSince, room, "hello after the restore", 30*time.Second); !ok {
		t.Fatal("a client with a sync token from after the snapshot did not receive a new message")
	}
	if strings.Contains(d2.log(), `level=error`) {
		t.Fatalf("component errors after the restore:\n%s", grepLines(d2.log(), "level=error"))
	}
	d2.stop()

	// 2. Restore onto a fresh, running box through outpostd (what the setup page does).
	freshDir := t.TempDir()
	d3 := startDaemon(t, freshDir)
	out = d3.mustCLI("", "restore", "--kind", "local", "--path", usb, "--id", snapID, "--recovery-key", keyFile)
	if !strings.Contains(out, "restarts now") {
		t.Fatalf("online restore: %s", out)
	}
	waitFor(t, 90*time.Second, "the box to restart into the restored state", func() bool {
		o, _, code := d3.cli("", "status", "--json")
		var s struct {
			SetupComplete bool `json:"setup_complete"`
			Homeserver    struct {
				State string `json:"state"`
			} `json:"homeserver"`
		}
		return code == 0 && json.Unmarshal([]byte(o), &s) == nil && s.SetupComplete && s.Homeserver.State == "running"
	})
	checkRestored(t, d3, room, before, media)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func bobDevice(t *testing.T, c *client) string {
	var who struct {
		DeviceID string `json:"device_id"`
	}
	c.must(http.MethodGet, "/_matrix/client/v3/account/whoami", nil, &who)
	return who.DeviceID
}

func checkRestored(t *testing.T, d *daemon, room string, before []string, media map[string][]byte) {
	t.Helper()
	c := newClient(t, d.surl(""))
	c.login("alice", password("alice"))
	have := map[string]bool{}
	for _, ev := range c.messages(room) {
		if b, ok := ev.Content["body"].(string); ok {
			have[b] = true
		}
	}
	for _, b := range before {
		if !have[b] {
			t.Fatalf("message %q was acknowledged before the snapshot but is not in the restore (%d of %d present)", b, countIn(have, before), len(before))
		}
	}
	for mxc, want := range media {
		got, err := c.download(mxc)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("media %s after restore: %d bytes, %v", mxc, len(got), err)
		}
	}
	t.Logf("restored: %d acknowledged messages and %d media files present", len(before), len(media))
}

func countIn(have map[string]bool, list []string) int {
	n := 0
	for _, b := range list {
		if have[b] {
			n++
		}
	}
	return n
}

// TestManualRestoreWithStockTools follows README-RESTORE.txt literally with Debian's age,
// zstd, tar and sha256sum, then starts dendrite from the result and reads the history.
func TestManualRestoreWithStockTools(t *testing.T) {
	for _, tool := range [][2]string{{"age", "age"}, {"zstd", "zstd"}, {"sha256sum", "coreutils"}, {"openssl", "openssl"}} {
		testenv.Tool(t, tool[0], tool[1])
	}
	usb := t.TempDir()
	d := startDaemon(t, t.TempDir())
	d.setup("manual.test")
	alice := newClient(t, d.surl(""))
	alice.login("alice", password("alice"))
	room := alice.createRoom("kept by hand")
	photo := make([]byte, 40_000)
	rand.Read(photo)
	mxc := alice.upload("photo.jpg", photo)
	for i := 0; i < 10; i++ {
		alice.send(room, fmt.Sprintf("m%d", i), fmt.Sprintf("by hand %d", i)) //nolint:errcheck
	}
	keyOut := d.mustCLI("", "recovery-key", "new")
	d.mustCLI("", "targets", "add", "--name", "usb", "--kind", "local", "--path", usb)
	d.mustCLI("", "snapshot", "now")
	d.stop()
	os.WriteFile(filepath.Join(usb, "recovery.txt"), []byte(keyOut), 0o600)

	readme, err := os.ReadFile(filepath.Join(usb, "README-RESTORE.txt"))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(usb, "snapshots"))
	if len(entries) != 1 {
		t.Fatalf("%d snapshots on the target", len(entries))
	}
	id := entries[0].Name()
	// The commands are the README's indented blocks, run in order from the target root.
	// Only two substitutions: the snapshot ID the reader would pick, and a free port
	// instead of 8008 for the homeserver.
	port := freePort(t)
	var script []string
	blocks := regexp.MustCompile(`(?m)^     \S.*(?:\n(?:     |       ).*)*`).FindAllString(string(readme), -1)
	for _, blk := range blocks {
		blk = strings.ReplaceAll(blk, "ID=<the snapshot ID you want>", "ID="+id)
		blk = strings.ReplaceAll(blk, "127.0.0.1:8008", port)
		script = append(script, blk)
	}
	if len(script) < 6 {
		t.Fatalf("README has %d command blocks: %q", len(script), script)
	}
	last := script[len(script)-1]
	if !strings.Contains(last, "dendrite --config") {
		t.Fatalf("the README's last block does not start the homeserver: %q", last)
	}
	run := func(s string) {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", s)
		cmd.Dir = usb
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README step failed: %v\n%s\n%s", err, s, out)
		}
		if strings.Contains(s, "sha256sum -c") && strings.Contains(string(out), "FAILED") {
			t.Fatalf("checksum failure:\n%s", out)
		}
		if strings.Contains(s, "openssl") && !strings.Contains(string(out), "Signature Verified Successfully") {
			t.Fatalf("signature check did not pass:\n%s", out)
		}
	}
	run("ID=" + id + "\n" + strings.Join(script[:len(script)-1], "\n"))

	// Start the homeserver exactly as the README says, with the bundled dendrite.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs := exec.CommandContext(ctx, "bash", "-c", strings.Replace(last, "dendrite --config", dendriteBinary(t)+" --config", 1))
	hs.Dir = usb
	var hsLog bytes.Buffer
	hs.Stdout, hs.Stderr = &hsLog, &hsLog
	if err := hs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hs.Process.Kill(); hs.Wait() }() //nolint:errcheck
	waitFor(t, 60*time.Second, "dendrite started from the unpacked snapshot", func() bool {
		c, err := net.DialTimeout("tcp", port, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	c := &client{t: t, base: "http://" + port, hc: http.DefaultClient}
	if err := c.do(http.MethodPost, "/_matrix/client/v3/login", loginBody("alice", password("alice")), nil); err != nil {
		ls, _ := exec.Command("find", filepath.Join(usb, "restored"), "-maxdepth", "3").CombinedOutput()
		y, _ := os.ReadFile(filepath.Join(usb, "restored/outpost-restore/dendrite.yaml"))
		t.Fatalf("login on the hand-restored homeserver: %v\nfiles:\n%s\nconfig:\n%s\nlog:\n%s", err, ls, y, hsLog.String())
	}
	c.login("alice", password("alice"))
	have := map[string]bool{}
	for _, ev := range c.messages(room) {
		if b, ok := ev.Content["body"].(string); ok {
			have[b] = true
		}
	}
	for i := 0; i < 10; i++ {
		if !have[fmt.Sprintf("by hand %d", i)] {
			t.Fatalf("message %d missing from the hand-restored homeserver; log:\n%s", i, hsLog.String())
		}
	}
	got, err := c.download(mxc)
	if err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("media from the hand-restored homeserver: %d bytes, %v", len(got), err)
	}
}
