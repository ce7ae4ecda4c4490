package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/setup"
)

// Binaries are the programs the benchmark servers run.
type Binaries struct {
	Outpostd string
	Dendrite string
	// GenerateConfig is Dendrite's cmd/generate-config, for the stock server.
	GenerateConfig string
}

// ServerOptions adjust a server started for a benchmark.
type ServerOptions struct {
	// ServerName is the Matrix server name (default bench.local).
	ServerName string
	// Env is added to the server's environment. For Outpost it reaches dendrite too
	// (outpostd passes its environment on), so GOGC or GOMEMLIMIT can be tried here.
	Env []string
	// Pprof makes dendrite serve net/http/pprof on a free 127.0.0.1 port (PPROFLISTEN).
	Pprof bool
}

// Server is a running homeserver under test.
type Server struct {
	Name string
	Dir  string
	// Target reaches it as clients do: Outpost's gateway, or stock Dendrite's HTTP port.
	Target Target
	// Direct (Outpost only) reaches Dendrite's unix socket, bypassing the gateway.
	Direct *Target
	// PprofAddr is dendrite's pprof listener, when ServerOptions.Pprof was set.
	PprofAddr string
	// DBDir holds the SQLite files (for checking the journal mode that took effect).
	DBDir string

	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck
	return hex.EncodeToString(b)
}

func (s *Server) start(name string, args []string, env []string, dir string) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(name, args...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// If the benchmark dies, its servers go with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.exited = make(chan struct{})
	go func() {
		s.cmd.Wait() //nolint:errcheck
		logf.Close()
		close(s.exited)
	}()
	return nil
}

// waitHTTP polls url until it answers 200, the process exits, or the timeout passes.
func (s *Server) waitHTTP(ctx context.Context, hc *http.Client, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited during start; log tail:\n%s", s.Name, s.LogTail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %s (%v); log tail:\n%s", s.Name, url, timeout, err, s.LogTail(30))
		}
	}
}

// LogTail returns the last n lines of the server's output.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop ends the server (SIGTERM, SIGKILL after 40 s) and waits for it.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-s.exited:
		return nil
	case <-time.After(40 * time.Second):
		s.cmd.Process.Kill() //nolint:errcheck
		<-s.exited
		return fmt.Errorf("%s did not stop within 40s of SIGTERM; killed", s.Name)
	}
}

func (o *ServerOptions) env() ([]string, string, error) {
	env := append([]string(nil), o.Env...)
	var pprof string
	if o.Pprof {
		addr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		pprof = addr
		env = append(env, "PPROFLISTEN="+addr)
	}
	return env, pprof, nil
}

// StartOutpost starts outpostd on a fresh data directory under dir, completes setup
// through the admin socket, and waits for the homeserver.
func StartOutpost(ctx context.Context, bins Binaries, dir string, o ServerOptions) (*Server, error) {
	if o.ServerName == "" {
		o.ServerName = "bench.local"
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env, pprof, err := o.env()
	if err != nil {
		return nil, err
	}
	s := &Server{Name: "outpost", Dir: dir, PprofAddr: pprof, logPath: filepath.Join(dir, "outpostd.log")}
	if err := s.start(bins.Outpostd, []string{"-data", data, "-http", addr, "-https", "", "-dendrite", bins.Dendrite}, env, dir); err != nil {
		return nil, fmt.Errorf("start outpostd: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop() //nolint:errcheck
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := s.waitHTTP(ctx, hc, "http://"+addr+"/healthz", 30*time.Second); err != nil {
		return nil, err
	}
	admin := adminapi.NewClient(data)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := admin.Setup(sctx, setup.Request{ServerName: o.ServerName, AdminUser: "benchadmin", AdminPassword: "pw-" + randomSecret()}); err != nil {
		return nil, fmt.Errorf("outpost setup: %w; log tail:\n%s", err, s.LogTail(30))
	}
	var st adminapi.Status
	for {
		st, err = admin.Status(sctx)
		if err != nil {
			return nil, fmt.Errorf("outpost status: %w", err)
		}
		if st.Homeserver.State == homeserver.StateRunning && st.Homeserver.PID > 0 {
			break
		}
		if err := sleep(sctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("homeserver not running after setup (%s); log tail:\n%s", st.Homeserver.State, s.LogTail(30))
		}
	}
	reg := RegistrarFunc(func(ctx context.Context, localpart, password string) error {
		_, err := admin.AddUser(ctx, adminapi.AddUserRequest{Username: localpart, Password: password})
		return err
	})
	procs := []Proc{{Name: "outpostd", PID: s.cmd.Process.Pid}, {Name: "dendrite", PID: st.Homeserver.PID}}
	hs := homeserver.Config{Dir: filepath.Join(data, "homeserver")}
	s.DBDir = hs.DBDir()
	s.Target = Target{Name: "outpost", BaseURL: "http://" + addr, Registrar: reg, Procs: procs}
	s.Direct = &Target{Name: "outpost-direct", Socket: hs.SocketPath(), Registrar: reg, Procs: procs}
	ok = true
	return s, nil
}

// StartStock starts the same dendrite binary under the configuration Dendrite's own
// generate-config writes (SQLite, one file per component, its defaults), changed only
// where a benchmark must: a registration shared secret so accounts can be created.
// It listens on a TCP port on 127.0.0.1, as a hand-installed Dendrite would.
func StartStock(ctx context.Context, bins Binaries, dir string, o ServerOptions) (*Server, error) {
	if o.ServerName == "" {
		o.ServerName = "bench.local"
	}
	if bins.GenerateConfig == "" {
		return nil, errors.New("stock dendrite needs the generate-config binary")
	}
	hsDir := filepath.Join(dir, "stock")
	if err := os.MkdirAll(hsDir, 0o700); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bins.GenerateConfig, "-dir", hsDir, "-server", o.ServerName).Output()
	if err != nil {
		return nil, fmt.Errorf("generate-config: %w", err)
	}
	secret := randomSecret()
	yaml, err := patchStockConfig(string(out), secret)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(hsDir, "dendrite.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	// generate-config names the key matrix_key.pem, relative to the working directory.
	if err := homeserver.EnsureSigningKey(filepath.Join(hsDir, "matrix_key.pem")); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env, pprof, err := o.env()
	if err != nil {
		return nil, err
	}
	s := &Server{Name: "stock", Dir: dir, PprofAddr: pprof, DBDir: hsDir, logPath: filepath.Join(dir, "dendrite.out")}
	if err := s.start(bins.Dendrite, []string{"--config", cfgPath, "--http-bind-address", addr}, env, hsDir); err != nil {
		return nil, fmt.Errorf("start dendrite: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop() //nolint:errcheck
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := s.waitHTTP(ctx, hc, "http://"+addr+"/_matrix/client/versions", 90*time.Second); err != nil {
		return nil, err
	}
	t := Target{Name: "stock", BaseURL: "http://" + addr, Procs: []Proc{{Name: "dendrite", PID: s.cmd.Process.Pid}}}
	t.Registrar = SharedSecretRegistrar(t, secret)
	s.Target = t
	ok = true
	return s, nil
}

// patchStockConfig sets the registration shared secret in generate-config's output. The
// output's layout is stable for the pinned Dendrite; a change makes this fail loudly.
func patchStockConfig(yaml, secret string) (string, error) {
	const line = `registration_shared_secret: ""`
	if strings.Count(yaml, line) != 1 {
		return "", fmt.Errorf("generate-config output has no single %q line to patch", line)
	}
	return strings.Replace(yaml, line, `registration_shared_secret: "`+secret+`"`, 1), nil
}

// JournalModes reads the journal mode each SQLite file in dir is in, from the file header
// (bytes 18 and 19 are 2 in WAL mode, 1 in rollback-journal mode): the configuration
// alone does not prove a pragma took effect.
func JournalModes(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		hdr := make([]byte, 20)
		_, err = io.ReadFull(fh, hdr)
		fh.Close()
		if err != nil {
			out[filepath.Base(f)] = "empty"
			continue
		}
		switch {
		case hdr[18] == 2 && hdr[19] == 2:
			out[filepath.Base(f)] = "wal"
		case hdr[18] == 1 && hdr[19] == 1:
			out[filepath.Base(f)] = "rollback"
		default:
			out[filepath.Base(f)] = fmt.Sprintf("unknown(%d,%d)", hdr[18], hdr[19])
		}
	}
	return out, nil
}
