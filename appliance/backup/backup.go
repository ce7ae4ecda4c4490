// Package backup runs snapshots on the box: it owns the keys, the schedule, the record of
// every run, the verification after each snapshot, retention, and the restore flow. The
// format and the engine are package snapshot's; where snapshots go is package target's.
package backup

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/dial"
	"github.com/outpost-im/outpost/appliance/targetstore"
)

// Homeserver is what a snapshot needs of the supervisor.
type Homeserver interface {
	snapshot.Pauser
	Status() homeserver.Status
}

// Service is the box's snapshot service.
type Service struct {
	DataDir  string
	Store    *settings.Store
	Targets  *targetstore.Store
	HS       Homeserver
	HSConfig func(context.Context) (homeserver.Config, error)
	Version  string
	Log      *slog.Logger

	mu sync.Mutex // one run (snapshot, verify, prune, restore) at a time
}

// Default schedule values.
const (
	DefaultTime = "02:30"
	// alertSlack is how late a daily snapshot may be before the console raises an alert.
	alertSlack = 2 * time.Hour
)

// EnsureKeys generates the box's snapshot keys if they do not exist yet.
func (s *Service) EnsureKeys(ctx context.Context) error {
	return s.Store.Update(ctx, func(st *settings.Settings) error {
		if st.SnapshotBoxKey != "" && st.SnapshotSigningKey != "" {
			return settings.ErrUnchanged
		}
		box, seed, err := snapshot.NewBoxKeys()
		if err != nil {
			return err
		}
		st.SnapshotBoxKey, st.SnapshotSigningKey = box, seed
		return nil
	})
}

// NewRecoveryKey generates an operator recovery key, stores its public half and returns the
// private half, which is shown once and never stored. Snapshots taken before keep their old
// recipients.
func (s *Service) NewRecoveryKey(ctx context.Context) (identity, recipient string, err error) {
	identity, recipient, err = snapshot.NewRecoveryKey()
	if err != nil {
		return "", "", err
	}
	err = s.Store.Update(ctx, func(st *settings.Settings) error {
		st.RecoveryRecipient = recipient
		return nil
	})
	return identity, recipient, err
}

func (s *Service) keys(ctx context.Context) (snapshot.Keys, settings.Settings, error) {
	if err := s.EnsureKeys(ctx); err != nil {
		return snapshot.Keys{}, settings.Settings{}, err
	}
	st, err := s.Store.Get(ctx)
	if err != nil {
		return snapshot.Keys{}, st, err
	}
	k, err := snapshot.ParseKeys(st.SnapshotBoxKey, st.SnapshotSigningKey, st.RecoveryRecipient, st.EscrowRecipient)
	return k, st, err
}

// SigningFingerprint is the manifest key's fingerprint, printed on the recovery sheet.
func (s *Service) SigningFingerprint(ctx context.Context) (string, error) {
	if err := s.EnsureKeys(ctx); err != nil {
		return "", err
	}
	st, err := s.Store.Get(ctx)
	if err != nil {
		return "", err
	}
	pub, err := snapshot.SigningPublicKey(st.SnapshotSigningKey)
	if err != nil {
		return "", err
	}
	return snapshot.Fingerprint(pub), nil
}

// source describes this box's data for the snapshot engine.
func (s *Service) source(ctx context.Context, st settings.Settings) (snapshot.Source, error) {
	src := snapshot.Source{
		DataDir:   s.DataDir,
		Databases: []string{settings.FileName},
		Frozen:    []string{"homeserver/jetstream"},
		Files:     []string{"homeserver/matrix_key.pem", "tls", targetstore.KeyFile},
		Media:     "homeserver/media",
		// Dendrite keeps uploads in progress under tmp/ until their hash is known.
		MediaSkip: []string{"tmp"},
	}
	for _, c := range homeserver.Components {
		src.Databases = append(src.Databases, "homeserver/db/"+c+".db")
	}
	if s.HSConfig != nil && st.ServerName != "" {
		cfg, err := s.HSConfig(ctx)
		if err != nil {
			return src, err
		}
		// A config with relative paths, for starting the homeserver by hand from an
		// unpacked snapshot (README-RESTORE.txt).
		cfg.Dir = "."
		if y, err := homeserver.Render(cfg); err == nil {
			src.Extra = map[string][]byte{"dendrite.yaml": y}
		}
	}
	if s.HS != nil {
		switch s.HS.Status().State {
		case homeserver.StateRunning:
			src.Pauser = s.HS
		case homeserver.StateStopped, "":
			// Not running (before setup, or on a laptop with it stopped): nothing changes.
		default:
			return src, fmt.Errorf("the homeserver is %s; the snapshot will be retried", s.HS.Status().State)
		}
	}
	return src, nil
}

// Target opens a configured target by name ("" = the scheduled one).
func (s *Service) Target(ctx context.Context, name string) (target.Target, target.Config, error) {
	if name == "" {
		st, err := s.Store.Get(ctx)
		if err != nil {
			return nil, target.Config{}, err
		}
		if name = st.SnapshotTarget; name == "" {
			return nil, target.Config{}, errors.New("no snapshot target is configured: add one with `outpost targets add` or in the admin console (Snapshots)")
		}
	}
	c, err := s.Targets.Get(ctx, name)
	if err != nil {
		return nil, c, err
	}
	t, err := dial.Open(ctx, c)
	if err != nil {
		return nil, c, fmt.Errorf("target %s: %w", name, err)
	}
	return t, c, nil
}

// Run is one recorded operation.
type Run struct {
	ID         int64           `json:"id"`
	Kind       string          `json:"kind"` // snapshot, verify, prune, restore
	Target     string          `json:"target"`
	SnapshotID string          `json:"snapshot_id,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	OK         bool            `json:"ok"`
	Error      string          `json:"error,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

func (s *Service) record(ctx context.Context, kind, tgt, reason string, fn func() (snapshotID string, detail any, err error)) (Run, error) {
	r := Run{Kind: kind, Target: tgt, Reason: reason, StartedAt: time.Now().UTC()}
	db := s.Store.DB()
	res, err := db.ExecContext(ctx, `INSERT INTO snapshot_runs(kind, target, reason, started_at) VALUES(?, ?, ?, ?)`,
		kind, tgt, reason, r.StartedAt.Format(time.RFC3339Nano))
	if err != nil {
		return r, fmt.Errorf("backup: record run: %w", err)
	}
	r.ID, _ = res.LastInsertId()
	id, detail, runErr := fn()
	r.SnapshotID, r.FinishedAt, r.OK = id, time.Now().UTC(), runErr == nil
	if runErr != nil {
		r.Error = runErr.Error()
	}
	r.Detail, _ = json.Marshal(detail)
	if _, err := db.ExecContext(context.WithoutCancel(ctx), `UPDATE snapshot_runs SET snapshot_id = ?, finished_at = ?, ok = ?, error = ?, detail = ? WHERE id = ?`,
		r.SnapshotID, r.FinishedAt.Format(time.RFC3339Nano), r.OK, r.Error, string(r.Detail), r.ID); err != nil {
		s.Log.Error("cannot record the end of a run", "kind", kind, "err", err)
	}
	return r, runErr
}

// SnapshotResult is a snapshot run with its verification and pruning.
type SnapshotResult struct {
	Snapshot snapshot.Result        `json:"snapshot"`
	Verify   *snapshot.VerifyResult `json:"verify,omitempty"`
	Prune    *snapshot.PruneResult  `json:"prune,omitempty"`
}

// Snapshot takes a snapshot to the named target ("" = the scheduled one), verifies it by a
// test restore into scratch space, and applies retention.
func (s *Service) Snapshot(ctx context.Context, targetName, reason string, progress func(snapshot.Progress)) (SnapshotResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked(ctx, targetName, reason, progress)
}

func (s *Service) snapshotLocked(ctx context.Context, targetName, reason string, progress func(snapshot.Progress)) (SnapshotResult, error) {
	var out SnapshotResult
	keys, st, err := s.keys(ctx)
	if err != nil {
		return out, err
	}
	if targetName == "" {
		targetName = st.SnapshotTarget
	}
	// Everything from here is recorded, a target that cannot be reached included: the
	// console must show that the last run failed, and why.
	var t target.Target
	var cfg target.Config
	_, err = s.record(ctx, "snapshot", targetName, reason, func() (string, any, error) {
		var err error
		if t, cfg, err = s.Target(ctx, targetName); err != nil {
			return "", nil, err
		}
		src, err := s.source(ctx, st)
		if err != nil {
			return "", nil, err
		}
		res, err := snapshot.Create(ctx, t, src, keys, snapshot.Options{
			Reason: reason, ServerName: st.ServerName, Version: s.Version, Progress: progress, Log: s.Log,
		})
		out.Snapshot = res
		if err == nil {
			s.Log.Info("snapshot taken", "target", cfg.Name, "id", res.ID, "pause_ms", res.PauseMillis,
				"state_bytes", res.StateBytes, "media", res.MediaFiles, "media_new", res.MediaUploaded, "duration", res.Duration.Round(time.Millisecond))
		}
		return res.ID, res, err
	})
	if t != nil {
		defer t.Close()
	}
	if err != nil {
		s.Log.Error("snapshot failed", "target", targetName, "err", err)
		return out, err
	}
	v, err := s.verifyLocked(ctx, t, cfg.Name, out.Snapshot.ID, keys, progress)
	out.Verify = &v
	if err != nil {
		return out, fmt.Errorf("the snapshot was written but its test restore failed: %w", err)
	}
	ret := snapshot.DefaultRetention
	if st.SnapshotRetention != "" {
		if ret, err = snapshot.ParseRetention(st.SnapshotRetention); err != nil {
			return out, err
		}
	}
	_, err = s.record(ctx, "prune", cfg.Name, reason, func() (string, any, error) {
		p, err := snapshot.Prune(ctx, t, keys, ret)
		out.Prune = &p
		return "", p, err
	})
	if err != nil {
		s.Log.Error("pruning old snapshots failed", "target", cfg.Name, "err", err)
		// The new snapshot is good; a failed prune only costs space.
	}
	return out, nil
}

// Verify test-restores a snapshot ("" = the newest) from a target into scratch space.
func (s *Service) Verify(ctx context.Context, targetName, id string, progress func(snapshot.Progress)) (snapshot.VerifyResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, _, err := s.keys(ctx)
	if err != nil {
		return snapshot.VerifyResult{}, err
	}
	t, cfg, err := s.Target(ctx, targetName)
	if err != nil {
		return snapshot.VerifyResult{}, err
	}
	defer t.Close()
	if id == "" {
		if id, err = snapshot.Latest(ctx, t); err != nil {
			return snapshot.VerifyResult{}, err
		}
		if id == "" {
			return snapshot.VerifyResult{}, fmt.Errorf("target %s holds no complete snapshot yet", cfg.Name)
		}
	}
	return s.verifyLocked(ctx, t, cfg.Name, id, keys, progress)
}

func (s *Service) verifyLocked(ctx context.Context, t target.Target, tgt, id string, keys snapshot.Keys, progress func(snapshot.Progress)) (snapshot.VerifyResult, error) {
	var since time.Time
	if last, err := s.lastOK(ctx, "verify", tgt); err == nil && last != nil {
		since = last.StartedAt.Add(-time.Hour) // margin for clock steps and media written during that run
	}
	var v snapshot.VerifyResult
	_, err := s.record(ctx, "verify", tgt, "", func() (string, any, error) {
		var err error
		v, err = snapshot.Verify(ctx, t, id, keys, filepath.Join(s.DataDir, ".verify"), snapshot.VerifyOptions{MediaSince: since, Progress: progress})
		if err == nil {
			s.Log.Info("snapshot verified by a test restore", "target", tgt, "id", id, "databases", v.Databases,
				"media", v.Media, "media_decrypted", v.MediaDecrypted, "duration", v.Duration.Round(time.Millisecond))
		}
		return id, v, err
	})
	return v, err
}

// Prune applies retention to a target now.
func (s *Service) Prune(ctx context.Context, targetName string) (snapshot.PruneResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, st, err := s.keys(ctx)
	if err != nil {
		return snapshot.PruneResult{}, err
	}
	t, cfg, err := s.Target(ctx, targetName)
	if err != nil {
		return snapshot.PruneResult{}, err
	}
	defer t.Close()
	ret := snapshot.DefaultRetention
	if st.SnapshotRetention != "" {
		if ret, err = snapshot.ParseRetention(st.SnapshotRetention); err != nil {
			return snapshot.PruneResult{}, err
		}
	}
	var p snapshot.PruneResult
	_, err = s.record(ctx, "prune", cfg.Name, "manual", func() (string, any, error) {
		var err error
		p, err = snapshot.Prune(ctx, t, keys, ret)
		return "", p, err
	})
	return p, err
}

// List returns the snapshots on a target.
func (s *Service) List(ctx context.Context, targetName string) ([]snapshot.Entry, error) {
	t, _, err := s.Target(ctx, targetName)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return snapshot.List(ctx, t)
}

// TestTarget writes, reads back and deletes a probe file on a target configuration.
func (s *Service) TestTarget(ctx context.Context, c target.Config) error {
	t, err := dial.Open(ctx, c)
	if err != nil {
		return err
	}
	defer t.Close()
	return target.Probe(ctx, t)
}

func (s *Service) lastOK(ctx context.Context, kind, tgt string) (*Run, error) {
	runs, err := s.runs(ctx, `WHERE kind = ? AND ok = 1 AND (? = '' OR target = ?) ORDER BY id DESC LIMIT 1`, kind, tgt, tgt)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// Runs returns the most recent runs, newest first.
func (s *Service) Runs(ctx context.Context, limit int) ([]Run, error) {
	return s.runs(ctx, `ORDER BY id DESC LIMIT ?`, limit)
}

func (s *Service) runs(ctx context.Context, where string, args ...any) ([]Run, error) {
	rows, err := s.Store.DB().QueryContext(ctx, `SELECT id, kind, target, snapshot_id, reason, started_at, finished_at, ok, error, detail FROM snapshot_runs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started, finished, detail string
		if err := rows.Scan(&r.ID, &r.Kind, &r.Target, &r.SnapshotID, &r.Reason, &started, &finished, &r.OK, &r.Error, &detail); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		r.StartedAt, _ = time.Parse(time.RFC3339Nano, started)
		r.FinishedAt, _ = time.Parse(time.RFC3339Nano, finished)
		r.Detail = json.RawMessage(detail)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Status is what the console and `outpost status` show about snapshots.
type Status struct {
	Enabled        bool      `json:"enabled"`
	Target         string    `json:"target,omitempty"`
	Time           string    `json:"time"`
	Retention      string    `json:"retention"`
	RecoveryKeySet bool      `json:"recovery_key_set"`
	LastSnapshot   *Run      `json:"last_snapshot,omitempty"`
	LastVerified   *Run      `json:"last_verified,omitempty"`
	LastRun        *Run      `json:"last_run,omitempty"`
	NextRun        time.Time `json:"next_run,omitzero"`
	Alerts         []string  `json:"alerts,omitempty"`
	SigningKey     string    `json:"signing_key_fingerprint,omitempty"`
	RestorePending string    `json:"restore_pending,omitempty"`
}

// Status reports the last snapshot and verification and raises alerts when either is older
// than the schedule allows or the last run failed.
func (s *Service) Status(ctx context.Context, now time.Time) (Status, error) {
	st, err := s.Store.Get(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{
		Enabled: !st.SnapshotsOff, Target: st.SnapshotTarget, Time: orDefault(st.SnapshotTime, DefaultTime),
		Retention: orDefault(st.SnapshotRetention, snapshot.DefaultRetention.String()), RecoveryKeySet: st.RecoveryRecipient != "",
	}
	if fp, err := s.SigningFingerprint(ctx); err == nil {
		out.SigningKey = fp
	}
	if id, ok := snapshot.Pending(s.DataDir); ok {
		out.RestorePending = id
	}
	if out.LastSnapshot, err = s.lastOK(ctx, "snapshot", ""); err != nil {
		return out, err
	}
	if out.LastVerified, err = s.lastOK(ctx, "verify", ""); err != nil {
		return out, err
	}
	if runs, err := s.Runs(ctx, 1); err == nil && len(runs) > 0 {
		out.LastRun = &runs[0]
	}
	if !st.SetupComplete {
		return out, nil
	}
	switch {
	case st.SnapshotsOff:
		out.Alerts = append(out.Alerts, "Snapshots are turned off: nothing protects the chat history if this box fails.")
	case st.SnapshotTarget == "":
		out.Alerts = append(out.Alerts, "No snapshot target is set up: add a USB drive or a network share under Snapshots.")
	case st.RecoveryRecipient == "":
		out.Alerts = append(out.Alerts, "No recovery key is set up: create one under Snapshots before the first snapshot.")
	}
	if out.Enabled {
		out.NextRun = nextRun(now, out.Time, out.LastSnapshot)
		allowed := 24*time.Hour + alertSlack
		// The first snapshot is due one schedule period after setup.
		since := st.SetupCompletedAt
		if out.LastSnapshot != nil {
			since = out.LastSnapshot.StartedAt
			if now.Sub(since) > allowed {
				out.Alerts = append(out.Alerts, fmt.Sprintf("The last snapshot is from %s, older than the daily schedule allows.", since.Local().Format("2006-01-02 15:04")))
			}
		} else if !since.IsZero() && now.Sub(since) > allowed {
			out.Alerts = append(out.Alerts, "No snapshot has been taken since setup.")
		}
		if out.LastVerified != nil && now.Sub(out.LastVerified.StartedAt) > allowed {
			out.Alerts = append(out.Alerts, fmt.Sprintf("The last verified-restorable snapshot is from %s, older than the schedule allows.", out.LastVerified.StartedAt.Local().Format("2006-01-02 15:04")))
		}
	}
	if r := out.LastRun; r != nil && !r.OK && !r.FinishedAt.IsZero() {
		out.Alerts = append(out.Alerts, fmt.Sprintf("The last %s (%s) failed: %s", r.Kind, r.StartedAt.Local().Format("2006-01-02 15:04"), r.Error))
	}
	return out, nil
}

func orDefault(v, d string) string {
	if strings.TrimSpace(v) == "" {
		return d
	}
	return v
}

// ParseTime reads a daily "HH:MM" schedule time.
func ParseTime(s string) (hour, minute int, err error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, 0, fmt.Errorf("snapshot time %q: use HH:MM in 24-hour local time, e.g. 02:30", s)
	}
	return t.Hour(), t.Minute(), nil
}

// nextRun is the next daily slot after the last successful snapshot (or now).
func nextRun(now time.Time, at string, last *Run) time.Time {
	h, m, err := ParseTime(at)
	if err != nil {
		h, m, _ = ParseTime(DefaultTime)
	}
	from := now
	if last != nil && last.StartedAt.After(now.Add(-24*time.Hour)) {
		from = last.StartedAt.Local()
	}
	slot := time.Date(from.Year(), from.Month(), from.Day(), h, m, 0, 0, time.Local)
	if !slot.After(from) {
		slot = slot.AddDate(0, 0, 1)
	}
	return slot
}

// RunScheduler takes the daily snapshot until ctx ends. A failed run is retried hourly.
func (s *Service) RunScheduler(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	var lastAttempt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, err := s.Store.Get(ctx)
		if err != nil || !st.SetupComplete || st.SnapshotsOff || st.SnapshotTarget == "" || st.RecoveryRecipient == "" {
			continue
		}
		now := time.Now()
		last, err := s.lastOK(ctx, "snapshot", "")
		if err != nil {
			continue
		}
		due := nextRun(now, orDefault(st.SnapshotTime, DefaultTime), last)
		if last != nil && !now.After(due) {
			continue
		}
		if last == nil && now.Sub(st.SetupCompletedAt) < time.Hour && !now.After(due) {
			continue
		}
		if now.Sub(lastAttempt) < time.Hour {
			continue
		}
		lastAttempt = now
		if _, err := s.Snapshot(ctx, "", "scheduled", nil); err != nil {
			s.Log.Error("scheduled snapshot failed; retrying in an hour", "err", err)
		}
	}
}

// StageRestore downloads a snapshot from target c (which need not be configured on this
// box) into the pending restore area, using the recovery key in identityText. When this box
// already holds state and has a snapshot target, that state is snapshotted first: a restore
// never replaces data that exists nowhere else. The caller restarts outpostd to apply it.
func (s *Service) StageRestore(ctx context.Context, c target.Config, id, identityText string, progress func(snapshot.Progress)) (snapshot.RestoreResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res snapshot.RestoreResult
	identity, err := snapshot.ParseIdentity(identityText)
	if err != nil {
		return res, err
	}
	st, err := s.Store.Get(ctx)
	if err != nil {
		return res, err
	}
	if st.SetupComplete {
		if st.SnapshotTarget == "" || st.RecoveryRecipient == "" {
			return res, errors.New("this box already holds chat history and has no snapshot target to save it to first: set up a target and a recovery key, or restore onto a fresh box")
		}
		if _, err := s.snapshotLocked(ctx, "", "before-restore", progress); err != nil {
			return res, fmt.Errorf("could not snapshot the current state before restoring (nothing was changed): %w", err)
		}
	}
	t, err := dial.Open(ctx, c)
	if err != nil {
		return res, err
	}
	defer t.Close()
	if id == "" {
		if id, err = snapshot.Latest(ctx, t); err != nil {
			return res, err
		}
		if id == "" {
			return res, errors.New("the target holds no complete snapshot")
		}
	}
	// A box restoring its own snapshots knows its signing key; a new box trusts the key
	// on the target and shows its fingerprint to compare with the recovery sheet.
	var signer ed25519.PublicKey
	if st.SetupComplete {
		if signer, err = snapshot.SigningPublicKey(st.SnapshotSigningKey); err != nil {
			return res, err
		}
	}
	_, err = s.record(ctx, "restore", c.Name, "", func() (string, any, error) {
		var err error
		res, err = snapshot.Stage(ctx, t, id, identity, signer, s.DataDir, progress)
		return id, res, err
	})
	if err != nil {
		return res, err
	}
	if pub, err := snapshot.TargetSigningKey(ctx, t); err == nil {
		res.SigningKeySource = snapshot.Fingerprint(pub)
	}
	return res, nil
}

// CleanScratch removes verification leftovers of a run that was interrupted.
func (s *Service) CleanScratch() error { return os.RemoveAll(filepath.Join(s.DataDir, ".verify")) }
