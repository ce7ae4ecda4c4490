// Package provision applies a provisioning manifest (package provisioning) at first boot:
// it finds the manifest (boot partition, USB stick, or -provision), checks its signature
// when a company key is pinned, completes setup through the same setup.Service as the wizard
// and the CLI, configures snapshots, and then consumes the manifest so a stolen stick does not
// reveal its secrets.
package provision

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/atomicfile"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/netcfg"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/provisioning"
)

// FileName is the manifest's name on a boot partition or USB stick.
const FileName = "outpost-provision.json"

// Source is one place a manifest may be.
type Source struct {
	Kind string // "boot partition", "USB stick", "command line"
	Path string
}

// Find returns the first manifest that exists among sources, in order.
func Find(sources []Source) (Source, bool) {
	for _, s := range sources {
		if fi, err := os.Stat(s.Path); err == nil && fi.Mode().IsRegular() {
			return s, true
		}
	}
	return Source{}, false
}

// Load reads a manifest and its detached signature and checks both. With a pinned key, an
// unsigned or wrongly signed manifest is refused.
func Load(src Source, pinned ed25519.PublicKey) (*provisioning.Manifest, error) {
	data, err := os.ReadFile(src.Path)
	if err != nil {
		return nil, fmt.Errorf("read the manifest on the %s: %w", src.Kind, err)
	}
	if pinned != nil {
		sig, err := os.ReadFile(src.Path + provisioning.SigSuffix)
		if errors.Is(err, fs.ErrNotExist) {
			sig = nil
		} else if err != nil {
			return nil, fmt.Errorf("read the manifest's signature: %w", err)
		}
		if err := provisioning.Verify(pinned, data, sig); err != nil {
			return nil, err
		}
	}
	m, err := provisioning.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("the manifest %s is not valid: %w", src.Path, err)
	}
	return m, nil
}

// Applier applies manifests.
type Applier struct {
	Setup    *setup.Service
	Store    *settings.Store
	Backup   *backup.Service
	HSConfig func(context.Context) (homeserver.Config, error)
	Log      *slog.Logger
	// Network applies the manifest's network configuration with the console's safety net
	// and returns once it is kept (the gateway answered) or rolled back (an error).
	Network func(ctx context.Context, c netcfg.Config, actor audit.Actor) error
}

// Apply sets the box up from m. It is the wizard's path: setup.Complete does the work, then
// the parts the wizard leaves to the console (snapshots, branding, network) are stored.
func (a *Applier) Apply(ctx context.Context, m *provisioning.Manifest, src Source) error {
	actor := audit.Actor{Via: "provisioning (" + src.Kind + ")"}
	// The network first: the box's root certificate, made during setup, vouches for the
	// addresses the box has then.
	if m.Network != nil && a.Network != nil {
		if err := a.Network(ctx, *m.Network, actor); err != nil {
			// The rest of the manifest still applies; the box keeps DHCP and says why.
			a.Log.Error("the manifest's network configuration did not work; staying on DHCP", "err", err)
		}
	}
	req := setup.Request{ServerName: m.ServerName, AdminUser: m.Admin.Username, AdminPassword: m.Admin.OneTimePassword, Federation: m.Federation}
	if m.Admin.PasswordHash != "" {
		// The account is created with a throwaway password that nobody learns, then given
		// the hash from headquarters.
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		req.AdminPassword = base64.RawURLEncoding.EncodeToString(b)
	}
	if m.TLS != nil {
		req.TLSMode, req.ACMEDirectory, req.ACMERootPEM = m.TLS.Mode, m.TLS.ACMEDirectory, m.TLS.ACMERootPEM
	}
	if err := a.Setup.Complete(ctx, actor, req); err != nil {
		return fmt.Errorf("setup from the manifest: %w", err)
	}
	if m.Admin.PasswordHash != "" {
		cfg, err := a.HSConfig(ctx)
		if err != nil {
			return err
		}
		if err := homeserver.SetPasswordHash(ctx, cfg, m.Admin.Username, m.Admin.PasswordHash); err != nil {
			return fmt.Errorf("set the administrator's password: %w", err)
		}
	}
	if s := m.Snapshots; s != nil {
		// Stored without a probe: the target may not be reachable at the minute the box
		// first boots (a NAS still starting). The first snapshot below says if it is not.
		if err := a.Backup.Targets.Put(ctx, s.Target); err != nil {
			return fmt.Errorf("store the snapshot target: %w", err)
		}
	}
	err := a.Store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		if m.Admin.OneTimePassword != "" {
			st.PasswordChangeRequired = addToList(st.PasswordChangeRequired, m.Admin.Username)
		}
		if s := m.Snapshots; s != nil {
			st.SnapshotTarget = s.Target.Name
			st.SnapshotTime, st.SnapshotRetention = s.Time, s.Retention
			st.RecoveryRecipient, st.EscrowRecipient = strings.TrimSpace(s.RecoveryRecipient), strings.TrimSpace(s.EscrowRecipient)
		}
		if b := m.Branding; b != nil {
			st.BrandName, st.SupportContact = b.Name, b.SupportContact
		}
		st.ProvisionedFrom = src.Kind + ": " + src.Path
		st.ProvisionedAt = time.Now().UTC()
		return audit.Record(ctx, tx, actor.String(), "provision.apply", m.ServerName, "from "+src.Path)
	})
	if err != nil {
		return err
	}
	a.Log.Info("box provisioned", "source", src.Kind, "path", src.Path, "server_name", m.ServerName, "admin", m.Admin.Username,
		"snapshots", m.Snapshots != nil, "one_time_password", m.Admin.OneTimePassword != "")
	return nil
}

func addToList(list, item string) string {
	for _, x := range strings.Split(list, ",") {
		if x == item {
			return list
		}
	}
	if list == "" {
		return item
	}
	return list + "," + item
}

// InList reports whether item is in a comma-separated list.
func InList(list, item string) bool {
	for _, x := range strings.Split(list, ",") {
		if x != "" && x == item {
			return true
		}
	}
	return false
}

// RemoveFromList removes item from a comma-separated list.
func RemoveFromList(list, item string) string {
	var out []string
	for _, x := range strings.Split(list, ",") {
		if x != "" && x != item {
			out = append(out, x)
		}
	}
	return strings.Join(out, ",")
}

// Consume makes an applied manifest harmless where it lies: a copy without secrets is left
// as <name>.applied (so the person at the box sees what happened) and the original and its
// signature are deleted. Boot partitions and sticks can be read-only: the error says so and
// the caller tells the console.
func Consume(src Source, m *provisioning.Manifest) error {
	red := m.Redacted()
	b, err := json.MarshalIndent(red, "", "  ")
	if err != nil {
		return err
	}
	applied := strings.TrimSuffix(src.Path, filepath.Ext(src.Path)) + ".applied.json"
	if err := atomicfile.Write(applied, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", applied, err)
	}
	for _, p := range []string{src.Path, src.Path + provisioning.SigSuffix} {
		// Overwrite before deleting: a deleted file's blocks keep its content on a stick
		// or partition until something else is written there.
		if err := zeroFill(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot wipe %s (it holds secrets; delete it by hand): %w", p, err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot delete %s (it holds secrets; delete it by hand): %w", p, err)
		}
	}
	return atomicfile.SyncDir(filepath.Dir(src.Path))
}

// zeroFill overwrites a file's content in place and syncs it.
func zeroFill(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Write(make([]byte, fi.Size())); err != nil {
		return err
	}
	return f.Sync()
}
