package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/targettest"
	"github.com/outpost-im/outpost/appliance/testenv"
)

// sshServer is a private sshd on 127.0.0.1 whose sftp sessions start in home.
type sshServer struct {
	port       int
	user       string
	privateKey string            // the client's key, OpenSSH PEM
	hostKeys   map[string]string // key type -> authorized_keys line
	home       string            // the sftp start directory
	pid        int               // the sshd the test started
}

func (s *sshServer) config(dir string) target.Config {
	return target.Config{Name: "offsite", Kind: target.KindSFTP, Host: "127.0.0.1", Port: s.port,
		User: s.user, PrivateKey: s.privateKey, HostKey: s.hostKeys["ssh-ed25519"], Dir: dir}
}

// startSSHD runs Debian's sshd in the foreground with a private config, host keys and
// authorized_keys in a temporary directory, and stops it (by PID) when the test ends.
func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	sshd := testenv.Tool(t, "sshd", "openssh-server")
	keygen := testenv.Tool(t, "ssh-keygen", "openssh-client")
	if os.Geteuid() != 0 {
		t.Skip("sshd needs root for privilege separation (tests run as root in CI)")
	}
	// The privilege-separation directory Debian's init scripts would create.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	s := &sshServer{port: targettest.FreePort(t), user: u.Username, hostKeys: map[string]string{},
		home: filepath.Join(base, "home")}
	if err := os.Mkdir(s.home, 0o755); err != nil {
		t.Fatal(err)
	}

	var hostKeyLines []string
	for _, kt := range []string{"ed25519", "ecdsa", "rsa"} {
		p := filepath.Join(base, "ssh_host_"+kt+"_key")
		if out, err := exec.Command(keygen, "-q", "-t", kt, "-N", "", "-C", "", "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -t %s: %v\n%s", kt, err, out)
		}
		pub, err := os.ReadFile(p + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		s.hostKeys[k.Type()] = strings.TrimSpace(string(pub))
		hostKeyLines = append(hostKeyLines, "HostKey "+p)
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	s.privateKey = string(pem.EncodeToMemory(block))
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	authKeys := filepath.Join(base, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}

	conf := filepath.Join(base, "sshd_config")
	text := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
%s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AllowUsers %s
LogLevel VERBOSE
Subsystem sftp internal-sftp -d %s
`, s.port, strings.Join(hostKeyLines, "\n"), filepath.Join(base, "sshd.pid"), authKeys, s.user, s.home)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	logf, err := os.Create(filepath.Join(base, "sshd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so the per-connection children can be ended with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		targettest.Stop(t, cmd.Process.Pid, exited)
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("sshd log:\n%s", out)
		}
	})
	targettest.WaitListening(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), exited, targettest.FileOutput(logf.Name()))
	return s
}

func open(t *testing.T, c target.Config) *Target {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tgt, err := Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tgt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tgt
}

func otherKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestSSHD(t *testing.T) {
	s := startSSHD(t)
	ctx := context.Background()

	t.Run("Contract", func(t *testing.T) {
		tgt := open(t, s.config("outpost/box-1"))
		targettest.Run(t, tgt)
		// A real snapshot, verified and restored, through this target.
		targettest.Snapshot(t, tgt)
	})

	t.Run("RelativeDirIsUnderTheLoginDir", func(t *testing.T) {
		tgt := open(t, s.config("rel/dir"))
		if err := tgt.Put(ctx, "a/b.txt", strings.NewReader("one")); err != nil {
			t.Fatal(err)
		}
		if err := tgt.Put(ctx, "a/b.txt", strings.NewReader("two")); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.home, "rel", "dir", "a", "b.txt")
		if b, err := os.ReadFile(p); err != nil || string(b) != "two" {
			t.Fatalf("%s = %q, %v", p, b, err)
		}
		entries, err := os.ReadDir(filepath.Dir(p))
		if err != nil || len(entries) != 1 {
			t.Fatalf("directory holds %v, %v; want only b.txt (no temporary left)", entries, err)
		}
	})

	t.Run("AbsoluteDir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "abs", "outpost")
		tgt := open(t, s.config(dir))
		if err := tgt.Put(ctx, "x", strings.NewReader("abs")); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "x")); err != nil || string(b) != "abs" {
			t.Fatalf("file = %q, %v", b, err)
		}
	})

	t.Run("LoginDir", func(t *testing.T) {
		tgt := open(t, s.config(""))
		if err := tgt.Put(ctx, "at-login-dir", strings.NewReader("home")); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(s.home, "at-login-dir")); err != nil || string(b) != "home" {
			t.Fatalf("file = %q, %v", b, err)
		}
	})

	t.Run("FetchHostKey", func(t *testing.T) {
		key, fp, err := FetchHostKey(ctx, "127.0.0.1", s.port)
		if err != nil {
			t.Fatal(err)
		}
		if key != s.hostKeys["ssh-ed25519"] {
			t.Fatalf("FetchHostKey = %q, want the server's ed25519 key %q", key, s.hostKeys["ssh-ed25519"])
		}
		k, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(key))
		if want := ssh.FingerprintSHA256(k); fp != want || !strings.HasPrefix(fp, "SHA256:") {
			t.Fatalf("fingerprint %q, want %q", fp, want)
		}
		// What was fetched is what Open accepts.
		c := s.config("fetched")
		c.HostKey = key
		open(t, c)
	})

	t.Run("EveryHostKeyTypePins", func(t *testing.T) {
		// A server with several host keys must present the pinned one, whatever the
		// client would prefer by default.
		for typ, key := range s.hostKeys {
			c := s.config("keytype")
			c.HostKey = key
			tgt, err := Open(ctx, c)
			if err != nil {
				t.Fatalf("pinned %s: %v", typ, err)
			}
			tgt.Close()
		}
	})

	t.Run("WrongHostKey", func(t *testing.T) {
		c := s.config("never")
		c.HostKey = otherKey(t)
		start := time.Now()
		_, err := Open(ctx, c)
		if err == nil {
			t.Fatal("Open with a wrong pinned host key succeeded")
		}
		t.Log(err)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
		var mismatch *HostKeyMismatchError
		if !errors.As(err, &mismatch) {
			t.Fatalf("error %T is not a HostKeyMismatchError", err)
		}
		want, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(c.HostKey))
		got, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(s.hostKeys["ssh-ed25519"]))
		for _, s := range []string{ssh.FingerprintSHA256(want), ssh.FingerprintSHA256(got), "accept the new key"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error does not contain %q", s)
			}
		}
		if _, err := os.Stat(filepath.Join(s.home, "never")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the directory was created on a server with the wrong key: %v", err)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		c := s.config("")
		c.PrivateKey = ""
		c.Password = "not-the-password-" + strconv.Itoa(os.Getpid())
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := Open(cctx, c)
		if err == nil {
			t.Fatal("Open with a wrong password succeeded")
		}
		t.Log(err)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v to fail", d)
		}
		if !strings.Contains(err.Error(), "refused the login") || strings.Contains(err.Error(), c.Password) {
			t.Errorf("error %q does not say the login was refused, or shows the password", err)
		}
	})

	t.Run("UnknownKey", func(t *testing.T) {
		c := s.config("")
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		c.PrivateKey = string(pem.EncodeToMemory(block))
		if _, err := Open(ctx, c); err == nil || !strings.Contains(err.Error(), "refused the login") {
			t.Fatalf("Open with a key the server does not know: %v", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		start := time.Now()
		if _, err := Open(cctx, s.config("")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Open with a cancelled context: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("CancelDuringPut", func(t *testing.T) {
		tgt := open(t, s.config("cancel"))
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		r := io.MultiReader(bytes.NewReader(make([]byte, 2<<20)), cancelReader{cancel}, bytes.NewReader(make([]byte, 2<<20)))
		if err := tgt.Put(cctx, "big", r); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put cancelled half way: %v", err)
		}
		if _, err := tgt.Stat(ctx, "big"); !errors.Is(err, target.ErrNotExist) {
			t.Fatalf("cancelled Put left a visible file: %v", err)
		}
		left, err := tgt.List(ctx, "")
		if err != nil || len(left) != 0 {
			t.Fatalf("left after a cancelled Put: %v, %v", left, err)
		}
		// A cancel that the copy noticed by itself keeps the connection.
		if err := target.Probe(ctx, tgt); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CancelWhileServerHangs", func(t *testing.T) {
		tgt := open(t, s.config("hang"))
		if err := tgt.Put(ctx, "f", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		// Freeze the server (sshd's own children only; sshd puts each connection in a
		// session of its own, so signal them by PID).
		frozen := descendants(t, s.pid)
		for _, pid := range frozen {
			syscall.Kill(pid, syscall.SIGSTOP)
		}
		defer func() {
			for _, pid := range frozen {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		}()
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		statErr := make(chan error, 1)
		go func() {
			_, err := tgt.Stat(cctx, "f")
			statErr <- err
		}()
		var err error
		select {
		case err = <-statErr:
		case <-time.After(300*time.Millisecond + cancelGrace + 5*time.Second):
			t.Fatal("Stat on a frozen server did not return after its context ended")
		}
		if err == nil {
			t.Fatal("Stat on a frozen server succeeded")
		}
		t.Logf("after %v: %v", time.Since(start), err)
		if _, err := tgt.Stat(ctx, "f"); err == nil || !strings.Contains(err.Error(), "was cancelled") {
			t.Fatalf("Stat after the connection was closed under a cancel: %v", err)
		}
	})

	t.Run("TruncatedSource", func(t *testing.T) {
		// pkg/sftp's ReadFrom would take io.ErrUnexpectedEOF for the end of the file.
		tgt := open(t, s.config("truncated"))
		r := io.MultiReader(bytes.NewReader(make([]byte, 100<<10)), errReader{io.ErrUnexpectedEOF})
		if err := tgt.Put(ctx, "short", r); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Put from a truncated source: %v", err)
		}
		if _, err := tgt.Stat(ctx, "short"); !errors.Is(err, target.ErrNotExist) {
			t.Fatalf("a truncated source left a file: %v", err)
		}
	})
}

// descendants lists the processes below pid (the server the test started), from /proc.
func descendants(t *testing.T, pid int) []int {
	t.Helper()
	parent := map[int]int{}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	var walk func(int)
	walk = func(pp int) {
		for p, ppid := range parent {
			if ppid == pp {
				out = append(out, p)
				walk(p)
			}
		}
	}
	walk(pid)
	if len(out) == 0 {
		t.Fatalf("sshd %d has no connection processes", pid)
	}
	return out
}

type cancelReader struct{ cancel context.CancelFunc }

func (c cancelReader) Read([]byte) (int, error) { c.cancel(); return 0, io.EOF }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestClosedPort(t *testing.T) {
	c := target.Config{Host: "127.0.0.1", Port: targettest.FreePort(t), User: "u", Password: "p", HostKey: otherKey(t)}
	start := time.Now()
	_, err := Open(context.Background(), c)
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	t.Log(err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to fail", d)
	}
	if _, _, err := FetchHostKey(context.Background(), "127.0.0.1", c.Port); err == nil {
		t.Fatal("FetchHostKey of a closed port succeeded")
	}
}

// A server that accepts and never speaks: only the context ends the handshake.
func TestSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	c := target.Config{Host: "127.0.0.1", Port: port, User: "u", Password: "p", HostKey: otherKey(t)}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Open(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open against a silent server: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, _, err := FetchHostKey(ctx2, "127.0.0.1", port); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FetchHostKey against a silent server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to give up", d)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	good := target.Config{Host: "127.0.0.1", User: "u", Password: "p", HostKey: otherKey(t)}

	c := good
	c.HostKey = "not a key"
	if _, err := Open(ctx, c); err == nil || !strings.Contains(err.Error(), "pinned host key") {
		t.Errorf("bad host key: %v", err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	c = good
	c.PrivateKey = string(pem.EncodeToMemory(block))
	if _, err := Open(ctx, c); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("encrypted key: %v", err)
	}

	c = good
	c.PrivateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n"
	if _, err := Open(ctx, c); err == nil || strings.Contains(err.Error(), "garbage") {
		t.Errorf("garbage key: %v", err)
	}

	c = good
	c.Dir = "../up"
	if _, err := Open(ctx, c); err == nil {
		t.Error("dir ../up accepted")
	}
}
