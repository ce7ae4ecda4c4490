package netcfg

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperParentEnv makes the test binary act as an outpostd that starts a helper and then
// dies (TestHelperDiesWithParent).
const helperParentEnv = "OUTPOST_NETCFG_HELPER_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(helperParentEnv) != "" {
		p := &Process{Path: "/bin/sleep", Args: []string{"1000"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		p.Start()
		for range 500 {
			p.mu.Lock()
			cmd := p.cmd
			p.mu.Unlock()
			if cmd != nil {
				fmt.Println(cmd.Process.Pid)
				os.Exit(3) // a crash, as far as the helper can tell
			}
			time.Sleep(10 * time.Millisecond)
		}
		os.Exit(4)
	}
	os.Exit(m.Run())
}

// A crashed outpostd leaves no DHCP client behind, and the client is never in outpostd's
// process group (gokrazy waits for the whole group before restarting a service).
func TestHelperDiesWithParent(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), helperParentEnv+"=1")
	parent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the parent's own group, like a gokrazy service
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	err = parent.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("helper parent: %v (output %q)", err, line)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child pid %q: %v", line, err)
	}
	pgid, err := syscall.Getpgid(child)
	if err == nil && pgid == parent.Process.Pid {
		t.Errorf("the helper is in its parent's process group %d", pgid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The child is reparented (to us as subreaper or to init); a zombie counts as gone.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL) //nolint:errcheck // our own leftover
			t.Fatalf("the helper %d outlived its parent by 5 s", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The helper does not run in outpostd's working directory (on gokrazy, under /perm), and
// Close stops it and waits: at power-off nothing of ours may still hold /perm when gokrazy
// unmounts it.
func TestHelperOutsidePermAndClosed(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	lines := make(chan string, 10)
	p := &Process{Path: "/bin/sh", Args: []string{"-c", "pwd; exec sleep 1000"}, Log: slog.New(lineHandler(lines))}
	link := &Interface{Name: "unused", DHCP: p}
	p.Start()
	select {
	case got := <-lines:
		if got != "/" {
			t.Errorf("helper runs in %q, want /", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the helper said nothing")
	}
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		t.Fatal("no helper process")
	}
	if err := link.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cmd.ProcessState == nil {
		t.Error("Close returned before the helper had exited")
	}
	// A trial rolling back to DHCP during shutdown must not start it again.
	p.Start()
	if p.Running() {
		t.Error("Start after Close started the helper again")
	}
}

// lineHandler sends each log message to a channel.
type lineHandler chan string

func (h lineHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h lineHandler) Handle(_ context.Context, r slog.Record) error { h <- r.Message; return nil }
func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h lineHandler) WithGroup(string) slog.Handler                 { return h }
