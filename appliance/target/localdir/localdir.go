// Package localdir is a target in a local directory: a mounted USB drive, or any directory
// on a laptop. Every Put is fsynced (file and directory) because USB sticks get pulled.
package localdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/outpost-im/outpost/appliance/atomicfile"
	"github.com/outpost-im/outpost/appliance/target"
)

// Dir is a target rooted at a local directory.
type Dir struct{ root string }

// Open returns a target rooted at dir, which must exist (a USB drive that is not mounted
// must not silently turn into a directory on the box's own disk).
func Open(dir string) (*Dir, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("localdir: %s is not a directory", dir)
	}
	return &Dir{root: dir}, nil
}

func (d *Dir) path(name string) (string, error) {
	if err := target.CheckName(name); err != nil {
		return "", fmt.Errorf("localdir: %w", err)
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

// Put implements target.Target.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("localdir: %w", err)
	}
	tmp := filepath.Join(d.root, filepath.FromSlash(target.TempName(name)))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("localdir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, target.ContextReader(ctx, r)); err != nil {
		return fmt.Errorf("localdir: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("localdir: sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("localdir: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("localdir: %w", err)
	}
	ok = true
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("localdir: %w", err)
	}
	return nil
}

// Get implements target.Target.
func (d *Dir) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("localdir: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	return f, nil
}

// Stat implements target.Target.
func (d *Dir) Stat(ctx context.Context, name string) (target.Info, error) {
	p, err := d.path(name)
	if err != nil {
		return target.Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return target.Info{}, fmt.Errorf("localdir: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return target.Info{}, fmt.Errorf("localdir: %w", err)
	}
	return target.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements target.Target.
func (d *Dir) List(ctx context.Context, dir string) ([]target.Info, error) {
	base := d.root
	if dir != "" {
		p, err := d.path(dir)
		if err != nil {
			return nil, err
		}
		base = p
	}
	var out []target.Info
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		out = append(out, target.Info{Name: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("localdir: list %s: %w", dir, err)
	}
	return out, nil
}

// Delete implements target.Target.
func (d *Dir) Delete(ctx context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("localdir: %w", err)
	}
	return nil
}

// Close implements target.Target.
func (d *Dir) Close() error { return nil }
