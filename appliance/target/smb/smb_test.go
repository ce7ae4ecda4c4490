package smb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/targettest"
	"github.com/outpost-im/outpost/appliance/testenv"
)

// samba is a private smbd serving one share on 127.0.0.1.
type samba struct {
	port     int
	user     string
	password string
	share    string // share name
	dir      string // the share's directory on disk
	pid      int    // the smbd the test started
}

func (s *samba) config(dir string) target.Config {
	return target.Config{Name: "nas", Kind: target.KindSMB, Host: "127.0.0.1", Port: s.port,
		User: s.user, Password: s.password, Share: s.share, Dir: dir}
}

// startSamba runs Debian's smbd in the foreground with every file it touches inside a
// temporary directory, and stops it (by PID) when the test ends.
func startSamba(t *testing.T) *samba {
	t.Helper()
	smbd := testenv.Tool(t, "smbd", "samba")
	smbpasswd := testenv.Tool(t, "smbpasswd", "samba-common-bin")
	if os.Geteuid() != 0 {
		// smbd switches to the logged-in user for file access, which only root can do.
		t.Skip("smbd needs root to serve a share (tests run as root in CI)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	for _, d := range []string{"state", "lock", "cache", "private", "pid", "log", "ncalrpc", "share"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := &samba{port: targettest.FreePort(t), user: u.Username, password: "pw-" + randHex(t), share: "backup",
		dir: filepath.Join(base, "share")}
	conf := filepath.Join(base, "smb.conf")
	d := func(name string) string { return filepath.Join(base, name) }
	text := fmt.Sprintf(`[global]
	server role = standalone server
	smb ports = %d
	interfaces = 127.0.0.1
	bind interfaces only = yes
	disable netbios = yes
	state directory = %s
	lock directory = %s
	cache directory = %s
	private dir = %s
	binddns dir = %s
	pid directory = %s
	ncalrpc dir = %s
	log file = %s
	passdb backend = tdbsam:%s
	map to guest = never
	load printers = no
	printcap name = /dev/null
	disable spoolss = yes
	usershare path =
[%s]
	path = %s
	read only = no
	valid users = %s
`, s.port, d("state"), d("lock"), d("cache"), d("private"), d("private"), d("pid"), d("ncalrpc"),
		d("log/smbd.log"), d("private/passdb.tdb"), s.share, s.dir, s.user)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	add := exec.CommandContext(ctx, smbpasswd, "-c", conf, "-a", "-s", s.user)
	add.Stdin = strings.NewReader(s.password + "\n" + s.password + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("smbpasswd: %v\n%s", err, out)
	}

	logf, err := os.Create(filepath.Join(base, "smbd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(smbd, "--foreground", "--no-process-group", "--debug-stdout", "--debuglevel=1", "--configfile="+conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so the per-connection children can be ended with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() { targettest.Stop(t, cmd.Process.Pid, exited) })
	targettest.WaitListening(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), exited, targettest.FileOutput(logf.Name()))
	return s
}

func randHex(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
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

func TestSamba(t *testing.T) {
	s := startSamba(t)

	t.Run("Contract", func(t *testing.T) {
		tgt := open(t, s.config("outpost/box-1"))
		targettest.Run(t, tgt)
		// A real snapshot, verified and restored, through this target.
		targettest.Snapshot(t, tgt)
	})

	t.Run("ShareRoot", func(t *testing.T) {
		tgt := open(t, s.config(""))
		ctx := context.Background()
		if err := tgt.Put(ctx, "root-check/x.txt", strings.NewReader("at the root")); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(s.dir, "root-check", "x.txt")); err != nil || string(b) != "at the root" {
			t.Fatalf("file on the server = %q, %v", b, err)
		}
		infos, err := tgt.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, fi := range infos {
			found = found || fi.Name == "root-check/x.txt" && fi.Size == int64(len("at the root"))
		}
		if !found {
			t.Fatalf("List(\"\") at the share root = %+v", infos)
		}
	})

	t.Run("FilesLandInDir", func(t *testing.T) {
		tgt := open(t, s.config("/nested/dir/"))
		ctx := context.Background()
		if err := tgt.Put(ctx, "a/b.txt", strings.NewReader("one")); err != nil {
			t.Fatal(err)
		}
		if err := tgt.Put(ctx, "a/b.txt", strings.NewReader("two")); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.dir, "nested", "dir", "a", "b.txt")
		if b, err := os.ReadFile(p); err != nil || string(b) != "two" {
			t.Fatalf("%s = %q, %v", p, b, err)
		}
		entries, err := os.ReadDir(filepath.Dir(p))
		if err != nil || len(entries) != 1 {
			t.Fatalf("directory holds %v, %v; want only b.txt (no temporary left)", entries, err)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		c := s.config("")
		c.Password = "not-the-password-" + randHex(t)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := Open(ctx, c)
		if err == nil {
			t.Fatal("Open with a wrong password succeeded")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v to fail", d)
		}
		t.Log(err)
		msg := err.Error()
		if !strings.Contains(msg, "refused the login") || !strings.Contains(msg, s.user) {
			t.Errorf("error %q does not say the login was refused", msg)
		}
		if strings.Contains(msg, c.Password) {
			t.Errorf("error %q contains the password", msg)
		}
	})

	t.Run("UnknownUser", func(t *testing.T) {
		c := s.config("")
		c.User = "nobody-" + randHex(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := Open(ctx, c); err == nil || !strings.Contains(err.Error(), "refused the login") {
			t.Fatalf("Open with an unknown user: %v", err)
		}
	})

	t.Run("MissingShare", func(t *testing.T) {
		c := s.config("")
		c.Share = "no-such-share"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := Open(ctx, c); err == nil || !strings.Contains(err.Error(), `no share named "no-such-share"`) {
			t.Fatalf("Open of a missing share: %v", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		if _, err := Open(ctx, s.config("")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Open with a cancelled context: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("CancelWhileServerHangs", func(t *testing.T) {
		tgt := open(t, s.config("hang"))
		if err := tgt.Put(context.Background(), "f", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		frozen := descendants(t, s.pid)
		for _, pid := range frozen {
			syscall.Kill(pid, syscall.SIGSTOP)
		}
		thaw := func() {
			for _, pid := range frozen {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		defer thaw()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		statErr := make(chan error, 1)
		go func() {
			_, err := tgt.Stat(ctx, "f")
			statErr <- err
		}()
		select {
		case err := <-statErr:
			t.Logf("after %v: %v", time.Since(start), err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Stat on a frozen server: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Stat on a frozen server did not return after its context ended")
		}
		// A Put stops too, within cancelGrace of its context ending.
		pctx, pcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer pcancel()
		start = time.Now()
		putErr := make(chan error, 1)
		go func() { putErr <- tgt.Put(pctx, "g", bytes.NewReader(make([]byte, 1<<20))) }()
		select {
		case err := <-putErr:
			t.Logf("after %v: %v", time.Since(start), err)
			if err == nil {
				t.Fatal("Put on a frozen server succeeded")
			}
		case <-time.After(300*time.Millisecond + cancelGrace + cleanupTimeout + 5*time.Second):
			t.Fatal("Put on a frozen server did not return after its context ended")
		}
		thaw()
		// The abandoned requests do not break the session.
		if _, err := tgt.Stat(context.Background(), "f"); err != nil {
			t.Fatalf("Stat after the server woke up: %v", err)
		}
	})

	t.Run("CancelDuringPut", func(t *testing.T) {
		tgt := open(t, s.config("cancel"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// More than one write buffer before the cancel, so some data is on the server.
		r := io.MultiReader(bytes.NewReader(make([]byte, writeBuffer+1<<20)), cancelReader{cancel}, bytes.NewReader(make([]byte, 2<<20)))
		if err := tgt.Put(ctx, "big", r); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put cancelled half way: %v", err)
		}
		if _, err := tgt.Stat(context.Background(), "big"); !errors.Is(err, target.ErrNotExist) {
			t.Fatalf("cancelled Put left a visible file: %v", err)
		}
		left, err := tgt.List(context.Background(), "")
		if err != nil || len(left) != 0 {
			t.Fatalf("left after a cancelled Put: %v, %v", left, err)
		}
		// The target stays usable after a cancelled operation.
		if err := target.Probe(context.Background(), tgt); err != nil {
			t.Fatal(err)
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
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		for p, ppid := range parent {
			if ppid == out[i] {
				out = append(out, p)
			}
		}
	}
	return out
}

// cancelReader cancels the Put's context when the copy reaches it.
type cancelReader struct{ cancel context.CancelFunc }

func (c cancelReader) Read([]byte) (int, error) { c.cancel(); return 0, io.EOF }

func TestClosedPort(t *testing.T) {
	c := target.Config{Name: "nas", Kind: target.KindSMB, Host: "127.0.0.1", Port: targettest.FreePort(t),
		User: "u", Password: "p", Share: "s"}
	start := time.Now()
	_, err := Open(context.Background(), c)
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	t.Log(err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to fail", d)
	}
	if !strings.Contains(err.Error(), "smb: connect to 127.0.0.1:") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestSilentServer(t *testing.T) {
	// A listener that accepts and never answers: only the context can end the handshake.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := target.Config{Name: "nas", Kind: target.KindSMB, Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port,
		User: "u", Password: "p", Share: "s"}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Open(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open against a silent server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to give up", d)
	}
}

func TestBadNames(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, target.Config{Host: "127.0.0.1", Share: "s", Dir: "../up"}); err == nil {
		t.Fatal("Open with dir ../up succeeded")
	}
}
