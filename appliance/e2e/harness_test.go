package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/testenv"
	"github.com/outpost-im/outpost/appliance/turn"
)

type turnStats = turn.Stats

// Binaries built once for the whole package.
var bins struct {
	outpostd, outpost string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.outpostd = filepath.Join(dir, "outpostd")
	bins.outpost = filepath.Join(dir, "outpost")
	for pkg, out := range map[string]string{"../../cmd/outpostd": bins.outpostd, "../../cmd/outpost": bins.outpost} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dendriteBinary is the real dendrite (see testenv).
func dendriteBinary(t *testing.T) string { return testenv.DendriteBinary(t) }

// daemon is one running outpostd.
type daemon struct {
	t       *testing.T
	dataDir string
	addr    string // plain HTTP gateway
	saddr   string // HTTPS gateway
	// TURN over UDP+TCP and over TLS.
	turnAddr, turnTLSAddr string
	logPath               string // outpostd's log (stderr)
	conPath               string // what it shows on the console (stdout)
	cmd                   *exec.Cmd
	exited                chan struct{}
	// dendrite overrides the homeserver binary (to make it fail on purpose).
	dendrite string
	// extra command-line arguments for outpostd (-provision, say).
	extra []string
}

func freePort(t *testing.T) string { return testenv.FreePorts(t, 1)[0] }

// startDaemon starts outpostd on dataDir and waits until its gateway answers.
func startDaemon(t *testing.T, dataDir string, extra ...string) *daemon {
	t.Helper()
	tmp := t.TempDir()
	trustDirs.Store(dataDir, true)
	t.Cleanup(func() { trustDirs.Delete(dataDir) })
	ports := testenv.FreePorts(t, 4)
	d := &daemon{t: t, dataDir: dataDir, addr: ports[0], saddr: ports[1], turnAddr: ports[2], turnTLSAddr: ports[3], logPath: filepath.Join(tmp, "outpostd.log"), conPath: filepath.Join(tmp, "console.txt"), extra: extra}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	t := d.t
	t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.OpenFile(d.conPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	hs := d.dendrite
	if hs == "" {
		hs = dendriteBinary(t)
	}
	d.cmd = exec.Command(bins.outpostd, append([]string{"-data", d.dataDir, "-http", d.addr, "-https", d.saddr,
		"-turn", d.turnAddr, "-turn-tls", d.turnTLSAddr, "-dendrite", hs, "-log-level", "debug"}, d.extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = conf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.cmd.Wait() //nolint:errcheck
		logf.Close()
		conf.Close()
		close(d.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + d.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-d.exited:
			t.Fatalf("outpostd exited during start; log:\n%s", d.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("outpostd did not listen within 30s; log:\n%s", d.log())
		}
	}
}

// kill ends outpostd with SIGKILL, as a power cut would.
func (d *daemon) kill() {
	d.cmd.Process.Kill() //nolint:errcheck
	<-d.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		d.cmd.Process.Kill() //nolint:errcheck
		<-d.exited
		d.t.Errorf("outpostd did not stop within 40s of SIGTERM")
	}
	if d.t.Failed() {
		d.t.Logf("outpostd log:\n%s", d.log())
	}
}

func (d *daemon) console() string {
	b, _ := os.ReadFile(d.conPath)
	return string(b)
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *daemon) url(path string) string { return "http://" + d.addr + path }

// surl is the HTTPS gateway, which serves everything once the box is set up.
func (d *daemon) surl(path string) string { return "https://" + d.saddr + path }

// cli runs the outpost CLI against this daemon's data dir.
func (d *daemon) cli(stdin string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	cmd := exec.Command(bins.outpost, append([]string{"-data", d.dataDir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func (d *daemon) mustCLI(stdin string, args ...string) string {
	d.t.Helper()
	out, errOut, code := d.cli(stdin, args...)
	if code != 0 {
		d.t.Fatalf("outpost %v: exit %d: %s", args, code, errOut)
	}
	return out
}

func (d *daemon) status() adminapi.Status {
	d.t.Helper()
	var st adminapi.Status
	if err := json.Unmarshal([]byte(d.mustCLI("", "status", "--json")), &st); err != nil {
		d.t.Fatal(err)
	}
	return st
}

// setup completes first-boot setup with admin "alice" and creates "bob".
func (d *daemon) setup(serverName string) {
	d.t.Helper()
	d.mustCLI(password("alice")+"\n", "setup", "--server-name", serverName, "--admin", "alice", "--password-stdin")
	d.mustCLI(password("bob")+"\n", "users", "add", "bob", "--password-stdin")
}

func password(user string) string { return user + "-correct-horse-battery" }

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *daemon) turnStats() turnStats {
	d.t.Helper()
	st := d.status()
	if st.TURN == nil {
		d.t.Fatal("no TURN in status")
	}
	return st.TURN.Stats
}
