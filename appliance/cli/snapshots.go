package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/dial"
)

const snapshotUsage = `
Snapshots:
  snapshot now [--target NAME]          take a snapshot, verify it by a test restore, prune old ones
  snapshot list [--target NAME] [--json]
  snapshot verify [--target NAME] [--id ID]
                                        test-restore a snapshot (default: the newest)
  snapshot prune [--target NAME]        apply the retention policy now
  snapshot status [--json]              last snapshot, last verified restore, alerts
  snapshot schedule [--target NAME] [--time HH:MM] [--retention "7d 4w 6m"] [--on|--off]
                    [--escrow age1...|-]
  recovery-key new                      create the recovery key (printed once, keep it offline)
  targets list [--json]
  targets add --name NAME --kind local|smb|sftp|s3|webdav [target flags]
                                        test a target (write, read back, delete) and add it
  targets test NAME                     test a configured target again
  targets remove NAME
  restore (--target NAME | --kind KIND [target flags]) [--id ID] --recovery-key FILE
                                        restore a snapshot; with outpostd running it restarts
                                        to apply it, otherwise the data dir is restored directly

Target flags: --path DIR (local) --host H --port N --user U --password-stdin --share S
  --domain D (smb) --private-key FILE --host-key "ssh-ed25519 AAAA..." (sftp) --endpoint
  HOST:PORT --bucket B --region R --access-key K --secret-key-stdin --http (s3) --url URL
  (webdav) --ca FILE (s3, webdav) --dir SUBDIR
`

func snapshotCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	if len(args) == 0 {
		return usageError{"snapshot: give a subcommand: now, list, verify, prune, status, schedule"}
	}
	fs := flag.NewFlagSet("snapshot "+args[0], flag.ContinueOnError)
	tgt := fs.String("target", "", "target name (default: the scheduled one)")
	asJSON := fs.Bool("json", false, "print JSON")
	switch args[0] {
	case "now":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		res, err := c.Snapshot(ctx, adminapi.SnapshotRequest{Target: *tgt}, progressPrinter(env))
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, res)
		}
		s := res.Snapshot
		fmt.Fprintf(env.Stdout, "snapshot %s taken in %s (homeserver paused %.1f ms): state %s, %d media files (%d new), %s written\n",
			s.ID, s.Duration.Round(time.Millisecond), s.PauseMillis, bytesize(s.StateBytes), s.MediaFiles, s.MediaUploaded, bytesize(s.UploadedBytes))
		if v := res.Verify; v != nil {
			fmt.Fprintf(env.Stdout, "verified restorable: %d files, %d databases pass integrity_check, %d media objects present (%d decrypted) in %s\n",
				v.Files, v.Databases, v.Media, v.MediaDecrypted, v.Duration.Round(time.Millisecond))
		}
		if p := res.Prune; p != nil && len(p.Deleted) > 0 {
			fmt.Fprintf(env.Stdout, "pruned %d old snapshots and %d objects (%s freed)\n", len(p.Deleted), p.ObjectsDeleted, bytesize(p.BytesFreed))
		}
		return nil
	case "list":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		list, err := c.Snapshots(ctx, *tgt)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, list)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTAKEN\tSIZE\tSTATE")
		for _, e := range list {
			state := "complete"
			if !e.Complete {
				state = "incomplete (interrupted; cleaned up by the next run)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Time.Local().Format("2006-01-02 15:04"), bytesize(e.Size), state)
		}
		return tw.Flush()
	case "verify":
		id := fs.String("id", "", "snapshot ID (default: the newest)")
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		v, err := c.Verify(ctx, adminapi.SnapshotRequest{Target: *tgt, ID: *id}, progressPrinter(env))
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, v)
		}
		fmt.Fprintf(env.Stdout, "snapshot %s is restorable: %d files match, %d databases pass integrity_check, %d media objects present (%d decrypted) in %s\n",
			v.ID, v.Files, v.Databases, v.Media, v.MediaDecrypted, v.Duration.Round(time.Millisecond))
		return nil
	case "prune":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		p, err := c.Prune(ctx, adminapi.SnapshotRequest{Target: *tgt})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "kept %d snapshots; deleted %d snapshots and %d objects (%s freed)\n", p.Kept, len(p.Deleted), p.ObjectsDeleted, bytesize(p.BytesFreed))
		return nil
	case "status":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		st, err := c.SnapshotStatus(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, st)
		}
		onOff := "on"
		if !st.Enabled {
			onOff = "OFF"
		}
		fmt.Fprintf(env.Stdout, "snapshots:      %s, daily at %s, keep %s\n", onOff, st.Time, st.Retention)
		fmt.Fprintf(env.Stdout, "target:         %s\n", orNone(st.Target))
		fmt.Fprintf(env.Stdout, "recovery key:   %s\n", map[bool]string{true: "set", false: "NOT SET (outpost recovery-key new)"}[st.RecoveryKeySet])
		if r := st.LastSnapshot; r != nil {
			fmt.Fprintf(env.Stdout, "last snapshot:  %s %s\n", r.StartedAt.Local().Format("2006-01-02 15:04"), r.SnapshotID)
		} else {
			fmt.Fprintln(env.Stdout, "last snapshot:  none")
		}
		if r := st.LastVerified; r != nil {
			fmt.Fprintf(env.Stdout, "last verified:  %s %s\n", r.StartedAt.Local().Format("2006-01-02 15:04"), r.SnapshotID)
		} else {
			fmt.Fprintln(env.Stdout, "last verified:  none")
		}
		if !st.NextRun.IsZero() {
			fmt.Fprintf(env.Stdout, "next run:       %s\n", st.NextRun.Local().Format("2006-01-02 15:04"))
		}
		for _, a := range st.Alerts {
			fmt.Fprintf(env.Stdout, "ALERT: %s\n", a)
		}
		return nil
	case "schedule":
		at := fs.String("time", "", "daily time, HH:MM local")
		ret := fs.String("retention", "", `e.g. "7d 4w 6m"`)
		on := fs.Bool("on", false, "turn scheduled snapshots on")
		off := fs.Bool("off", false, "turn scheduled snapshots off")
		escrow := fs.String("escrow", "", "company escrow public key (age1...), - to remove")
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		req := adminapi.ScheduleRequest{Target: *tgt, Time: *at, Retention: *ret, Escrow: *escrow}
		if *on && *off {
			return usageError{"snapshot schedule: --on or --off, not both"}
		}
		if *on || *off {
			req.Off = off
		}
		if _, err := c.SetSchedule(ctx, req); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "schedule saved")
		return nil
	}
	return usageError{fmt.Sprintf("snapshot: unknown subcommand %q", args[0])}
}

func recoveryKeyCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	if len(args) != 1 || args[0] != "new" {
		return usageError{"recovery-key: the only subcommand is new"}
	}
	k, err := c.NewRecoveryKey(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "This is the recovery key. It is shown once and not stored on the box.\nPrint it or write it down, and keep it away from the box: with it, any snapshot can be\nrestored on a new box, or by hand (README-RESTORE.txt on the target).\nSnapshots are signed by the key with fingerprint %s.\n\n", k.SigningFingerprint)
	fmt.Fprintf(env.Stdout, "# Outpost recovery key, public key %s\n%s\n", k.Recipient, k.Identity)
	return nil
}

// targetFlags registers the flags that describe a target and returns a function building
// the configuration after parsing.
func targetFlags(fs *flag.FlagSet, env Env) func(name string) (target.Config, error) {
	kind := fs.String("kind", "", "local, smb, sftp, s3 or webdav")
	path := fs.String("path", "", "local: directory")
	host := fs.String("host", "", "smb, sftp: server")
	port := fs.Int("port", 0, "port (default: the protocol's)")
	user := fs.String("user", "", "account")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	share := fs.String("share", "", "smb: share")
	domain := fs.String("domain", "", "smb: domain")
	keyFile := fs.String("private-key", "", "sftp: OpenSSH private key file")
	hostKey := fs.String("host-key", "", "sftp: the server's public host key, pinned")
	endpoint := fs.String("endpoint", "", "s3: host:port")
	bucket := fs.String("bucket", "", "s3: bucket")
	region := fs.String("region", "", "s3: region")
	access := fs.String("access-key", "", "s3: access key ID")
	secretStdin := fs.Bool("secret-key-stdin", false, "s3: read the secret key from standard input")
	plainHTTP := fs.Bool("http", false, "s3: plain HTTP")
	u := fs.String("url", "", "webdav: URL")
	caFile := fs.String("ca", "", "s3, webdav: extra root CA (PEM file)")
	dir := fs.String("dir", "", "subdirectory on the target")
	return func(name string) (target.Config, error) {
		c := target.Config{Name: name, Kind: *kind, Path: *path, Host: *host, Port: *port, User: *user, Share: *share, Domain: *domain,
			HostKey: *hostKey, Endpoint: *endpoint, Bucket: *bucket, Region: *region, AccessKey: *access, HTTP: *plainHTTP, URL: *u, Dir: *dir}
		if *pwStdin || *secretStdin {
			secret, err := readLine(env.Stdin)
			if err != nil {
				return c, err
			}
			if *pwStdin {
				c.Password = secret
			} else {
				c.SecretKey = secret
			}
		}
		for _, f := range []struct {
			file string
			dst  *string
		}{{*keyFile, &c.PrivateKey}, {*caFile, &c.CAPEM}} {
			if f.file == "" {
				continue
			}
			b, err := os.ReadFile(f.file)
			if err != nil {
				return c, err
			}
			*f.dst = string(b)
		}
		if c.Kind == target.KindLocal && c.Path != "" && !strings.HasPrefix(c.Path, "/") {
			if abs, err := filepath.Abs(c.Path); err == nil {
				c.Path = abs
			}
		}
		return c, c.Validate()
	}
}

func readLine(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

func targetsCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	if len(args) == 0 {
		return usageError{"targets: give a subcommand: list, add, test, remove"}
	}
	fs := flag.NewFlagSet("targets "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "list":
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		list, err := c.Targets(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, list)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tWHERE")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Kind, where(t))
		}
		return tw.Flush()
	case "add":
		name := fs.String("name", "", "a short label")
		build := targetFlags(fs, env)
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		cfg, err := build(*name)
		if err != nil {
			return usageError{err.Error()}
		}
		if err := c.AddTarget(ctx, cfg); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "target %s works (a test file was written, read back and deleted) and was added\n", cfg.Name)
		return nil
	case "test":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"targets test: give the target's name"}
		}
		if err := c.TestTarget(ctx, adminapi.TargetTestRequest{Name: pos[0]}); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "target %s works\n", pos[0])
		return nil
	case "remove":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"targets remove: give the target's name"}
		}
		if err := c.RemoveTarget(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "target %s removed (its snapshots stay where they are)\n", pos[0])
		return nil
	}
	return usageError{fmt.Sprintf("targets: unknown subcommand %q", args[0])}
}

func where(t target.Config) string {
	switch t.Kind {
	case target.KindLocal:
		return t.Path
	case target.KindSMB:
		return "//" + t.Host + "/" + t.Share + "/" + t.Dir
	case target.KindSFTP:
		return t.User + "@" + t.Host + ":" + t.Dir
	case target.KindS3:
		return t.Endpoint + "/" + t.Bucket + "/" + t.Dir
	case target.KindWebDAV:
		return t.URL
	}
	return ""
}

func restoreCmd(ctx context.Context, c *adminapi.Client, dataDir string, args []string, env Env) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	name := fs.String("target", "", "a configured target")
	id := fs.String("id", "", "snapshot ID (default: the newest)")
	keyFile := fs.String("recovery-key", "", "file holding the recovery key (AGE-SECRET-KEY-1...), - for standard input")
	build := targetFlags(fs, env)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return usageError{"restore: give the recovery key with --recovery-key FILE (or - for standard input)"}
	}
	var keyText []byte
	var err error
	if *keyFile == "-" {
		keyText, err = io.ReadAll(io.LimitReader(env.Stdin, 64<<10))
	} else {
		keyText, err = os.ReadFile(*keyFile)
	}
	if err != nil {
		return fmt.Errorf("read the recovery key: %w", err)
	}
	req := adminapi.RestoreRequest{Target: *name, ID: *id, RecoveryKey: string(keyText)}
	if *name == "" {
		cfg, err := build("restore-source")
		if err != nil {
			return usageError{"restore: name a configured --target, or describe one with --kind and its flags: " + err.Error()}
		}
		req.Config = &cfg
	}
	res, err := c.Restore(ctx, req, progressPrinter(env))
	if errors.Is(err, adminapi.ErrNotRunning) && req.Config != nil {
		// No outpostd: restore the data directory directly (a laptop, or a box's disk
		// mounted elsewhere). The previous state is moved aside, not deleted.
		return restoreOffline(ctx, dataDir, req, env)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "snapshot %s (taken %s, server %s) restored: %d files, %d media files, %d stale one-time keys cleared.\n",
		res.ID, res.Created.Local().Format("2006-01-02 15:04"), res.ServerName, res.Files, res.Media, res.OneTimeKeys)
	if res.SigningKeySource != "" {
		fmt.Fprintf(env.Stdout, "signed by the key with fingerprint %s (compare with the recovery sheet)\n", res.SigningKeySource)
	}
	fmt.Fprintln(env.Stdout, "outpostd restarts now to apply it.")
	return nil
}

func restoreOffline(ctx context.Context, dataDir string, req adminapi.RestoreRequest, env Env) error {
	identity, err := snapshot.ParseIdentity(req.RecoveryKey)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	t, err := dial.Open(ctx, *req.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	id := req.ID
	if id == "" {
		if id, err = snapshot.Latest(ctx, t); err != nil {
			return err
		}
		if id == "" {
			return errors.New("the target holds no complete snapshot")
		}
	}
	res, err := snapshot.Stage(ctx, t, id, identity, nil, dataDir, progressPrinter(env))
	if err != nil {
		return err
	}
	_, oldDir, err := snapshot.Apply(dataDir)
	if err != nil {
		return err
	}
	pub, _ := snapshot.TargetSigningKey(ctx, t)
	fmt.Fprintf(env.Stdout, "snapshot %s (taken %s, server %s) restored into %s: %d files, %d media files, %d stale one-time keys cleared.\n",
		res.ID, res.Created.Local().Format("2006-01-02 15:04"), res.ServerName, dataDir, res.Files, res.Media, res.OneTimeKeys)
	if pub != nil {
		fmt.Fprintf(env.Stdout, "signed by the key with fingerprint %s (compare with the recovery sheet)\n", snapshot.Fingerprint(pub))
	}
	fmt.Fprintf(env.Stdout, "anything that was in the data dir before is in %s\n", oldDir)
	return nil
}

// progressPrinter shows progress as a redrawn bar on a terminal, and as one plain line per
// phase otherwise (logs, pipes, CI).
func progressPrinter(env Env) func(snapshot.Progress) {
	f, ok := env.Stderr.(*os.File)
	tty := ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
	phase := ""
	return func(p snapshot.Progress) {
		if tty {
			if p.Phase != phase && phase != "" {
				fmt.Fprintln(env.Stderr)
			}
			phase = p.Phase
			if p.Total > 0 {
				frac := float64(p.Done) / float64(p.Total)
				bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
				fmt.Fprintf(env.Stderr, "\r%-6s [%s] %3.0f%%", p.Phase, bar, frac*100)
			} else {
				fmt.Fprintf(env.Stderr, "\r%-6s ...", p.Phase)
			}
			if p.Phase == "done" {
				fmt.Fprintln(env.Stderr)
			}
			return
		}
		if p.Phase != phase {
			phase = p.Phase
			fmt.Fprintf(env.Stderr, "%s %s\n", time.Now().Format("15:04:05"), p.Phase)
		}
	}
}

func bytesize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
