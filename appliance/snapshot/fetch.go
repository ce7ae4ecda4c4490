package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/outpost-im/outpost/appliance/target"
)

// fetchState downloads, decrypts and unpacks the state archive of m into dir and checks the
// ciphertext checksum and every file's checksum against the signed manifest.
func fetchState(ctx context.Context, t target.Target, m Manifest, identity age.Identity, dir string, progress func(Progress)) error {
	rc, err := t.Get(ctx, m.State.Object)
	if err != nil {
		return fmt.Errorf("snapshot %s: read the state archive: %w", m.ID, err)
	}
	defer rc.Close()
	hr := newHashingReader(&progressReader{r: rc, phase: "state", total: m.State.Size, report: progress})
	dec, err := age.Decrypt(hr, identity)
	if err != nil {
		return fmt.Errorf("snapshot %s: decrypt the state archive: %w", m.ID, err)
	}
	zr, err := zstd.NewReader(dec, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer zr.Close()
	got, err := extractTar(zr, dir)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", m.ID, err)
	}
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return fmt.Errorf("snapshot %s: read the state archive: %w", m.ID, err)
	}
	if hr.n != m.State.Size || hr.sum() != m.State.SHA256 {
		return fmt.Errorf("snapshot %s: the state archive on the target does not match its checksum (damaged or replaced)", m.ID)
	}
	for _, f := range m.State.Files {
		g, ok := got[f.Path]
		if !ok {
			return fmt.Errorf("snapshot %s: %s is missing from the state archive", m.ID, f.Path)
		}
		if g.SHA256 != f.SHA256 || g.Size != f.Size {
			return fmt.Errorf("snapshot %s: %s does not match its checksum", m.ID, f.Path)
		}
	}
	return nil
}

// fetchMedia downloads one media object, checks its ciphertext and plaintext checksums and
// writes the plaintext to dir/md.Path (when dir is empty it is only checked).
func fetchMedia(ctx context.Context, t target.Target, md Media, identity age.Identity, dir string) error {
	rc, err := t.Get(ctx, md.Object)
	if err != nil {
		if errors.Is(err, target.ErrNotExist) {
			return fmt.Errorf("media %s: its object %s is missing on the target", md.Path, md.Object)
		}
		return fmt.Errorf("media %s: %w", md.Path, err)
	}
	defer rc.Close()
	hr := newHashingReader(rc)
	dec, err := age.Decrypt(hr, identity)
	if err != nil {
		return fmt.Errorf("media %s: decrypt: %w", md.Path, err)
	}
	var out io.Writer = io.Discard
	var f *os.File
	if dir != "" {
		p := filepath.Join(dir, filepath.FromSlash(md.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	pw := newHashingWriter(out)
	if _, err := io.Copy(pw, dec); err != nil {
		return fmt.Errorf("media %s: %w", md.Path, err)
	}
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return fmt.Errorf("media %s: %w", md.Path, err)
	}
	if hr.sum() != md.ObjectSHA256 || hr.n != md.ObjectSize {
		return fmt.Errorf("media %s: object %s does not match its checksum (damaged or replaced)", md.Path, md.Object)
	}
	if pw.sum() != md.SHA256 || pw.n != md.Size {
		return fmt.Errorf("media %s: decrypted content does not match its checksum", md.Path)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
		// Keep the original mtime so the next snapshot recognises the file unchanged.
		t := timeFromNanos(md.ModTime)
		return os.Chtimes(f.Name(), t, t)
	}
	return nil
}

type progressReader struct {
	r      io.Reader
	phase  string
	done   int64
	total  int64
	report func(Progress)
	last   int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.report != nil && (p.done-p.last > 1<<20 || err != nil) {
		p.last = p.done
		p.report(Progress{Phase: p.phase, Done: p.done, Total: p.total})
	}
	return n, err
}
