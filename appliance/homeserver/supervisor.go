package homeserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-im/outpost/appliance/atomicfile"
	"github.com/outpost-im/outpost/appliance/redact"
)

// State is where the supervised homeserver is in its life.
type State string

const (
	StateStopped    State = "stopped"    // not started (setup incomplete) or shut down
	StateStarting   State = "starting"   // process started, waiting for its first healthy answer
	StateRunning    State = "running"    // answering requests
	StatePaused     State = "paused"     // SIGSTOPped for maintenance (snapshots)
	StateRestarting State = "restarting" // died or hung; waiting out the backoff
)

// Timings, variables so tests can shorten them.
var (
	startTimeout      = 90 * time.Second // first healthy answer after exec
	stopTimeout       = 20 * time.Second // SIGTERM to SIGKILL
	healthInterval    = 10 * time.Second
	healthTimeout     = 5 * time.Second
	healthFailures    = 3 // consecutive failed checks before a hung process is killed
	backoffMin        = 500 * time.Millisecond
	backoffMax        = 30 * time.Second
	backoffResetAfter = time.Minute // a run this long counts as healthy: backoff starts over
)

// Status is a snapshot of the supervisor's view, for `outpost status`.
type Status struct {
	State     State     `json:"state"`
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Restarts  int       `json:"restarts"`
	LastExit  string    `json:"last_exit,omitempty"`
	Version   string    `json:"version,omitempty"`
}

// Supervisor starts Dendrite, waits for it to answer, restarts it with backoff when it dies
// or hangs, and stops it cleanly.
type Supervisor struct {
	binary string
	config func(context.Context) (Config, error)
	log    *slog.Logger
	client *http.Client

	mu        sync.Mutex
	state     State
	proc      *os.Process
	startedAt time.Time
	restarts  int
	lastExit  string
	version   string
	ready     chan struct{} // closed while state == StateRunning
	paused    bool
	cancel    context.CancelFunc // ends the current run; nil when stopped
	done      chan struct{}      // closed when the current run has returned
}

// NewSupervisor prepares a supervisor for the dendrite binary at binary. config is called
// before every start so a restart always runs the current settings.
func NewSupervisor(binary, socketPath string, config func(context.Context) (Config, error), log *slog.Logger) *Supervisor {
	return &Supervisor{
		binary: binary,
		config: config,
		log:    log,
		client: &http.Client{Transport: SocketTransport(socketPath)},
		state:  StateStopped,
		ready:  make(chan struct{}),
	}
}

// SocketTransport is an HTTP transport that reaches Dendrite's unix socket. Connections are
// kept and reused: a dial per request costs more than the proxying itself.
func SocketTransport(socketPath string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// The gateway passes clients' Accept-Encoding through untouched.
		DisableCompression: true,
	}
}

// Client is an HTTP client for the homeserver's socket (host part of URLs is ignored).
func (s *Supervisor) Client() *http.Client { return s.client }

// Status reports the current state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{State: s.state, Restarts: s.restarts, LastExit: s.lastExit, Version: s.version}
	if s.proc != nil {
		st.PID = s.proc.Pid
		st.StartedAt = s.startedAt
	}
	return st
}

// setState must be called with mu held. It keeps the ready channel in step with the state.
func (s *Supervisor) setState(st State) {
	s.state = st
	select {
	case <-s.ready:
		if st != StateRunning {
			s.ready = make(chan struct{})
		}
	default:
		if st == StateRunning {
			close(s.ready)
		}
	}
}

// WaitReady blocks until the homeserver answers requests or ctx ends. The gateway uses it
// so a request that arrives during a restart or a snapshot pause waits instead of failing.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	s.mu.Lock()
	ch := s.ready
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause freezes the homeserver (SIGSTOP) so its databases and JetStream store can be copied
// as one consistent cut. Requests queue in the gateway meanwhile. Resume must follow.
func (s *Supervisor) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateRunning || s.proc == nil {
		return fmt.Errorf("homeserver: cannot pause while %s", s.state)
	}
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("homeserver: pause: %w", err)
	}
	s.paused = true
	s.setState(StatePaused)
	return nil
}

// Resume continues a paused homeserver.
func (s *Supervisor) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StatePaused || s.proc == nil {
		return fmt.Errorf("homeserver: cannot resume while %s", s.state)
	}
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("homeserver: resume: %w", err)
	}
	s.paused = false
	s.setState(StateRunning)
	return nil
}

// Start launches the homeserver and keeps it running until Stop or until ctx ends. Starting
// a started supervisor does nothing.
func (s *Supervisor) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.cancel, s.done = cancel, done
	// Counters describe this run: a fresh start after a fix must not inherit old failures.
	s.restarts, s.lastExit = 0, ""
	go func() {
		defer close(done)
		s.run(ctx)
	}()
}

// Stop shuts the homeserver down cleanly (SIGTERM, then SIGKILL after a bounded wait) and
// returns once it has exited.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// run keeps the homeserver running until ctx ends, then stops it and returns.
func (s *Supervisor) run(ctx context.Context) {
	s.readVersion(ctx)
	backoff := time.Duration(0)
	for {
		began := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			s.mu.Lock()
			s.setState(StateStopped)
			s.mu.Unlock()
			return
		}
		if time.Since(began) > backoffResetAfter {
			backoff = 0
		}
		switch {
		case backoff == 0:
			backoff = backoffMin
		case backoff < backoffMax:
			backoff = min(backoff*2, backoffMax)
		}
		s.mu.Lock()
		s.restarts++
		s.lastExit = err.Error()
		s.setState(StateRestarting)
		s.mu.Unlock()
		s.log.Error("homeserver stopped; restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.setState(StateStopped)
			s.mu.Unlock()
			return
		case <-time.After(backoff):
		}
	}
}

func (s *Supervisor) readVersion(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.binary, "-version").Output()
	if err != nil {
		s.log.Warn("cannot read dendrite version", "binary", s.binary, "err", err)
		return
	}
	s.mu.Lock()
	s.version = strings.TrimSpace(string(out))
	s.mu.Unlock()
}

// prepare renders the configuration and creates what Dendrite expects to exist.
func (s *Supervisor) prepare(ctx context.Context) (Config, error) {
	cfg, err := s.config(ctx)
	if err != nil {
		return cfg, fmt.Errorf("homeserver: load settings: %w", err)
	}
	for _, d := range []string{cfg.Dir, cfg.DBDir(), cfg.MediaPath(), cfg.JetStreamDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return cfg, fmt.Errorf("homeserver: %w", err)
		}
	}
	yaml, err := Render(cfg)
	if err != nil {
		return cfg, err
	}
	if err := atomicfile.Write(cfg.ConfigPath(), yaml, 0o600); err != nil {
		return cfg, fmt.Errorf("homeserver: write config: %w", err)
	}
	if err := EnsureSigningKey(cfg.KeyPath()); err != nil {
		return cfg, err
	}
	s.killStale(cfg)
	if err := os.Remove(cfg.SocketPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("homeserver: remove stale socket: %w", err)
	}
	return cfg, nil
}

func pidPath(cfg Config) string { return filepath.Join(cfg.Dir, "dendrite.pid") }

// killStale ends a dendrite left behind by an outpostd that died without stopping it (the
// parent-death signal covers most cases; this covers the rest). Two dendrites on one
// JetStream store and one set of databases would corrupt both.
func (s *Supervisor) killStale(cfg Config) {
	b, err := os.ReadFile(pidPath(cfg))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), cfg.ConfigPath()) {
		return // gone, or the pid was reused by something else
	}
	s.log.Warn("ending a homeserver left over from an earlier run", "pid", pid)
	p, _ := os.FindProcess(pid)
	p.Signal(syscall.SIGCONT) //nolint:errcheck // it may have been paused
	p.Signal(syscall.SIGTERM) //nolint:errcheck
	deadline := time.Now().Add(stopTimeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Signal(syscall.SIGKILL) //nolint:errcheck
}

// runOnce starts dendrite and returns when it exits (an error) or ctx ends (after a clean stop).
func (s *Supervisor) runOnce(ctx context.Context) error {
	cfg, err := s.prepare(ctx)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.binary,
		"--config", cfg.ConfigPath(),
		"--unix-socket", cfg.SocketPath(),
		"--unix-socket-permission", "660",
	)
	cmd.Dir = cfg.Dir
	cmd.Env = dendriteEnv(os.Environ(), cfg.Dir)
	// Pdeathsig: if outpostd dies, dendrite is told to shut down instead of living on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	tail := newLogTail(20)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go s.forwardLogs(pr, tail)
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("homeserver: start %s: %w", s.binary, err)
	}
	if err := atomicfile.Write(pidPath(cfg), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		s.log.Warn("cannot record homeserver pid", "err", err)
	}
	s.mu.Lock()
	s.proc = cmd.Process
	s.startedAt = time.Now()
	s.paused = false
	s.setState(StateStarting)
	s.mu.Unlock()
	s.log.Info("homeserver started", "pid", cmd.Process.Pid)

	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	defer func() {
		os.Remove(pidPath(cfg))
		s.mu.Lock()
		s.proc = nil
		s.mu.Unlock()
	}()
	exitErr := func(err error) error {
		if last := tail.last(); last != "" {
			return fmt.Errorf("homeserver exited (%v); last log line: %s", err, last)
		}
		return fmt.Errorf("homeserver exited (%v)", err)
	}

	// Wait for the first healthy answer.
	startDeadline := time.Now().Add(startTimeout)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.healthy(hctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case err := <-exited:
			return exitErr(err)
		case <-ctx.Done():
			return s.stop(cmd, exited)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(startDeadline) {
			s.stop(cmd, exited) //nolint:errcheck
			return fmt.Errorf("homeserver did not answer within %s: %w", startTimeout, err)
		}
	}
	s.mu.Lock()
	s.setState(StateRunning)
	s.mu.Unlock()
	s.log.Info("homeserver ready", "pid", cmd.Process.Pid, "after", time.Since(s.startedAt).Round(time.Millisecond))

	// Watch it: exit, hang, or shutdown.
	ticker := time.NewTicker(healthInterval)
	defer ticker.Stop()
	failures := 0
	for {
		select {
		case err := <-exited:
			return exitErr(err)
		case <-ctx.Done():
			return s.stop(cmd, exited)
		case <-ticker.C:
			s.mu.Lock()
			paused := s.paused
			s.mu.Unlock()
			if paused {
				failures = 0
				continue
			}
			hctx, cancel := context.WithTimeout(ctx, healthTimeout)
			err := s.healthy(hctx)
			cancel()
			if err == nil {
				failures = 0
				continue
			}
			failures++
			s.log.Warn("homeserver health check failed", "err", err, "consecutive", failures)
			if failures >= healthFailures {
				cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
				<-exited
				return fmt.Errorf("homeserver hung: %d health checks failed, killed", failures)
			}
		}
	}
}

// dendriteDefaults is the environment dendrite runs with unless outpostd's own environment
// (an operator's, or a benchmark's) sets the same variable; see docs/benchmarks.md.
//   - GOGC=35 (collect when the heap has grown by a third, not doubled). 50 cut dendrite's
//     peak RSS by ~15% at 2 and 20 busy users with no CPU cost the bench could see; once
//     our Dendrite patches had removed most of its garbage, 35 took another ~5 MB (2 users)
//     to ~10 MB (20 users) for 0-3% of the throughput (docs/benchmarks.md).
//   - DENDRITE_SYNC_MIN_INTERVAL (our Dendrite patch): answer one device's /sync at most
//     every 100 ms. In a busy room everything that arrived meanwhile goes out in one answer
//     instead of one whole incremental sync per event per member: 2.3x the 20-user
//     throughput, with no added latency in a quiet room (a device answered longer ago is
//     not held) and at most 100 ms in a busy one.
//   - DENDRITE_JETSTREAM_BLOCK_SIZE and _CACHE_EXPIRE (our patch to the NATS server inside
//     Dendrite): 256 KiB file-store blocks cached for 1 s instead of 4 MB for 10 s. The
//     streams a message passes through kept ~16 MB of messages in memory under load; this
//     cut dendrite's peak RSS by 28 MB at 20 busy users for ~2% of its throughput.
var dendriteDefaults = []string{
	"GOGC=35",
	"DENDRITE_SYNC_MIN_INTERVAL=100ms",
	"DENDRITE_JETSTREAM_BLOCK_SIZE=262144",
	"DENDRITE_JETSTREAM_CACHE_EXPIRE=1s",
}

// dendriteEnv is the environment dendrite runs with: outpostd's own, HOME in the
// homeserver directory, and dendriteDefaults where the environment sets none.
func dendriteEnv(base []string, dir string) []string {
	env := append(base[:len(base):len(base)], "HOME="+dir)
	for _, kv := range dendriteDefaults {
		key, _, _ := strings.Cut(kv, "=")
		set := false
		for _, e := range base {
			if strings.HasPrefix(e, key+"=") {
				set = true
				break
			}
		}
		if !set {
			env = append(env, kv)
		}
	}
	return env
}

// stop asks dendrite to shut down and kills it if it does not within stopTimeout.
func (s *Supervisor) stop(cmd *exec.Cmd, exited <-chan error) error {
	s.log.Info("stopping homeserver", "pid", cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // a paused process cannot handle SIGTERM
	cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
		s.log.Warn("homeserver ignored SIGTERM; killing", "pid", cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
		<-exited
		return errors.New("homeserver killed after stop timeout")
	}
}

func (s *Supervisor) healthy(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://homeserver/_matrix/client/versions", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("versions: HTTP %d", resp.StatusCode)
	}
	return nil
}

// forwardLogs copies dendrite's output into our log, with credentials redacted.
func (s *Supervisor) forwardLogs(r io.Reader, tail *logTail) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := redact.String(sc.Text())
		tail.add(line)
		level := slog.LevelInfo
		switch {
		case strings.Contains(line, "level=error"), strings.Contains(line, "level=fatal"), strings.Contains(line, "level=panic"):
			level = slog.LevelError
		case strings.Contains(line, "level=warn"):
			level = slog.LevelWarn
		case strings.Contains(line, "level=debug"), strings.Contains(line, "level=trace"):
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "dendrite", "line", line)
	}
	io.Copy(io.Discard, r) //nolint:errcheck // keep the pipe drained after an over-long line
}

// logTail keeps the last lines of dendrite's output to explain a failed start.
type logTail struct {
	mu    sync.Mutex
	lines []string
	n     int
}

func newLogTail(n int) *logTail { return &logTail{n: n} }

func (t *logTail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > t.n {
		t.lines = t.lines[1:]
	}
}

// last returns the most telling recent output: the last few error lines (Dendrite logs the
// cause before its final "failed to start"), else the last line.
func (t *logTail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []string
	for i := len(t.lines) - 1; i >= 0 && len(errs) < 3; i-- {
		l := t.lines[i]
		if strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") || strings.Contains(l, "level=panic") {
			errs = append([]string{l}, errs...)
		}
	}
	if len(errs) > 0 {
		return strings.Join(errs, " | ")
	}
	if len(t.lines) == 0 {
		return ""
	}
	return t.lines[len(t.lines)-1]
}

// Transport reaches the homeserver's socket; the gateway proxies through it.
func (s *Supervisor) Transport() http.RoundTripper { return s.client.Transport }

// StateName is the current state as a word.
func (s *Supervisor) StateName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.state)
}
