// Package smb is a target on a Windows or Samba file share (SMB2/3, via
// github.com/cloudsoda/go-smb2).
//
// Put writes a temporary file, flushes it (SMB2 FLUSH, which Samba turns into an fsync with
// its default "strict sync = yes") and renames it over the final name with
// ReplaceIfExists, so a reader sees the old or the new file, never half of one.
//
// Every request carries the caller's context: go-smb2 selects on it while waiting for a
// reply, so a cancelled snapshot stops at the next round trip instead of waiting for a NAS
// that has gone to sleep.
package smb

import (
	"bufio"
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
	"time"

	"github.com/cloudsoda/go-smb2"

	"github.com/outpost-im/outpost/appliance/target"
)

// DefaultPort is the SMB port used when the config leaves Port at 0.
const DefaultPort = 445

// connectTimeout bounds dialling, login and mounting when the caller's context has no
// deadline: a host that accepts TCP but never answers must not hang the "add target" form.
const connectTimeout = 30 * time.Second

// cancelGrace is how long requests on a Put's temporary file may go on after the Put's
// context is done; see Put.
const cancelGrace = 2 * time.Second

// cleanupTimeout bounds the best-effort requests made after a failure or on Close, which
// cannot use the caller's (possibly cancelled) context.
const cleanupTimeout = 10 * time.Second

// writeBuffer is the size of the writes handed to go-smb2. It sends one WRITE per Write
// call (split to the server's MaxWriteSize and the credits granted) and waits for it, so
// feeding it the small reads of an encrypting stream would cost a round trip per 64 KiB.
// Against the Samba in the tests 4 MiB writes were ~1.5x faster than 1 MiB ones.
const writeBuffer = 4 << 20

// readBuffer is the size of the reads Get's reader sends; see reader.
const readBuffer = 1 << 20

// NTSTATUS codes (MS-ERREF) that mean "wrong user name or password" in one form or another.
// go-smb2 keeps its table internal, so they are spelled out here.
var loginFailures = map[uint32]string{
	0xC000006D: "STATUS_LOGON_FAILURE",
	0xC000006A: "STATUS_WRONG_PASSWORD",
	0xC0000064: "STATUS_NO_SUCH_USER",
	0xC000006E: "STATUS_ACCOUNT_RESTRICTION",
	0xC0000072: "STATUS_ACCOUNT_DISABLED",
	0xC0000193: "STATUS_ACCOUNT_EXPIRED",
	0xC0000071: "STATUS_PASSWORD_EXPIRED",
	0xC0000224: "STATUS_PASSWORD_MUST_CHANGE",
	0xC0000234: "STATUS_ACCOUNT_LOCKED_OUT",
}

const statusBadNetworkName = 0xC00000CC // the share does not exist

// Target is a directory inside an SMB share.
type Target struct {
	addr    string
	conn    net.Conn
	session *smb2.Session
	share   *smb2.Share
	root    string // c.Dir inside the share, slash-separated, "" for the share's root
}

var _ target.Target = (*Target)(nil)

// Open logs in to the share c describes and creates c.Dir inside it if it is missing.
func Open(ctx context.Context, c target.Config) (*Target, error) {
	if c.Host == "" || c.Share == "" {
		return nil, errors.New("smb: host and share are required")
	}
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	root := strings.Trim(c.Dir, "/")
	if root != "" {
		if err := target.CheckName(root); err != nil {
			return nil, fmt.Errorf("smb: dir: %w", err)
		}
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(port))

	dctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}

	var nd net.Dialer
	conn, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smb: connect to %s: %w", addr, err)
	}
	// go-smb2 selects on the context while waiting for replies, but a blocked write to the
	// socket only ends when the socket does; close it if the context ends mid-handshake.
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	defer stop()

	d := &smb2.Dialer{Initiator: &smb2.NTLMInitiator{User: c.User, Password: c.Password, Domain: c.Domain}}
	session, err := d.DialConn(dctx, conn, addr)
	if err != nil {
		conn.Close()
		if cerr := dctx.Err(); cerr != nil {
			return nil, fmt.Errorf("smb: log in to %s: %w", addr, cerr)
		}
		return nil, loginError(addr, c, err)
	}
	t := &Target{addr: addr, conn: conn, session: session, root: root}

	share, err := session.WithContext(dctx).Mount(`\\` + c.Host + `\` + c.Share)
	if err != nil {
		t.Close()
		var re *smb2.ResponseError
		switch {
		case dctx.Err() != nil:
			err = dctx.Err()
		case errors.As(err, &re) && re.Code == statusBadNetworkName:
			return nil, fmt.Errorf("smb: %s has no share named %q: check the share name (it is the part after \\\\server\\)", addr, c.Share)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("smb: user %q may not open share %q on %s: give the account access to the share", c.User, c.Share, addr)
		}
		return nil, fmt.Errorf("smb: open share %q on %s: %w", c.Share, addr, err)
	}
	t.share = share

	if root != "" {
		if err := share.WithContext(dctx).MkdirAll(root, 0o755); err != nil {
			t.Close()
			return nil, fmt.Errorf("smb: create directory %q in share %q: %w", root, c.Share, err)
		}
	}
	if !stop() {
		// The context ended after the last request: the socket is already closed.
		t.Close()
		return nil, fmt.Errorf("smb: connect to %s: %w", addr, dctx.Err())
	}
	return t, nil
}

// loginError turns a failed session setup into a message an admin can act on. The password
// is never part of it.
func loginError(addr string, c target.Config, err error) error {
	var re *smb2.ResponseError
	if errors.As(err, &re) {
		if status, ok := loginFailures[re.Code]; ok {
			who := c.User
			if c.Domain != "" {
				who = c.Domain + `\` + c.User
			}
			return fmt.Errorf("smb: %s refused the login of user %q (%s): check the user name, password and domain", addr, who, status)
		}
	}
	return fmt.Errorf("smb: log in to %s: %w", addr, err)
}

// shareCtx is the share with ctx attached to every request.
func (t *Target) shareCtx(ctx context.Context) *smb2.Share { return t.share.WithContext(ctx) }

// cleanupFS is for requests that must run even though ctx was cancelled (removing a
// temporary file), bounded so a dead server cannot hold them forever.
func (t *Target) cleanupFS(ctx context.Context) (*smb2.Share, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	return t.share.WithContext(cctx), cancel
}

// path maps a target name to a path inside the share (go-smb2 turns '/' into '\').
func (t *Target) path(name string) (string, error) {
	if err := target.CheckName(name); err != nil {
		return "", fmt.Errorf("smb: %w", err)
	}
	if t.root == "" {
		return name, nil
	}
	return t.root + "/" + name, nil
}

// Put implements target.Target.
//
// The requests on the temporary file use a context that ends cancelGrace after ctx: a
// cancel normally stops the copy at the next read from r, and the handle can then still be
// closed and the file removed (go-smb2 refuses every request once its context is done, and
// an open handle blocks the removal). Only a server that hangs is cut off by the context.
func (t *Target) Put(ctx context.Context, name string, r io.Reader) (err error) {
	p, err := t.path(name)
	if err != nil {
		return err
	}
	fctx, release := afterGrace(ctx)
	defer release()
	defer func() {
		// A request cut off by fctx says only "context canceled"; say why.
		if cerr := ctx.Err(); err != nil && cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
	}()
	share := t.shareCtx(fctx)
	if dir := path.Dir(p); dir != "." {
		if err := share.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("smb: put %s: create directory: %w", name, err)
		}
	}
	tmp, _ := t.path(target.TempName(name))
	f, err := share.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("smb: put %s: create temporary file: %w", name, err)
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		// Best effort: a leftover is recognisable by its name and removed by a later clean.
		if f != nil {
			f.Close()
		}
		cfs, cancel := t.cleanupFS(ctx)
		defer cancel()
		cfs.Remove(tmp) //nolint:errcheck // see above
	}()

	bw := bufio.NewWriterSize(target.WriterOnly{W: f}, writeBuffer)
	if _, err := bw.ReadFrom(target.ContextReader(ctx, r)); err != nil {
		return fmt.Errorf("smb: put %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("smb: put %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("smb: put %s: %w", name, err) // do not publish what the caller gave up on
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("smb: put %s: flush: %w", name, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("smb: put %s: close: %w", name, err)
	}
	if err := share.Rename(tmp, p); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("smb: put %s: rename: %w", name, err)
		}
		// A server that ignores ReplaceIfExists: not atomic any more, but still never a
		// partial file under the final name.
		if err := share.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("smb: put %s: replace: %w", name, err)
		}
		if err := share.Rename(tmp, p); err != nil {
			return fmt.Errorf("smb: put %s: rename: %w", name, err)
		}
	}
	ok = true
	return nil
}

// afterGrace returns a context that ends cancelGrace after ctx does, and a func that must be
// called to release it.
func afterGrace(ctx context.Context) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		timer := time.NewTimer(cancelGrace)
		defer timer.Stop()
		select {
		case <-timer.C:
			cancel()
		case <-gctx.Done():
		}
	})
	return gctx, func() { stop(); cancel() }
}

// Get implements target.Target. Reads from the returned file use ctx.
func (t *Target) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := t.path(name)
	if err != nil {
		return nil, err
	}
	f, err := t.shareCtx(ctx).Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("smb: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("smb: get %s: %w", name, err)
	}
	return reader{bufio.NewReaderSize(f, readBuffer), f}, nil
}

// reader is what Get returns. go-smb2 sends one READ per Read call and waits for it, and
// callers read in small pieces (age reads 64 KiB chunks): the buffer makes each round trip
// carry 1 MiB.
type reader struct {
	*bufio.Reader
	io.Closer
}

// Stat implements target.Target.
func (t *Target) Stat(ctx context.Context, name string) (target.Info, error) {
	p, err := t.path(name)
	if err != nil {
		return target.Info{}, err
	}
	fi, err := t.shareCtx(ctx).Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return target.Info{}, fmt.Errorf("smb: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return target.Info{}, fmt.Errorf("smb: stat %s: %w", name, err)
	}
	return target.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements target.Target.
func (t *Target) List(ctx context.Context, dir string) ([]target.Info, error) {
	if dir != "" {
		if err := target.CheckName(dir); err != nil {
			return nil, fmt.Errorf("smb: %w", err)
		}
	}
	share := t.shareCtx(ctx)
	var out []target.Info
	var walk func(rel string, top bool) error
	walk = func(rel string, top bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := t.root
		if rel != "" {
			p = path.Join(t.root, rel)
		}
		entries, err := share.ReadDir(p)
		if err != nil {
			if top && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, e := range entries {
			child := e.Name()
			if rel != "" {
				child = rel + "/" + e.Name()
			}
			if e.IsDir() {
				if err := walk(child, false); err != nil {
					return err
				}
				continue
			}
			out = append(out, target.Info{Name: child, Size: e.Size(), ModTime: e.ModTime()})
		}
		return nil
	}
	if err := walk(dir, true); err != nil {
		return nil, fmt.Errorf("smb: list %s: %w", dir, err)
	}
	return out, nil
}

// Delete implements target.Target.
func (t *Target) Delete(ctx context.Context, name string) error {
	p, err := t.path(name)
	if err != nil {
		return err
	}
	if err := t.shareCtx(ctx).Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("smb: delete %s: %w", name, err)
	}
	return nil
}

// Close implements target.Target: it disconnects the share and logs off, each bounded in
// time, then closes the connection whatever the server said.
func (t *Target) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	if t.share != nil {
		if err := t.share.WithContext(ctx).Umount(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := t.session.WithContext(ctx).Logoff(); err != nil {
		errs = append(errs, err)
	}
	if err := t.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("smb: close connection to %s: %w", t.addr, err)
	}
	return nil
}
