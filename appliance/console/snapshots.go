package console

import (
	"context"
	"net/http"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/qrcode"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
)

// snapshotsView is the Snapshots tab in one answer.
type snapshotsView struct {
	Status    backup.Status    `json:"status"`
	Targets   []target.Config  `json:"targets"`
	Snapshots []snapshot.Entry `json:"snapshots"`
	// ListError says why the scheduled target's snapshots could not be listed.
	ListError string `json:"list_error,omitempty"`
}

// recoveryKeyView is a new recovery key with what the printable sheet needs.
type recoveryKeyView struct {
	adminapi.RecoveryKeyResponse
	ServerName string    `json:"server_name"`
	CreatedAt  time.Time `json:"created_at"`
	// QR is the key as a QR code, one string per row, '1' for a dark module.
	QR []string `json:"qr"`
}

func (c *Console) snapshotRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/api/snapshots", c.admin(c.snapshots))
	mux.HandleFunc("POST /admin/api/snapshots", c.admin(c.snapshotNow))
	mux.HandleFunc("POST /admin/api/snapshots/schedule", c.admin(c.snapshotSchedule))
	mux.HandleFunc("POST /admin/api/recovery-key", c.admin(c.recoveryKey))
	mux.HandleFunc("POST /admin/api/targets", c.admin(c.addTarget))
	mux.HandleFunc("POST /admin/api/targets/{name}/test", c.admin(c.testTarget))
	mux.HandleFunc("POST /admin/api/targets/{name}/remove", c.admin(c.removeTarget))
}

func (c *Console) snapshots(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	ctx := r.Context()
	var v snapshotsView
	var err error
	if v.Status, err = c.Backup.Status(ctx, time.Now()); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	list, err := c.Backup.Targets.List(ctx)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	for _, t := range list {
		v.Targets = append(v.Targets, t.Redacted())
	}
	if v.Status.Target != "" {
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if v.Snapshots, err = c.Backup.List(lctx, ""); err != nil {
			v.ListError = err.Error()
		}
	}
	adminapi.WriteJSON(w, http.StatusOK, v)
}

func (c *Console) snapshotNow(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	// Not tied to the page: closing the tab must not cut a snapshot short.
	ctx := context.WithoutCancel(r.Context())
	audit.Record(ctx, c.Store.DB(), actor.String(), "snapshots.now", "", "") //nolint:errcheck
	res, err := c.Backup.Snapshot(ctx, "", "manual", nil)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, res)
}

func (c *Console) snapshotSchedule(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var req adminapi.ScheduleRequest
	if !adminapi.ReadJSON(w, r, &req) {
		return
	}
	if err := adminapi.SetSchedule(r.Context(), c.Store, c.Backup, actor, req); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	c.snapshots(w, r, actor)
}

func (c *Console) recoveryKey(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	ctx := r.Context()
	id, pub, err := c.Backup.NewRecoveryKey(ctx)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	audit.Record(ctx, c.Store.DB(), actor.String(), "snapshots.recovery-key", "", pub) //nolint:errcheck
	fp, _ := c.Backup.SigningFingerprint(ctx)
	st, _ := c.Store.Get(ctx)
	v := recoveryKeyView{
		RecoveryKeyResponse: adminapi.RecoveryKeyResponse{Identity: id, Recipient: pub, SigningFingerprint: fp},
		ServerName:          st.ServerName, CreatedAt: time.Now().UTC(),
	}
	if v.QR, err = qrcode.Rows(id); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, v)
}

func (c *Console) addTarget(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var cfg target.Config
	if !adminapi.ReadJSON(w, r, &cfg) {
		return
	}
	if err := adminapi.AddTarget(r.Context(), c.Store, c.Backup, actor, cfg); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	c.snapshots(w, r, actor)
}

func (c *Console) testTarget(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	cfg, err := c.Backup.Targets.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	if err := c.Backup.TestTarget(r.Context(), cfg); err != nil {
		adminapi.WriteError(w, &adminapi.FieldError{Err: err})
		return
	}
	adminapi.WriteJSON(w, http.StatusOK, map[string]string{"result": "Target " + cfg.Name + " works: a test file was written, read back and deleted."})
}

func (c *Console) removeTarget(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	name := r.PathValue("name")
	if err := c.Backup.Targets.Delete(r.Context(), name); err != nil {
		adminapi.WriteError(w, err)
		return
	}
	c.Store.Update(r.Context(), func(st *settings.Settings) error { //nolint:errcheck
		if st.SnapshotTarget == name {
			st.SnapshotTarget = ""
		}
		return nil
	})
	audit.Record(r.Context(), c.Store.DB(), actor.String(), "targets.remove", name, "") //nolint:errcheck
	c.snapshots(w, r, actor)
}
