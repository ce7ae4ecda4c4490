// Package sftp is a target on an SSH server (github.com/pkg/sftp over
// golang.org/x/crypto/ssh).
//
// The server's host key is pinned: the admin accepts it once when adding the target (see
// FetchHostKey), and a server that later presents another key is refused with both
// fingerprints, because a snapshot sent to an impostor is the box's whole history handed
// over (encrypted, but still).
//
// Put writes a temporary file, fsyncs it (fsync@openssh.com) and renames it over the final
// name with posix-rename@openssh.com, so a reader sees the old or the new file, never half
// of one. Plain SFTPv3 rename refuses to replace an existing file, so it is only the
// fallback for servers without the extension.
//
// pkg/sftp does not take a context for most requests. A cancelled context stops a copy at
// the next buffer; an operation still blocked on the server cancelGrace after the cancel
// has its connection closed, which ends it and leaves the Target unusable (Close it and
// Open again).
package sftp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/outpost-im/outpost/appliance/target"
)

// DefaultPort is the SSH port used when the config leaves Port at 0.
const DefaultPort = 22

// connectTimeout bounds dialling, the handshake and starting the SFTP subsystem when the
// caller's context has no deadline: a host that accepts TCP but never answers must not
// hang the "add target" form or a scheduled snapshot.
const connectTimeout = 30 * time.Second

// cancelGrace is how long an operation may keep running after its context is done before
// the connection is closed under it (see the package comment).
const cancelGrace = 2 * time.Second

// cleanupTimeout bounds removing a temporary file after a failed Put.
const cleanupTimeout = 10 * time.Second

// writeBuffer is the size of the writes handed to pkg/sftp. With concurrent writes on, it
// splits each into 32 KiB packets that are in flight together, so a large buffer keeps a
// high-latency link busy instead of waiting a round trip per packet.
const writeBuffer = 1 << 20

// readBuffer is the size of the reads Get's reader asks pkg/sftp for; see reader.
const readBuffer = 1 << 20

const (
	extPosixRename = "posix-rename@openssh.com"
)

// HostKeyMismatchError is returned by Open when the server presents a host key other than
// the pinned one.
type HostKeyMismatchError struct {
	Addr      string
	Want, Got ssh.PublicKey
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("sftp: %s presented host key %s (%s), but this target is pinned to %s (%s). "+
		"If the server was reinstalled or its key was changed on purpose, compare the new fingerprint "+
		"with the one on the server (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and then accept the new key "+
		"for this target; otherwise do not: something may be intercepting the connection",
		e.Addr, ssh.FingerprintSHA256(e.Got), e.Got.Type(), ssh.FingerprintSHA256(e.Want), e.Want.Type())
}

// Target is a directory on an SFTP server.
type Target struct {
	addr   string
	ssh    *ssh.Client
	client *pkgsftp.Client
	root   string // c.Dir: "" (the login directory), relative to it, or absolute

	mu      sync.Mutex
	aborted error // why the connection was closed under a cancelled operation
}

var _ target.Target = (*Target)(nil)

// Open connects to the server c describes, checks its host key against c.HostKey, logs in
// and creates c.Dir if it is missing.
func Open(ctx context.Context, c target.Config) (*Target, error) {
	if c.Host == "" || c.User == "" {
		return nil, errors.New("sftp: host and user are required")
	}
	if strings.TrimSpace(c.HostKey) == "" {
		return nil, errors.New("sftp: no pinned host key: fetch the server's key and accept its fingerprint first")
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.HostKey))
	if err != nil {
		return nil, fmt.Errorf("sftp: the pinned host key is not one authorized_keys line (ssh-ed25519 AAAA...): %w", err)
	}
	auth, err := authMethods(c)
	if err != nil {
		return nil, err
	}
	root := c.Dir
	if root != "" {
		abs := strings.HasPrefix(root, "/")
		rel := strings.Trim(root, "/")
		if err := target.CheckName(rel); err != nil {
			return nil, fmt.Errorf("sftp: dir: %w", err)
		}
		root = rel
		if abs {
			root = "/" + rel
		}
	}
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(port))

	cfg := &ssh.ClientConfig{
		User: c.User,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return nil
			}
			return &HostKeyMismatchError{Addr: addr, Want: pinned, Got: key}
		},
		// Ask for the pinned key's type: a server with several host keys would otherwise
		// present whichever the client prefers, and a correct server would look like an
		// impostor.
		HostKeyAlgorithms: hostKeyAlgorithms(pinned.Type()),
	}
	var t *Target
	_, err = connect(ctx, addr, cfg, func(sc *ssh.Client) error {
		client, err := pkgsftp.NewClient(sc, pkgsftp.UseConcurrentWrites(true))
		if err != nil {
			return fmt.Errorf("sftp: start the sftp subsystem on %s: %w", addr, err)
		}
		if root != "" {
			if err := client.MkdirAll(root); err != nil {
				client.Close()
				return fmt.Errorf("sftp: create directory %q on %s: %w", root, addr, err)
			}
		}
		t = &Target{addr: addr, ssh: sc, client: client, root: root}
		return nil
	})
	if err != nil {
		var mismatch *HostKeyMismatchError
		if errors.As(err, &mismatch) {
			return nil, mismatch
		}
		if strings.Contains(err.Error(), "ssh: unable to authenticate") {
			hint := "the password is wrong or the account may not log in with a password: check the user name and the password"
			if c.PrivateKey != "" {
				hint = "check the user name, and that the key's public half is in the account's ~/.ssh/authorized_keys"
			}
			return nil, fmt.Errorf("sftp: %s refused the login of user %q: %s", addr, c.User, hint)
		}
		return nil, err
	}
	return t, nil
}

// connect dials addr and runs the SSH handshake, then setup on the new client, all of it
// given up when ctx ends (or after connectTimeout if ctx has no deadline): the socket is
// closed under whatever step is blocked.
func connect(ctx context.Context, addr string, cfg *ssh.ClientConfig, setup func(*ssh.Client) error) (*ssh.Client, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sftp: connect to %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*ssh.Client, error) {
		stop()
		conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("sftp: connect to %s: %w", addr, cerr)
		}
		return nil, err
	}
	sconn, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		return fail(fmt.Errorf("sftp: connect to %s: %w", addr, err))
	}
	client := ssh.NewClient(sconn, chans, reqs)
	if setup != nil {
		if err := setup(client); err != nil {
			client.Close()
			return fail(err)
		}
	}
	if !stop() {
		// ctx ended after the last step: the socket is already closed.
		client.Close()
		return fail(ctx.Err())
	}
	return client, nil
}

// authMethods turns the configured secrets into SSH auth methods, the key first. A password
// is also offered as keyboard-interactive, which is all many PAM-based servers accept.
func authMethods(c target.Config) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if c.PrivateKey != "" {
		signer, err := ssh.ParsePrivateKey([]byte(c.PrivateKey))
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, errors.New("sftp: the private key is protected by a passphrase: use a key without one (ssh-keygen -N '')")
		}
		if err != nil {
			return nil, fmt.Errorf("sftp: the private key is not an OpenSSH or PEM private key: %w", err)
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if c.Password == "" {
		if len(methods) == 0 {
			return nil, errors.New("sftp: a password or a private key is required")
		}
		return methods, nil
	}
	pw := c.Password
	return append(methods,
		ssh.Password(pw),
		ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
			answers := make([]string, len(questions))
			for i := range questions {
				if echos[i] {
					// Not a password prompt (e.g. a one-time code): nothing sensible to answer.
					return nil, errors.New("sftp: the server asked for more than a password")
				}
				answers[i] = pw
			}
			return answers, nil
		}),
	), nil
}

// hostKeyAlgorithms are the signature algorithms that make a server present a key of type
// keyType. RSA keys sign with SHA-2 only: OpenSSH has disabled ssh-rsa (SHA-1) signatures.
func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

// errGotHostKey ends FetchHostKey's handshake once the key is known.
var errGotHostKey = errors.New("host key received")

// FetchHostKey connects to host:port and returns the server's host key in authorized_keys
// format and its SHA256 fingerprint, without logging in, so the admin can compare the
// fingerprint with the server's before the key is pinned. It prefers Ed25519, the type
// ssh-keygen -lf shows first on most servers.
func FetchHostKey(ctx context.Context, host string, port int) (authorizedKey string, fingerprint string, err error) {
	if port == 0 {
		port = DefaultPort
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "outpost-host-key-check",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return errGotHostKey
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384,
			ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256},
	}
	client, err := connect(ctx, addr, cfg, nil)
	if client != nil {
		client.Close() // not reached: the host key callback always ends the handshake
	}
	if got == nil {
		if err == nil {
			err = fmt.Errorf("sftp: %s sent no host key", addr)
		}
		return "", "", err // already says "sftp: connect to <addr>: ..."
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(got))), ssh.FingerprintSHA256(got), nil
}

// guard closes the connection if an operation is still running cancelGrace after ctx is
// done. done must be called when the operation returns, with its error: if the connection
// was closed under it, the reason is added to pkg/sftp's bare "connection lost".
func (t *Target) guard(ctx context.Context) (done func(errp *error)) {
	finished := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		select {
		case <-finished:
		case <-time.After(cancelGrace):
			t.mu.Lock()
			if t.aborted == nil {
				t.aborted = fmt.Errorf("the connection to %s was closed: an operation was still waiting for the server %v after it was cancelled (%w)", t.addr, cancelGrace, context.Cause(ctx))
			}
			t.mu.Unlock()
			// The SSH connection first: pkg/sftp's Close waits for its reader, which
			// only returns once the connection is gone.
			t.ssh.Close()
			t.client.Close()
		}
	})
	return func(errp *error) {
		close(finished)
		stop()
		if errp == nil || *errp == nil {
			return
		}
		t.mu.Lock()
		aborted := t.aborted
		t.mu.Unlock()
		if aborted != nil {
			*errp = fmt.Errorf("%w (%w)", *errp, aborted)
		}
	}
}

// guardFor is guard for work that must outlive a cancelled caller (cleanup), bounded by d.
func (t *Target) guardFor(d time.Duration) (done func()) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	g := t.guard(ctx)
	return func() { g(nil); cancel() }
}

// ready reports why no operation can start: the connection was closed under an earlier
// cancelled operation, or ctx is already done.
func (t *Target) ready(ctx context.Context) error {
	t.mu.Lock()
	aborted := t.aborted
	t.mu.Unlock()
	if aborted != nil {
		return fmt.Errorf("sftp: %w", aborted)
	}
	return ctx.Err()
}

// begin checks the name and that the connection is still usable, and starts guarding ctx.
func (t *Target) begin(ctx context.Context, name string) (p string, done func(*error), err error) {
	if err := target.CheckName(name); err != nil {
		return "", nil, fmt.Errorf("sftp: %w", err)
	}
	if err := t.ready(ctx); err != nil {
		return "", nil, err
	}
	return t.path(name), t.guard(ctx), nil
}

func (t *Target) path(name string) string {
	if t.root == "" {
		return name
	}
	return path.Join(t.root, name)
}

// Put implements target.Target.
func (t *Target) Put(ctx context.Context, name string, r io.Reader) (err error) {
	p, done, err := t.begin(ctx, name)
	if err != nil {
		return err
	}
	defer done(&err)
	if dir := path.Dir(p); dir != "." && dir != "/" {
		if err := t.client.MkdirAll(dir); err != nil {
			return fmt.Errorf("sftp: put %s: create directory: %w", name, err)
		}
	}
	tmp := t.path(target.TempName(name))
	f, err := t.client.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("sftp: put %s: create temporary file: %w", name, err)
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		// Best effort, bounded: a leftover is recognisable by its name and removed by a
		// later clean.
		defer t.guardFor(cleanupTimeout)()
		if f != nil {
			f.Close()
		}
		t.client.Remove(tmp) //nolint:errcheck // see above
	}()

	bw := bufio.NewWriterSize(target.WriterOnly{W: f}, writeBuffer)
	if _, err := bw.ReadFrom(target.ContextReader(ctx, r)); err != nil {
		return fmt.Errorf("sftp: put %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sftp: put %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sftp: put %s: %w", name, err) // do not publish what the caller gave up on
	}
	if err := f.Sync(); err != nil && !unsupported(err) {
		return fmt.Errorf("sftp: put %s: fsync: %w", name, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("sftp: put %s: close: %w", name, err)
	}
	if err := t.rename(tmp, p); err != nil {
		return fmt.Errorf("sftp: put %s: rename: %w", name, err)
	}
	ok = true
	return nil
}

// rename replaces newpath with oldpath atomically where the server allows it.
func (t *Target) rename(oldpath, newpath string) error {
	if _, ok := t.client.HasExtension(extPosixRename); ok {
		err := t.client.PosixRename(oldpath, newpath)
		if err == nil || !unsupported(err) {
			return err
		}
	}
	// SFTPv3 rename fails when newpath exists: remove it first. Not atomic, but there is
	// never a partial file under the final name.
	if err := t.client.Remove(newpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return t.client.Rename(oldpath, newpath)
}

// unsupported reports whether err is the server saying it does not implement a request.
func unsupported(err error) bool {
	var se *pkgsftp.StatusError
	return errors.As(err, &se) && se.FxCode() == pkgsftp.ErrSSHFxOpUnsupported
}

// Get implements target.Target. Reads from the returned file stop when ctx is done.
func (t *Target) Get(ctx context.Context, name string) (_ io.ReadCloser, err error) {
	p, done, err := t.begin(ctx, name)
	if err != nil {
		return nil, err
	}
	defer done(&err)
	f, err := t.client.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sftp: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("sftp: get %s: %w", name, err)
	}
	gf := &guardedFile{t: t, ctx: ctx, f: f}
	return &reader{br: bufio.NewReaderSize(gf, readBuffer), gf: gf}, nil
}

// reader is what Get returns. Callers read in small pieces (age reads 64 KiB chunks), and
// pkg/sftp sends one request per Read of up to 32 KiB, waiting for each: the buffer turns
// that into 1 MiB reads, which pkg/sftp splits into requests in flight together.
type reader struct {
	br *bufio.Reader
	gf *guardedFile
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.gf.ctx.Err(); err != nil {
		return 0, err
	}
	return r.br.Read(p)
}

func (r *reader) Close() error {
	defer r.gf.t.guardFor(cleanupTimeout)()
	return r.gf.f.Close()
}

// guardedFile guards each read from the server with the Get's context.
type guardedFile struct {
	t   *Target
	ctx context.Context
	f   *pkgsftp.File
}

func (g *guardedFile) Read(p []byte) (n int, err error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	defer g.t.guard(g.ctx)(&err)
	return g.f.Read(p)
}

// Stat implements target.Target.
func (t *Target) Stat(ctx context.Context, name string) (_ target.Info, err error) {
	p, done, err := t.begin(ctx, name)
	if err != nil {
		return target.Info{}, err
	}
	defer done(&err)
	fi, err := t.client.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return target.Info{}, fmt.Errorf("sftp: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return target.Info{}, fmt.Errorf("sftp: stat %s: %w", name, err)
	}
	return target.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements target.Target.
func (t *Target) List(ctx context.Context, dir string) (_ []target.Info, err error) {
	if dir != "" {
		if err := target.CheckName(dir); err != nil {
			return nil, fmt.Errorf("sftp: %w", err)
		}
	}
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	defer t.guard(ctx)(&err)
	var out []target.Info
	var walk func(rel string, top bool) error
	walk = func(rel string, top bool) error {
		p := t.root
		if rel != "" {
			p = t.path(rel)
		}
		if p == "" {
			p = "."
		}
		entries, err := t.client.ReadDirContext(ctx, p)
		if err != nil {
			if top && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			// ReadDirContext returns what it had so far when ctx ends.
			return err
		}
		for _, e := range entries {
			child := e.Name()
			if rel != "" {
				child = rel + "/" + e.Name()
			}
			switch {
			case e.IsDir():
				if err := walk(child, false); err != nil {
					return err
				}
			case e.Mode().IsRegular():
				out = append(out, target.Info{Name: child, Size: e.Size(), ModTime: e.ModTime()})
			}
		}
		return nil
	}
	if err := walk(dir, true); err != nil {
		return nil, fmt.Errorf("sftp: list %s: %w", dir, err)
	}
	return out, nil
}

// Delete implements target.Target.
func (t *Target) Delete(ctx context.Context, name string) (err error) {
	p, done, err := t.begin(ctx, name)
	if err != nil {
		return err
	}
	defer done(&err)
	if err := t.client.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sftp: delete %s: %w", name, err)
	}
	return nil
}

// Close implements target.Target. It ends the SFTP session politely if the server answers
// within cleanupTimeout, and closes the connection in any case: pkg/sftp's Close waits for
// the server to end the session, which a hung server never does.
func (t *Target) Close() error {
	closed := make(chan error, 1)
	go func() { closed <- t.client.Close() }()
	var err error
	select {
	case err = <-closed:
		t.ssh.Close()
	case <-time.After(cleanupTimeout):
		t.ssh.Close()
		<-closed
		err = fmt.Errorf("the server did not end the session within %v", cleanupTimeout)
	}
	t.mu.Lock()
	aborted := t.aborted != nil
	t.mu.Unlock()
	if err != nil && !aborted && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sftp: close connection to %s: %w", t.addr, err)
	}
	return nil
}
