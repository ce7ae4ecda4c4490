package wizard

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/qrcode"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/dial"
)

// recoveryKey creates the operator's recovery key during setup. Only its public half is
// stored; the page shows the key once, as text, QR code and a printable sheet.
func (wz *Wizard) recoveryKey(w http.ResponseWriter, r *http.Request) {
	sess, ok := wz.session(w, r)
	if !ok {
		return
	}
	id, pub, err := wz.Backup.NewRecoveryKey(r.Context())
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	fp, _ := wz.Backup.SigningFingerprint(r.Context())
	rows, err := qrcode.Rows(id)
	if err != nil {
		adminapi.WriteError(w, err)
		return
	}
	d := sess.Data.(*draft)
	d.mu.Lock()
	d.recipient = pub
	name := d.ServerName
	d.mu.Unlock()
	adminapi.WriteJSON(w, http.StatusOK, map[string]any{
		"identity": id, "recipient": pub, "signing_fingerprint": fp, "qr": rows,
		"server_name": name, "created_at": time.Now().UTC(),
	})
}

type restoreRequest struct {
	Config      target.Config `json:"config"`
	RecoveryKey string        `json:"recovery_key"`
	ID          string        `json:"id"`
}

type restoreListing struct {
	Snapshots  []snapshot.Entry `json:"snapshots"`
	ServerName string           `json:"server_name"`
	// Fingerprint of the key the target's manifests are signed with, to compare with the
	// recovery sheet.
	Fingerprint string `json:"signing_fingerprint"`
}

// restoreList opens a target, lists its snapshots and proves the recovery key opens the
// newest, before anything is restored.
func (wz *Wizard) restoreList(w http.ResponseWriter, r *http.Request) {
	if _, ok := wz.session(w, r); !ok {
		return
	}
	var in restoreRequest
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	in.Config.Name = "restore-source"
	identity, err := snapshot.ParseIdentity(in.RecoveryKey)
	if err != nil {
		adminapi.WriteError(w, &adminapi.FieldError{Field: "recovery_key", Err: err})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	t, err := dial.Open(ctx, in.Config)
	if err != nil {
		adminapi.WriteError(w, &adminapi.FieldError{Err: err})
		return
	}
	defer t.Close()
	list, err := snapshot.List(ctx, t)
	if err != nil {
		adminapi.WriteError(w, &adminapi.FieldError{Err: err})
		return
	}
	var out restoreListing
	for _, e := range list {
		if e.Complete {
			out.Snapshots = append(out.Snapshots, e)
		}
	}
	if len(out.Snapshots) == 0 {
		adminapi.WriteError(w, &adminapi.FieldError{Err: errors.New("no complete snapshot found there: check the target and its folder")})
		return
	}
	newest := out.Snapshots[len(out.Snapshots)-1]
	m, err := snapshot.ReadManifest(ctx, t, newest.ID, identity, nil)
	if err != nil {
		adminapi.WriteError(w, &adminapi.FieldError{Field: "recovery_key", Err: err})
		return
	}
	out.ServerName = m.ServerName
	if pub, err := snapshot.TargetSigningKey(ctx, t); err == nil {
		out.Fingerprint = snapshot.Fingerprint(pub)
	}
	adminapi.WriteJSON(w, http.StatusOK, out)
}

// restore stages the chosen snapshot and restarts outpostd into it.
func (wz *Wizard) restore(w http.ResponseWriter, r *http.Request) {
	if _, ok := wz.session(w, r); !ok {
		return
	}
	var in restoreRequest
	if !adminapi.ReadJSON(w, r, &in) {
		return
	}
	in.Config.Name = "restore-source"
	ctx := context.WithoutCancel(r.Context())
	res, err := wz.Backup.StageRestore(ctx, in.Config, in.ID, in.RecoveryKey, nil)
	if err != nil {
		var fe *accounts.FieldError
		if errors.As(err, &fe) {
			adminapi.WriteError(w, err)
			return
		}
		adminapi.WriteError(w, &adminapi.FieldError{Err: err})
		return
	}
	wz.Log.Info("restore staged from the setup page; restarting", "snapshot", res.ID)
	wz.sessions.End(w, r)
	adminapi.WriteJSON(w, http.StatusOK, res)
	if wz.Restart != nil {
		time.AfterFunc(500*time.Millisecond, wz.Restart)
	}
}
