package netcfg

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process supervises a helper program that runs only in some modes (the DHCP client): Start
// keeps it running, restarting it after a crash with a growing pause; Stop ends it and
// waits. Its output goes to the log line by line.
type Process struct {
	Path string
	Args []string
	Log  *slog.Logger

	mu      sync.Mutex
	running bool
	closed  bool // Close was called: Start does nothing any more
	stop    chan struct{}
	done    chan struct{} // closed when the last Start's loop has ended
	cmd     *exec.Cmd
}

// Running reports whether Start was called and Stop was not.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Start runs the program until Stop; calling it again while running does nothing.
func (p *Process) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.closed {
		return
	}
	p.running = true
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.loop(p.stop, p.done)
}

func (p *Process) loop(stop, done chan struct{}) {
	defer close(done)
	pause := time.Second
	for {
		cmd := exec.Command(p.Path, p.Args...)
		// If outpostd dies, the helper dies with it (Pdeathsig), and it has its own process
		// group: gokrazy restarts a service only after every process in the service's
		// group has exited, so a DHCP client left in outpostd's group would keep outpostd
		// down for good after a crash.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		// Not outpostd's working directory: gokrazy starts services in their home under
		// /perm, and a helper still running there when gokrazy unmounts /perm at power-off
		// (Pdeathsig is asynchronous) makes the unmount fail and leaves the journal dirty.
		cmd.Dir = "/"
		out, _ := cmd.StderrPipe()
		cmd.Stdout = cmd.Stderr
		started := time.Now()
		p.mu.Lock()
		select {
		case <-stop: // Stop came first
			p.mu.Unlock()
			return
		default:
		}
		err := cmd.Start()
		if err == nil {
			p.cmd = cmd // under the lock, so Stop either sees it or stops the loop above
		}
		p.mu.Unlock()
		if err == nil {
			go p.forward(out)
			err = cmd.Wait()
			p.mu.Lock()
			p.cmd = nil
			p.mu.Unlock()
		}
		select {
		case <-stop:
			return
		default:
		}
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 125 {
			p.Log.Info("helper finished", "path", p.Path)
			return // gokrazy's convention for "done, do not restart"
		}
		if time.Since(started) > time.Minute {
			pause = time.Second
		}
		p.Log.Warn("helper exited; restarting", "path", p.Path, "err", err, "in", pause)
		select {
		case <-stop:
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

func (p *Process) forward(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.Log.Info(sc.Text())
	}
}

// Close stops the program for good: a later Start (a network trial rolling back to DHCP
// while outpostd shuts down) does nothing.
func (p *Process) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return p.Stop(ctx)
}

// Stop ends the program (SIGTERM, then SIGKILL after 5 s) and waits until it has exited,
// also when another Stop is already under way or timed out.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.running = false
		close(p.stop)
	}
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if done == nil {
		return nil // never started
	}
	select {
	case <-done:
		return nil
	default:
	}
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have just exited
	}
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Kill() //nolint:errcheck
	}
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("netcfg: %s did not exit", p.Path)
	}
}
