package snapshot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/outpost-im/outpost/appliance/target"
)

// Entry is one snapshot found on a target.
type Entry struct {
	ID       string
	Time     time.Time
	Complete bool  // the manifest is there: everything else was written before it
	Size     int64 // bytes of the snapshot's own files (shared media objects not counted)
}

// List returns the snapshots on t, oldest first.
func List(ctx context.Context, t target.Target) ([]Entry, error) {
	files, err := t.List(ctx, snapshotsDir)
	if err != nil {
		return nil, fmt.Errorf("snapshot: list the target: %w", err)
	}
	byID := map[string]*Entry{}
	for _, f := range files {
		parts := strings.Split(f.Name, "/")
		if len(parts) != 3 || target.IsTemp(f.Name) {
			continue
		}
		when, err := ParseID(parts[1])
		if err != nil {
			continue // not ours
		}
		e := byID[parts[1]]
		if e == nil {
			e = &Entry{ID: parts[1], Time: when}
			byID[parts[1]] = e
		}
		e.Size += f.Size
		if parts[2] == path.Base(manifestPath(parts[1])) {
			e.Complete = true
		}
	}
	out := make([]Entry, 0, len(byID))
	for _, e := range byID {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Latest returns the newest complete snapshot's ID, or "" when there is none.
func Latest(ctx context.Context, t target.Target) (string, error) {
	entries, err := List(ctx, t)
	if err != nil {
		return "", err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Complete {
			return entries[i].ID, nil
		}
	}
	return "", nil
}

func latestManifest(ctx context.Context, t target.Target, keys Keys) (*Manifest, error) {
	id, err := Latest(ctx, t)
	if err != nil || id == "" {
		return nil, err
	}
	m, err := ReadManifest(ctx, t, id, keys.Box, keys.Signing.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// ErrSignature means a manifest does not carry a valid signature of the expected key.
var ErrSignature = errors.New("the snapshot's signature does not match: it was not written by this box (or it was altered)")

// ReadManifest decrypts and checks the manifest of snapshot id. signer is the key the
// manifest must be signed with; nil takes the key published on the target (a new box that
// restores has nothing else — the caller shows its fingerprint for comparison with the
// recovery sheet).
func ReadManifest(ctx context.Context, t target.Target, id string, identity age.Identity, signer ed25519.PublicKey) (Manifest, error) {
	var m Manifest
	if _, err := ParseID(id); err != nil {
		return m, err
	}
	enc, err := readAll(ctx, t, manifestPath(id), 64<<20)
	if err != nil {
		if errors.Is(err, target.ErrNotExist) {
			return m, fmt.Errorf("snapshot %s is not on the target or is incomplete (no manifest)", id)
		}
		return m, err
	}
	r, err := age.Decrypt(bytes.NewReader(enc), identity)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return m, fmt.Errorf("snapshot %s: this key cannot decrypt it (is it the recovery key of this box?)", id)
		}
		return m, fmt.Errorf("snapshot %s: decrypt the manifest: %w", id, err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return m, fmt.Errorf("snapshot %s: decrypt the manifest: %w", id, err)
	}
	sig, err := readAll(ctx, t, sigPath(id), 1024)
	if err != nil {
		return m, err
	}
	if signer == nil {
		if signer, err = TargetSigningKey(ctx, t); err != nil {
			return m, err
		}
	}
	if !ed25519.Verify(signer, plain, sig) {
		return m, fmt.Errorf("snapshot %s: %w", id, ErrSignature)
	}
	if err := json.Unmarshal(plain, &m); err != nil {
		return m, fmt.Errorf("snapshot %s: manifest: %w", id, err)
	}
	return m, m.check(id)
}

// TargetSigningKey is the manifest signing key published at the target root.
func TargetSigningKey(ctx context.Context, t target.Target) (ed25519.PublicKey, error) {
	b, err := readAll(ctx, t, SigningKeyName, 16<<10)
	if err != nil {
		return nil, err
	}
	return ParseSigningPublicPEM(b)
}

func readAll(ctx context.Context, t target.Target, name string, limit int64) ([]byte, error) {
	rc, err := t.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("snapshot: %s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// Cleanup removes what interrupted runs left on t: temporary files and snapshots without a
// manifest, older than age (a younger one may belong to a run in progress). It returns how
// many files it removed.
func Cleanup(ctx context.Context, t target.Target, age time.Duration) (int, error) {
	files, err := t.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("snapshot: list the target: %w", err)
	}
	entries, err := List(ctx, t)
	if err != nil {
		return 0, err
	}
	incomplete := map[string]bool{}
	for _, e := range entries {
		if !e.Complete && time.Since(e.Time) > age {
			incomplete[e.ID] = true
		}
	}
	removed := 0
	for _, f := range files {
		parts := strings.Split(f.Name, "/")
		stale := target.IsTemp(f.Name) && (f.ModTime.IsZero() || time.Since(f.ModTime) > age)
		if len(parts) == 3 && parts[0] == snapshotsDir && incomplete[parts[1]] {
			stale = true
		}
		if !stale {
			continue
		}
		if err := t.Delete(ctx, f.Name); err != nil {
			return removed, fmt.Errorf("snapshot: clean up %s: %w", f.Name, err)
		}
		removed++
	}
	return removed, nil
}

// writeRoot keeps the target's plaintext files current: the restore recipe and the public
// signing key.
func writeRoot(ctx context.Context, t target.Target, keys Keys) error {
	for _, f := range []struct {
		name string
		data []byte
	}{{ReadmeName, []byte(Readme(keys))}, {SigningKeyName, keys.SigningPublicPEM()}} {
		if cur, err := readAll(ctx, t, f.name, 1<<20); err == nil && bytes.Equal(cur, f.data) {
			continue
		}
		if err := t.Put(ctx, f.name, bytes.NewReader(f.data)); err != nil {
			return fmt.Errorf("snapshot: write %s: %w", f.name, err)
		}
	}
	return nil
}
