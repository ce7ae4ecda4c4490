package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/testenv"
)

// vm is one boot of the image under QEMU (software emulation, no KVM). The disk persists
// across boots; every boot gets a fresh serial log.
type vm struct {
	t         *testing.T
	dir, disk string
	http, tls int // forwarded host ports for the guest's :80 and :443
	// staticTLS, when set, is forwarded to :443 of 10.0.2.20, the static address the network
	// test gives the box (QEMU's DHCP hands out 10.0.2.15).
	staticTLS, staticHTTP int
	boots                 int
	cmd                   *exec.Cmd
	serial                string
	started               time.Time
	exited                chan error
	monitorSoc            string
}

// freePorts returns n distinct free loopback ports for QEMU's forwarding rules.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i, a := range testenv.FreePorts(t, n) {
		_, p, _ := strings.Cut(a, ":")
		ports[i], _ = strconv.Atoi(p)
	}
	return ports
}

// boot starts QEMU under timeout(1), so a hung test can never leave a VM behind.
func (v *vm) boot() {
	v.t.Helper()
	v.boots++
	v.serial = filepath.Join(v.dir, fmt.Sprintf("serial-%d.log", v.boots))
	v.monitorSoc = filepath.Join(v.dir, fmt.Sprintf("monitor-%d.sock", v.boots))
	args := []string{"--kill-after=10", "1200", "qemu-system-x86_64",
		// No -no-reboot: a guest reboot (panic=10 is on gokrazy's kernel command line) resets
		// the VM as it would a real box; a power-off still ends QEMU.
		"-nodefaults",
		"-machine", "q35", "-smp", "2", "-m", "1024",
		"-display", "none", "-vga", "none",
		"-drive", "file=" + v.disk + ",format=raw,if=virtio",
		// restrict=on: the guest reaches nothing but the forwarded ports, which listen on
		// 127.0.0.1 only.
		"-netdev", v.netdev(),
		"-device", "virtio-net-pci,netdev=n",
		"-serial", "file:" + v.serial,
		"-monitor", "unix:" + v.monitorSoc + ",server,nowait",
		// A USB 3 controller, for sticks hot-plugged through the monitor (plugStick).
		"-device", "qemu-xhci,id=xhci",
	}
	v.cmd = exec.Command("timeout", args...)
	var out bytes.Buffer
	v.cmd.Stdout, v.cmd.Stderr = &out, &out
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		v.t.Fatalf("start QEMU: %v", err)
	}
	v.exited = make(chan error, 1)
	go func() {
		err := v.cmd.Wait()
		if err != nil && out.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, out.String())
		}
		v.exited <- err
	}()
	v.t.Logf("boot %d: QEMU pid %d", v.boots, v.cmd.Process.Pid)
}

func (v *vm) netdev() string {
	s := fmt.Sprintf("user,id=n,restrict=on,hostfwd=tcp:127.0.0.1:%d-:80,hostfwd=tcp:127.0.0.1:%d-:443", v.http, v.tls)
	if v.staticTLS != 0 {
		s += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:443", v.staticTLS, staticIP)
	}
	if v.staticHTTP != 0 {
		s += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:80", v.staticHTTP, staticIP)
	}
	return s
}

// panicked reports whether the guest kernel panicked during this boot. Under software
// emulation (TCG, -smp 2) Linux 7.1 has been seen to die early in boot with an int3 Oops in
// run_timer_softirq (a code-patching race of the emulator, never on hardware); panic=10 then
// reboots it, and the test logs it rather than failing.
func (v *vm) panicked() bool { return strings.Contains(v.console(), "Kernel panic") }

// console returns what the guest printed on its serial console so far.
func (v *vm) console() string {
	b, _ := os.ReadFile(v.serial)
	return string(b)
}

// waitConsole waits for re on the serial console and returns its submatches.
func (v *vm) waitConsole(re *regexp.Regexp, timeout time.Duration) []string {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(v.console()); m != nil {
			return m
		}
		select {
		case err := <-v.exited:
			v.exited <- err
			v.t.Fatalf("QEMU exited (%v) while waiting for %q; console:\n%s", err, re, tail(v.console()))
		case <-time.After(500 * time.Millisecond):
		}
	}
	v.t.Fatalf("no %q on the console after %s; console:\n%s", re, timeout, tail(v.console()))
	return nil
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

// powerButton presses the ACPI power button (gokrazy stops its services, unmounts /perm and
// powers off) and waits for QEMU to exit.
func (v *vm) powerButton(timeout time.Duration) {
	v.t.Helper()
	c, err := net.Dial("unix", v.monitorSoc)
	if err != nil {
		v.t.Fatalf("QEMU monitor: %v", err)
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond)
	if _, err := c.Write([]byte("system_powerdown\n")); err != nil {
		v.t.Fatalf("QEMU monitor: %v", err)
	}
	select {
	case err := <-v.exited:
		if err != nil {
			v.t.Fatalf("QEMU after power-off: %v", err)
		}
	case <-time.After(timeout):
		v.kill()
		v.t.Fatalf("the guest did not power off within %s; console:\n%s", timeout, tail(v.console()))
	}
}

// kill pulls the plug: SIGKILL to QEMU (and timeout, its parent).
func (v *vm) kill() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the group may be gone
	select {
	case <-v.exited:
	case <-time.After(30 * time.Second):
	}
	v.cmd = nil
}

// since is the time since this boot's power-on.
func (v *vm) since() time.Duration { return time.Since(v.started).Round(100 * time.Millisecond) }

// waitHTTP polls url until it answers with want (any status if want is 0).
func waitHTTP(ctx context.Context, get func(context.Context) (int, error), want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		code, err := get(ctx)
		if err == nil && (want == 0 || code == want) {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("HTTP %d", code)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

// monitor sends one command to the QEMU monitor and returns what it printed in reply.
func (v *vm) monitor(cmd string) string {
	v.t.Helper()
	c, err := net.Dial("unix", v.monitorSoc)
	if err != nil {
		v.t.Fatalf("QEMU monitor: %v", err)
	}
	defer c.Close()
	// Read the banner up to the first prompt, send the command, read up to the next prompt.
	readPrompt := func() string {
		var out []byte
		b := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
		for !bytes.Contains(out, []byte("(qemu)")) {
			n, err := c.Read(b)
			out = append(out, b[:n]...)
			if err != nil {
				break
			}
		}
		return string(out)
	}
	readPrompt()
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		v.t.Fatalf("QEMU monitor: %v", err)
	}
	return readPrompt()
}

// plugStick hot-plugs a disk image as a USB stick; unplugStick pulls it.
func (v *vm) plugStick(id, image string) {
	v.t.Helper()
	if out := v.monitor(fmt.Sprintf("drive_add 0 if=none,id=%s,file=%s,format=raw", id, image)); strings.Contains(out, "rror") {
		v.t.Fatalf("drive_add: %s", out)
	}
	if out := v.monitor(fmt.Sprintf("device_add usb-storage,bus=xhci.0,drive=%s,id=dev-%s", id, id)); strings.Contains(out, "rror") {
		v.t.Fatalf("device_add: %s", out)
	}
}

func (v *vm) unplugStick(id string) {
	v.t.Helper()
	if out := v.monitor("device_del dev-" + id); strings.Contains(out, "rror") {
		v.t.Fatalf("device_del: %s", out)
	}
}
