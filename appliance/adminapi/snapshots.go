package adminapi

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
)

// SnapshotRequest starts a snapshot, verification or prune.
type SnapshotRequest struct {
	Target string `json:"target,omitempty"` // "" = the scheduled target
	ID     string `json:"id,omitempty"`     // verify: "" = newest
}

// ScheduleRequest changes the snapshot schedule. Empty fields are left as they are.
type ScheduleRequest struct {
	Target    string `json:"target,omitempty"`
	Time      string `json:"time,omitempty"`
	Retention string `json:"retention,omitempty"`
	Off       *bool  `json:"off,omitempty"`
	Escrow    string `json:"escrow,omitempty"`
}

// RecoveryKeyResponse carries a new recovery key: shown once, never stored on the box.
type RecoveryKeyResponse struct {
	Identity           string `json:"identity"`
	Recipient          string `json:"recipient"`
	SigningFingerprint string `json:"signing_fingerprint"`
}

// RestoreRequest stages a restore. Either Target names a configured target or Config
// describes one (a fresh box has none configured).
type RestoreRequest struct {
	Target      string         `json:"target,omitempty"`
	Config      *target.Config `json:"config,omitempty"`
	ID          string         `json:"id,omitempty"` // "" = newest
	RecoveryKey string         `json:"recovery_key"`
}

// TargetTestRequest tests a configured target (Name) or a new configuration (Config).
type TargetTestRequest struct {
	Name   string         `json:"name,omitempty"`
	Config *target.Config `json:"config,omitempty"`
}

// StreamLine is one line of a long operation's answer (NDJSON): progress lines, then one
// line with either Result or Error.
type StreamLine struct {
	Progress *snapshot.Progress `json:"progress,omitempty"`
	Result   json.RawMessage    `json:"result,omitempty"`
	Error    string             `json:"error,omitempty"`
}

func (s *Server) snapshotRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/snapshots", s.listSnapshots)
	mux.HandleFunc("GET /v1/snapshots/status", s.snapshotStatus)
	mux.HandleFunc("GET /v1/snapshots/runs", s.snapshotRuns)
	mux.HandleFunc("POST /v1/snapshots", s.takeSnapshot)
	mux.HandleFunc("POST /v1/snapshots/verify", s.verifySnapshot)
	mux.HandleFunc("POST /v1/snapshots/prune", s.pruneSnapshots)
	mux.HandleFunc("POST /v1/snapshots/schedule", s.setSchedule)
	mux.HandleFunc("POST /v1/recovery-key", s.newRecoveryKey)
	mux.HandleFunc("POST /v1/restore", s.restore)
	mux.HandleFunc("GET /v1/targets", s.listTargets)
	mux.HandleFunc("POST /v1/targets", s.addTarget)
	mux.HandleFunc("POST /v1/targets/test", s.testTarget)
	mux.HandleFunc("DELETE /v1/targets/{name}", s.removeTarget)
}

// stream runs fn, sending its progress as NDJSON lines and its result last. Progress is
// throttled so a fast operation does not flood the socket.
func stream(w http.ResponseWriter, fn func(progress func(snapshot.Progress)) (any, error)) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	var last time.Time
	var lastPhase string
	res, err := fn(func(p snapshot.Progress) {
		if p.Phase == lastPhase && time.Since(last) < 200*time.Millisecond {
			return
		}
		last, lastPhase = time.Now(), p.Phase
		enc.Encode(StreamLine{Progress: &p}) //nolint:errcheck // the client went away; the work goes on
		if flusher != nil {
			flusher.Flush()
		}
	})
	line := StreamLine{}
	if err != nil {
		line.Error = err.Error()
	} else {
		line.Result, _ = json.Marshal(res)
	}
	enc.Encode(line) //nolint:errcheck
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	list, err := s.Backup.List(r.Context(), r.URL.Query().Get("target"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) snapshotStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Backup.Status(r.Context(), time.Now())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) snapshotRuns(w http.ResponseWriter, r *http.Request) {
	runs, err := s.Backup.Runs(r.Context(), 50)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, runs)
}

func (s *Server) takeSnapshot(w http.ResponseWriter, r *http.Request) {
	var req SnapshotRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	// The work is not tied to the request: a CLI that is interrupted must not leave half
	// a snapshot behind on purpose.
	ctx := context.WithoutCancel(r.Context())
	stream(w, func(p func(snapshot.Progress)) (any, error) { return s.Backup.Snapshot(ctx, req.Target, "manual", p) })
}

func (s *Server) verifySnapshot(w http.ResponseWriter, r *http.Request) {
	var req SnapshotRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	stream(w, func(p func(snapshot.Progress)) (any, error) {
		return s.Backup.Verify(r.Context(), req.Target, req.ID, p)
	})
}

func (s *Server) pruneSnapshots(w http.ResponseWriter, r *http.Request) {
	var req SnapshotRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	res, err := s.Backup.Prune(r.Context(), req.Target)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) setSchedule(w http.ResponseWriter, r *http.Request) {
	var req ScheduleRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	if err := SetSchedule(r.Context(), s.Store, s.Backup, cli, req); err != nil {
		WriteError(w, err)
		return
	}
	s.snapshotStatus(w, r)
}

// SetSchedule validates and stores a schedule change (the console uses it too).
func SetSchedule(ctx context.Context, store *settings.Store, b *backup.Service, actor audit.Actor, req ScheduleRequest) error {
	if req.Time != "" {
		if _, _, err := backup.ParseTime(req.Time); err != nil {
			return &FieldError{Field: "time", Err: err}
		}
	}
	if req.Retention != "" {
		if _, err := snapshot.ParseRetention(req.Retention); err != nil {
			return &FieldError{Field: "retention", Err: err}
		}
	}
	if req.Escrow != "" && req.Escrow != "-" {
		if _, err := snapshot.ParseRecipient(req.Escrow); err != nil {
			return &FieldError{Field: "escrow", Err: err}
		}
	}
	if req.Target != "" {
		if _, err := b.Targets.Get(ctx, req.Target); err != nil {
			return &FieldError{Field: "target", Err: err}
		}
	}
	return store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		var changes []string
		set := func(name string, p *string, v string) {
			if v != "" && *p != v {
				*p = v
				changes = append(changes, name+"="+v)
			}
		}
		set("target", &st.SnapshotTarget, req.Target)
		set("time", &st.SnapshotTime, req.Time)
		set("retention", &st.SnapshotRetention, req.Retention)
		if req.Escrow == "-" {
			req.Escrow, st.EscrowRecipient = "", ""
			changes = append(changes, "escrow=none")
		}
		set("escrow", &st.EscrowRecipient, req.Escrow)
		if req.Off != nil && st.SnapshotsOff != *req.Off {
			st.SnapshotsOff = *req.Off
			changes = append(changes, fmt.Sprintf("off=%t", *req.Off))
		}
		if len(changes) == 0 {
			return settings.ErrUnchanged
		}
		return audit.Record(ctx, tx, actor.String(), "snapshots.schedule", "", strings.Join(changes, " "))
	})
}

func (s *Server) newRecoveryKey(w http.ResponseWriter, r *http.Request) {
	id, pub, err := s.Backup.NewRecoveryKey(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	audit.Record(r.Context(), s.Store.DB(), cli.String(), "snapshots.recovery-key", "", pub) //nolint:errcheck
	fp, _ := s.Backup.SigningFingerprint(r.Context())
	writeJSON(w, http.StatusOK, RecoveryKeyResponse{Identity: id, Recipient: pub, SigningFingerprint: fp})
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) {
	var req RestoreRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	var cfg target.Config
	switch {
	case req.Config != nil:
		cfg = *req.Config
	case req.Target != "":
		c, err := s.Backup.Targets.Get(ctx, req.Target)
		if err != nil {
			WriteError(w, err)
			return
		}
		cfg = c
	default:
		WriteError(w, &FieldError{Field: "target", Err: errors.New("name a configured target or describe one")})
		return
	}
	stream(w, func(p func(snapshot.Progress)) (any, error) {
		res, err := s.Backup.StageRestore(ctx, cfg, req.ID, req.RecoveryKey, p)
		if err != nil {
			return nil, err
		}
		audit.Record(ctx, s.Store.DB(), cli.String(), "snapshots.restore", res.ID, "staged; outpostd restarts to apply it") //nolint:errcheck
		if s.Restart != nil {
			// After the answer is out: the restart closes this connection.
			time.AfterFunc(500*time.Millisecond, s.Restart)
		}
		return res, nil
	})
}

func (s *Server) listTargets(w http.ResponseWriter, r *http.Request) {
	list, err := s.Backup.Targets.List(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	out := make([]target.Config, 0, len(list))
	for _, c := range list {
		out = append(out, c.Redacted())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) addTarget(w http.ResponseWriter, r *http.Request) {
	var c target.Config
	if !ReadJSON(w, r, &c) {
		return
	}
	if err := AddTarget(r.Context(), s.Store, s.Backup, cli, c); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c.Redacted())
}

// AddTarget validates, tests (write, read back, delete a probe file) and stores a target. The
// first target becomes the scheduled one.
func AddTarget(ctx context.Context, store *settings.Store, b *backup.Service, actor audit.Actor, c target.Config) error {
	if err := c.Validate(); err != nil {
		return &FieldError{Err: err}
	}
	if err := b.TestTarget(ctx, c); err != nil {
		return &FieldError{Err: fmt.Errorf("the target does not work: %w", err)}
	}
	if err := b.Targets.Put(ctx, c); err != nil {
		return err
	}
	return store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		if st.SnapshotTarget == "" {
			st.SnapshotTarget = c.Name
		}
		return audit.Record(ctx, tx, actor.String(), "targets.add", c.Name, c.Kind)
	})
}

func (s *Server) testTarget(w http.ResponseWriter, r *http.Request) {
	var req TargetTestRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	c := req.Config
	if c == nil {
		cfg, err := s.Backup.Targets.Get(r.Context(), req.Name)
		if err != nil {
			WriteError(w, err)
			return
		}
		c = &cfg
	}
	if err := s.Backup.TestTarget(r.Context(), *c); err != nil {
		WriteError(w, &FieldError{Err: fmt.Errorf("target %s does not work: %w", c.Name, err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
}

func (s *Server) removeTarget(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.Backup.Targets.Delete(r.Context(), name); err != nil {
		WriteError(w, err)
		return
	}
	s.Store.UpdateTx(r.Context(), func(tx *sql.Tx, st *settings.Settings) error { //nolint:errcheck
		if st.SnapshotTarget == name {
			st.SnapshotTarget = ""
		}
		return audit.Record(r.Context(), tx, cli.String(), "targets.remove", name, "")
	})
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
}

// FieldError is a request the caller must fix; Field names the input when there is one.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Client side.

// Snapshot takes a snapshot now, reporting progress.
func (c *Client) Snapshot(ctx context.Context, req SnapshotRequest, progress func(snapshot.Progress)) (backup.SnapshotResult, error) {
	var out backup.SnapshotResult
	err := c.stream(ctx, "/v1/snapshots", req, progress, &out)
	return out, err
}

// Verify test-restores a snapshot.
func (c *Client) Verify(ctx context.Context, req SnapshotRequest, progress func(snapshot.Progress)) (snapshot.VerifyResult, error) {
	var out snapshot.VerifyResult
	err := c.stream(ctx, "/v1/snapshots/verify", req, progress, &out)
	return out, err
}

// Restore stages a restore; outpostd restarts to apply it.
func (c *Client) Restore(ctx context.Context, req RestoreRequest, progress func(snapshot.Progress)) (snapshot.RestoreResult, error) {
	var out snapshot.RestoreResult
	err := c.stream(ctx, "/v1/restore", req, progress, &out)
	return out, err
}

// Prune applies retention now.
func (c *Client) Prune(ctx context.Context, req SnapshotRequest) (snapshot.PruneResult, error) {
	var out snapshot.PruneResult
	err := c.call(ctx, http.MethodPost, "/v1/snapshots/prune", req, &out)
	return out, err
}

// Snapshots lists the snapshots on a target.
func (c *Client) Snapshots(ctx context.Context, targetName string) ([]snapshot.Entry, error) {
	var out []snapshot.Entry
	err := c.call(ctx, http.MethodGet, "/v1/snapshots?target="+url.QueryEscape(targetName), nil, &out)
	return out, err
}

// SnapshotStatus returns the schedule, last runs and alerts.
func (c *Client) SnapshotStatus(ctx context.Context) (backup.Status, error) {
	var out backup.Status
	err := c.call(ctx, http.MethodGet, "/v1/snapshots/status", nil, &out)
	return out, err
}

// SetSchedule changes the schedule.
func (c *Client) SetSchedule(ctx context.Context, req ScheduleRequest) (backup.Status, error) {
	var out backup.Status
	err := c.call(ctx, http.MethodPost, "/v1/snapshots/schedule", req, &out)
	return out, err
}

// NewRecoveryKey creates a recovery key.
func (c *Client) NewRecoveryKey(ctx context.Context) (RecoveryKeyResponse, error) {
	var out RecoveryKeyResponse
	err := c.call(ctx, http.MethodPost, "/v1/recovery-key", struct{}{}, &out)
	return out, err
}

// Targets lists the targets (secrets redacted).
func (c *Client) Targets(ctx context.Context) ([]target.Config, error) {
	var out []target.Config
	err := c.call(ctx, http.MethodGet, "/v1/targets", nil, &out)
	return out, err
}

// AddTarget tests and adds a target.
func (c *Client) AddTarget(ctx context.Context, cfg target.Config) error {
	return c.call(ctx, http.MethodPost, "/v1/targets", cfg, nil)
}

// TestTarget tests a target.
func (c *Client) TestTarget(ctx context.Context, req TargetTestRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/targets/test", req, nil)
}

// RemoveTarget removes a target.
func (c *Client) RemoveTarget(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/targets/"+url.PathEscape(name), nil, nil)
}

func (c *Client) stream(ctx context.Context, path string, in any, progress func(snapshot.Progress), out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://outpostd"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return answerError(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line StreamLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("decode outpostd answer: %w", err)
		}
		switch {
		case line.Progress != nil:
			if progress != nil {
				progress(*line.Progress)
			}
		case line.Error != "":
			return &Error{Message: line.Error}
		default:
			return json.Unmarshal(line.Result, out)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read outpostd answer: %w", err)
	}
	return errors.New("outpostd ended the answer early (did it restart?)")
}
