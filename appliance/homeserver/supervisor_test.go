package homeserver

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/testenv"
)

// dendriteBinary is the real dendrite (see testenv).
func dendriteBinary(t *testing.T) string { return testenv.DendriteBinary(t) }

// The dendrite under test is our build: the pinned modules with firmware/dendrite/patches
// applied through replace directives (make dendrite), not the stock modules, which ignore
// the pool settings, the statement cache option Render writes and the JetStream file
// store settings in dendriteDefaults.
func TestDendriteIsPatchedBuild(t *testing.T) {
	bin := dendriteBinary(t)
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	// Built from firmware/dendrite, Dendrite is the binary's main module.
	mods := map[string]*debug.Module{}
	for _, m := range append([]*debug.Module{&info.Main}, info.Deps...) {
		mods[m.Path] = m
	}
	for _, path := range []string{"github.com/element-hq/dendrite", "modernc.org/sqlite", "github.com/nats-io/nats-server/v2"} {
		m := mods[path]
		if m == nil {
			t.Fatalf("%s: no %s module in its build info", bin, path)
		}
		if m.Replace == nil || !strings.Contains(m.Replace.Path, "/patched-") {
			msg := fmt.Sprintf("%s has the stock module %s %s, not our patched copy (make dendrite)", bin, path, m.Version)
			if os.Getenv("OUTPOST_REQUIRE_DENDRITE") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

func newTestSupervisor(t *testing.T) (*Supervisor, Config) {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "hs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := Config{Dir: filepath.Join(dir, "hs"), ServerName: "sup.test", RegistrationSharedSecret: "secret"}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := NewSupervisor(dendriteBinary(t), cfg.SocketPath(), func(context.Context) (Config, error) { return cfg, nil }, log)
	t.Cleanup(s.Stop)
	return s, cfg
}

func waitState(t *testing.T, s *Supervisor, want State, timeout time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := s.Status()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s after %s, want %s (last exit %q)", st.State, timeout, want, st.LastExit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestSupervisorPauseResumeStop(t *testing.T) {
	s, cfg := newTestSupervisor(t)
	ctx := context.Background()
	s.Start(ctx)
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if st.Version != "0.15.2" || st.PID == 0 {
		t.Fatalf("status %+v", st)
	}
	if fi, err := os.Stat(cfg.SocketPath()); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi, err)
	}

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if got := s.Status().State; got != StatePaused {
		t.Fatalf("state %s after Pause", got)
	}
	// While paused, requests wait rather than fail...
	waited := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		waited <- s.WaitReady(c)
	}()
	select {
	case err := <-waited:
		t.Fatalf("WaitReady returned during a pause: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// ...and the process really is stopped: it does not answer.
	hctx, hcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := s.healthy(hctx); err == nil {
		t.Fatal("a paused homeserver answered")
	}
	hcancel()
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("WaitReady after Resume: %v", err)
	}
	if err := s.healthy(ctx); err != nil {
		t.Fatalf("not healthy after Resume: %v", err)
	}

	// Stop while paused still ends the process cleanly.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	pid := s.Status().PID
	s.Stop()
	if alive(pid) {
		t.Fatalf("pid %d alive after Stop", pid)
	}
	if st := s.Status(); st.State != StateStopped || st.Restarts != 0 {
		t.Fatalf("after Stop: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "dendrite.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left behind: %v", err)
	}
}

// A homeserver that stops answering (here: frozen from outside) is killed and restarted.
func TestSupervisorRestartsHungHomeserver(t *testing.T) {
	defer func(i, to time.Duration, f int) { healthInterval, healthTimeout, healthFailures = i, to, f }(healthInterval, healthTimeout, healthFailures)
	healthInterval, healthTimeout, healthFailures = 200*time.Millisecond, 200*time.Millisecond, 2

	s, _ := newTestSupervisor(t)
	s.Start(context.Background())
	first := waitState(t, s, StateRunning, 60*time.Second)
	if err := syscall.Kill(first.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := s.Status()
		if st.State == StateRunning && st.PID != first.PID {
			if st.Restarts != 1 {
				t.Fatalf("restarts = %d", st.Restarts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hung homeserver not replaced: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if alive(first.PID) {
		t.Fatalf("hung pid %d still alive", first.PID)
	}
}

// A config dendrite refuses makes it exit at once; the supervisor reports why and keeps
// retrying with growing backoff instead of spinning.
func TestSupervisorReportsStartFailure(t *testing.T) {
	dir, _ := os.MkdirTemp("", "hs")
	defer os.RemoveAll(dir)
	cfg := Config{Dir: filepath.Join(dir, "hs"), ServerName: "bad.test", RegistrationSharedSecret: "s", MaxUploadBytes: -5}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4}))
	s := NewSupervisor(dendriteBinary(t), cfg.SocketPath(), func(context.Context) (Config, error) { return cfg, nil }, log)
	defer s.Stop()
	s.Start(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for s.Status().Restarts < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no restarts: %+v", s.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := s.Status()
	if st.State == StateRunning || st.LastExit == "" {
		t.Fatalf("status %+v", st)
	}
	t.Logf("last exit: %s", st.LastExit)
}
