package netcfg

import (
	"bufio"
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
