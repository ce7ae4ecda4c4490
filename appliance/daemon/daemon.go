// Package daemon wires outpostd together: settings, homeserver supervision, gateway, setup
// and the admin socket. cmd/outpostd only parses flags and calls Run.
package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/boxtls"
	"github.com/outpost-im/outpost/appliance/claim"
	"github.com/outpost-im/outpost/appliance/clock"
	"github.com/outpost-im/outpost/appliance/console"
	"github.com/outpost-im/outpost/appliance/gateway"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/invites"
	"github.com/outpost-im/outpost/appliance/netcfg"
	"github.com/outpost-im/outpost/appliance/people"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/provision"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/targetstore"
	"github.com/outpost-im/outpost/appliance/turn"
	"github.com/outpost-im/outpost/appliance/usb"
	"github.com/outpost-im/outpost/appliance/version"
	"github.com/outpost-im/outpost/appliance/wizard"
	"github.com/outpost-im/outpost/provisioning"
	"github.com/outpost-im/outpost/web"
)

// Config is outpostd's command line.
type Config struct {
	DataDir   string
	HTTPAddr  string
	HTTPSAddr string
	// TURNAddr is TURN over UDP and TCP, TURNTLSAddr over TLS ("" = off).
	TURNAddr    string
	TURNTLSAddr string
	// Dendrite is the path of the dendrite binary.
	Dendrite string
	Log      *slog.Logger
	// Console receives the few lines a person at the box must see (how to finish setup).
	Console io.Writer
	// ProvisionSources are where a first-boot manifest may be, in order; ProvisionKey is the
	// pinned company key file that manifests must be signed with ("" = none).
	ProvisionSources []provision.Source
	ProvisionKey     string
	// MountProvisionMedia makes the sources readable (the appliance mounts its boot
	// partition) and returns how to undo it; nil on a laptop.
	MountProvisionMedia func() (func(), error)
	// WatchUSB reports the label of every USB stick plugged in until ctx ends; nil on a
	// laptop. A stick that is a snapshot target gets a snapshot at once.
	WatchUSB func(ctx context.Context, added func(label string)) error
	// Network is the LAN interface outpostd configures; nil (a laptop) stores network
	// settings without applying them.
	Network netcfg.Link
	// SetClock steps the system clock from a LAN time server; nil only measures the offset.
	SetClock func(time.Time) error
}

// errRestart ends one run of the daemon so that Run starts it over (to apply a staged
// restore before anything opens the data).
var errRestart = errors.New("restart requested")

// Run serves until ctx ends, then shuts everything down in order.
func Run(ctx context.Context, c Config) error {
	// The network link's helper (the DHCP client) lives as long as the process: stop it and
	// wait before returning, so nothing of ours still runs when gokrazy unmounts /perm.
	if l, ok := c.Network.(interface{ Close(context.Context) error }); ok {
		defer func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				c.Log.Warn("the network helper did not stop", "err", err)
			}
		}()
	}
	// The TCP listeners outlive restarts (after a restore), the process they do not.
	var lns keptListeners
	defer lns.close()
	for {
		err := runOnce(ctx, c, &lns)
		if !errors.Is(err, errRestart) || ctx.Err() != nil {
			return err
		}
		c.Log.Info("outpostd restarting to apply a restore")
	}
}

func runOnce(ctx context.Context, c Config, lns *keptListeners) error {
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// A restore staged before the last stop is applied now, before anything opens the data.
	if id, oldDir, err := snapshot.Apply(dataDir); err != nil {
		return fmt.Errorf("apply the staged restore: %w (the data dir is unchanged or can be finished by starting again)", err)
	} else if id != "" {
		c.Log.Info("restored from snapshot", "snapshot", id, "previous_state", oldDir)
		fmt.Fprintf(c.Console, "\n  Restored snapshot %s.\n  The previous state was kept in %s\n\n", id, oldDir)
	}

	store, err := settings.Open(ctx, dataDir)
	if err != nil {
		return err
	}
	defer store.Close()

	log := c.Log
	slog.SetDefault(log)

	// The network first: everything after it may want the box's address. The manager lives
	// as long as this run; the interface (and its DHCP client) as long as the process.
	netCtx, netCancel := context.WithCancel(ctx)
	defer netCancel()
	timeSync := &clock.Syncer{Set: c.SetClock, Log: log.With("component", "ntp")}
	var onNetChange func(netcfg.Config) // set once TLS is ready
	link := c.Network
	if link == nil {
		link = netcfg.Host{}
	}
	netMgr := &netcfg.Manager{Link: link, Store: store, Log: log.With("component", "network"), Console: c.Console,
		Changed: func(nc netcfg.Config) {
			timeSync.SetServers(nc.NTP)
			if onNetChange != nil {
				onNetChange(nc)
			}
		}}
	if err := netMgr.Start(netCtx); err != nil {
		log.Error("the network configuration could not be applied", "err", err)
	}
	if c.SetClock != nil {
		// Only a box asks time servers: a laptop's clock (and its DNS) are not ours to use.
		go timeSync.Run(netCtx)
	}
	httpsURL := ""             // set once the HTTPS listener exists
	var runCtx context.Context // the daemon's lifetime, set once serving starts
	hsDir := filepath.Join(dataDir, "homeserver")
	var boxTLS *boxtls.Service
	turnSvc := &turn.Service{
		UDPTCPAddr: c.TURNAddr,
		TLSAddr:    c.TURNTLSAddr,
		TLSConfig: func() *tls.Config {
			if boxTLS == nil || c.HTTPSAddr == "" {
				return nil
			}
			return boxTLS.TLSConfig()
		},
		Log: log.With("component", "turn"),
	}
	defer turnSvc.Close()
	hsConfig := func(ctx context.Context) (homeserver.Config, error) {
		st, err := store.Get(ctx)
		if err != nil {
			return homeserver.Config{}, err
		}
		return homeserver.Config{
			Dir:                      hsDir,
			ServerName:               st.ServerName,
			Federation:               st.Federation,
			RegistrationSharedSecret: st.RegistrationSharedSecret,
			TURN: homeserver.TURN{
				URIs:         turnSvc.URIsFor(st),
				SharedSecret: st.TURNSharedSecret,
				UserLifetime: turn.CredentialLifetime,
			},
		}, nil
	}
	sup := homeserver.NewSupervisor(c.Dendrite, homeserver.Config{Dir: hsDir}.SocketPath(), hsConfig, log.With("component", "homeserver"))
	defer sup.Stop()

	var gw *gateway.Gateway
	publish := func(st settings.Settings) {
		gw.SetState(gateway.State{SetupComplete: st.SetupComplete, ServerName: st.ServerName, Federation: st.Federation})
	}
	boxTLS, err = boxtls.New(dataDir, log.With("component", "tls"))
	if err != nil {
		return err
	}
	defer boxTLS.Close()
	applyTLS := func(ctx context.Context, st settings.Settings) {
		if c.HTTPSAddr == "" {
			return
		}
		err := boxTLS.Apply(ctx, st)
		if err != nil && st.TLSMode != "" && st.TLSMode != "box-ca" {
			// An ACME CA that is down or an uploaded certificate gone bad must not leave the
			// box without HTTPS: serve from the box's own root until someone fixes it.
			log.Error("the configured certificate source failed; serving the box CA instead", "mode", st.TLSMode, "err", err)
			fmt.Fprintf(c.Console, "\n  Certificate source %q failed (%v);\n  serving the box's own certificate until it is fixed.\n\n", st.TLSMode, err)
			fallback := st
			fallback.TLSMode = "box-ca"
			err = boxTLS.Apply(ctx, fallback)
		}
		if err != nil {
			// The box stays reachable over plain HTTP rather than not at all; the console
			// says why so someone can fix it.
			log.Error("HTTPS is not available; serving plain HTTP only", "err", err)
			fmt.Fprintf(c.Console, "\n  HTTPS is not available: %v\n\n", err)
		}
	}
	// A new address needs a certificate that names it (when the box's root may vouch for it).
	onNetChange = func(netcfg.Config) {
		if st, err := store.Get(netCtx); err == nil && st.SetupComplete {
			applyTLS(netCtx, st)
		}
	}
	setupSvc := &setup.Service{
		Store:         store,
		HS:            sup,
		HomeserverDir: hsDir,
		Log:           log.With("component", "setup"),
		OnComplete: func(st settings.Settings) {
			if err := claim.Retire(dataDir); err != nil {
				log.Error("cannot retire the setup code", "err", err)
			}
			applyTLS(context.Background(), st)
			turnSvc.Apply(st)
			publish(st)
			printReady(c.Console, httpsURL, boxTLS.Fingerprint())
		},
	}
	targets, err := targetstore.Open(dataDir, store.DB())
	if err != nil {
		return err
	}
	backupSvc := &backup.Service{
		DataDir: dataDir, Store: store, Targets: targets, HS: sup, HSConfig: hsConfig,
		Version: version.Version, Log: log.With("component", "snapshots"),
	}
	if err := backupSvc.EnsureKeys(ctx); err != nil {
		return err
	}
	backupSvc.CleanScratch() //nolint:errcheck // leftovers of an interrupted verification
	peopleSvc := &people.Service{Store: store, HS: sup, HSConfig: hsConfig, Log: log.With("component", "people")}
	invitesSvc := &invites.Service{Store: store, People: peopleSvc}

	st, err := store.Get(ctx)
	if err != nil {
		return err
	}
	claimCode := ""
	if !st.SetupComplete {
		if claimCode, err = claim.Ensure(dataDir); err != nil {
			return err
		}
	}

	httpLn, err := lns.listen(c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another outpostd running, or choose another -http address)", c.HTTPAddr, err)
	}
	var httpsLn net.Listener
	httpsPort := 0
	if c.HTTPSAddr != "" {
		if httpsLn, err = lns.listen(c.HTTPSAddr); err != nil {
			httpLn.Close()
			return fmt.Errorf("listen on %s: %w (choose another -https address, or -https '' to serve plain HTTP only)", c.HTTPSAddr, err)
		}
		httpsPort = httpsLn.Addr().(*net.TCPAddr).Port
		httpsURL = "https://" + httpsLn.Addr().String() + "/"
	}
	adminLn, err := listenAdmin(dataDir)
	if err != nil {
		httpLn.Close()
		return err
	}
	admin := &adminapi.Server{
		TLS:       boxTLS,
		HTTPSURL:  httpsURL,
		Store:     store,
		HS:        sup,
		Setup:     setupSvc,
		People:    peopleSvc,
		Invites:   invitesSvc,
		DataDir:   dataDir,
		HTTPAddr:  httpLn.Addr().String(),
		StartedAt: time.Now().UTC(),
		Log:       log.With("component", "admin"),
		Backup:    backupSvc,
		Network:   netMgr,
		TimeSync:  timeSync.Status,
	}
	restartRequested := false
	var requestRestart func()
	admin.Restart = func() { requestRestart() }
	// Federation is the one setting the console changes that the homeserver must restart for.
	setFederation := func(ctx context.Context, actor audit.Actor, on bool) error {
		var now settings.Settings
		if err := store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
			if st.Federation == on {
				now = *st
				return nil
			}
			st.Federation = on
			now = *st
			return audit.Record(ctx, tx, actor.String(), "federation.set", st.ServerName, fmt.Sprintf("federation=%t", on))
		}); err != nil {
			return err
		}
		log.Info("federation switched; restarting the homeserver", "federation", on, "by", actor.String())
		sup.Stop()
		publish(now)
		sup.Start(runCtx)
		return nil
	}
	// TURN settings change the URIs Dendrite hands out: restart both.
	setTURN := func(ctx context.Context, actor audit.Actor, ts turn.Settings) error {
		if err := turn.Change(ctx, store, actor, ts); err != nil {
			return err
		}
		st, err := store.Get(ctx)
		if err != nil {
			return err
		}
		eff := turnSvc.Apply(st)
		log.Info("TURN settings changed; restarting the homeserver", "enabled", eff.Enabled, "problem", eff.Problem, "by", actor.String())
		sup.Stop()
		sup.Start(runCtx)
		return nil
	}
	admin.TURN = turnSvc
	admin.SetTURN = setTURN
	static := web.Static()
	wz := wizard.New(wizard.Wizard{Store: store, Setup: setupSvc, DataDir: dataDir, Assets: web.Setup(), Log: log.With("component", "wizard"),
		Backup: backupSvc, Restart: func() { requestRestart() }})
	con := console.New(console.Console{
		Store: store, People: peopleSvc, Invites: invitesSvc, Status: admin.Status, SetFederation: setFederation, TLS: boxTLS,
		TURN: turnSvc, SetTURN: setTURN, Backup: backupSvc, Network: netMgr, TimeSync: timeSync.Status,
		AdminAssets: web.Admin(), InviteAssets: web.Invite(), Log: log.With("component", "console"),
	})
	gw = gateway.New(gateway.Options{
		Homeserver: sup,
		Log:        log.With("component", "gateway"),
		Static:     static,
		FirstRun:   setup.FirstRunHandler(http.FileServerFS(static)),
		Extra:      map[string]http.Handler{"/setup/": wz, "/admin/": con, "/invite/": con},
		LoginGate: func(ctx context.Context, localpart string) error {
			st, err := store.Get(ctx)
			if err == nil && provision.InList(st.PasswordChangeRequired, localpart) {
				return errors.New("This account still has the one-time password it was provisioned with. Sign in to the admin console at /admin/ and choose your own password first.")
			}
			return nil
		},
	})
	publish(st)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runCtx = ctx
	var restartMu sync.Mutex
	requestRestart = func() {
		restartMu.Lock()
		restartRequested = true
		restartMu.Unlock()
		cancel()
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	var httpHandler http.Handler = gw
	if httpsLn != nil {
		httpHandler = boxTLS.HTTPHandler(gw, httpsPort)
	}
	servers := []*http.Server{
		{Handler: httpHandler, ReadHeaderTimeout: 20 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: errLog},
		{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second},
	}
	listeners := []net.Listener{httpLn, adminLn}
	if httpsLn != nil {
		servers = append(servers, &http.Server{Handler: gw, TLSConfig: boxTLS.TLSConfig(), ReadHeaderTimeout: 20 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: errLog})
		listeners = append(listeners, httpsLn)
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for i, ln := range listeners {
		srv := servers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(ln, "", "") // certificates come from TLSConfig; this also enables HTTP/2
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				cancel()
			}
		}()
	}
	log.Info("outpostd listening", "http", httpLn.Addr().String(), "data", dataDir, "admin_socket", adminLn.Addr().String())

	if st.SetupComplete {
		applyTLS(ctx, st)
		turnSvc.Apply(st)
		sup.Start(ctx)
		printReady(c.Console, httpsURL, boxTLS.Fingerprint())
	} else {
		printClaim(c.Console, httpLn.Addr(), claimCode)
	}
	go backupSvc.RunScheduler(ctx)
	if c.WatchUSB != nil {
		go func() {
			err := c.WatchUSB(ctx, func(label string) { go snapshotToStick(ctx, c.Console, backupSvc, label, log) })
			if err != nil {
				log.Error("USB sticks will not be noticed when plugged in", "err", err)
			}
		}()
	}
	if !st.SetupComplete {
		prov := &provision.Applier{Setup: setupSvc, Store: store, Backup: backupSvc, HSConfig: hsConfig, Log: log.With("component", "provisioning"),
			Network: func(ctx context.Context, nc netcfg.Config, actor audit.Actor) error {
				r, err := netMgr.TryAndKeep(ctx, nc, actor)
				if err == nil && r.Outcome != netcfg.OutcomeKept {
					err = fmt.Errorf("%s %s: %s", nc.Summary(), r.Outcome, r.Reason)
				}
				return err
			}}
		go provisionAtBoot(ctx, c, prov, backupSvc, log)
	} else {
		go consumeLeftoverManifest(c, st.ServerName, log)
	}

	<-ctx.Done()
	log.Info("outpostd shutting down")
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	for _, srv := range servers {
		srv.Shutdown(shutdownCtx) //nolint:errcheck // best effort; the homeserver stop below matters more
	}
	wg.Wait()
	sup.Stop()
	select {
	case err := <-errc:
		return fmt.Errorf("server failed: %w", err)
	default:
	}
	restartMu.Lock()
	defer restartMu.Unlock()
	if restartRequested {
		return errRestart
	}
	return nil
}

// printClaim tells the person at the box how to set it up. The code goes to the console
// only, never to the log.
func printClaim(w io.Writer, addr net.Addr, code string) {
	urls := platform.BoxURLs("http", addr.String(), "/setup/")
	fmt.Fprintf(w, "\n  Outpost is not set up yet.\n  Open %s\n  and enter the setup code:  %s\n\n", strings.Join(urls, "\n    or "), code)
}

// printReady shows where the box serves and the fingerprint people check before trusting it.
func printReady(w io.Writer, httpsURL, fingerprint string) {
	if httpsURL == "" || fingerprint == "" {
		return
	}
	// On the box the listener is ":443": show the addresses people can actually type.
	if u, err := url.Parse(httpsURL); err == nil && u.Host != "" {
		httpsURL = strings.Join(platform.BoxURLs("https", u.Host, "/"), "\n    or ")
	}
	fmt.Fprintf(w, "\n  Outpost is ready at %s\n  Root certificate SHA-256 fingerprint:\n    %s\n\n", httpsURL, fingerprint)
}

// lockDataDir makes sure one outpostd owns a data directory: two would run two homeservers
// on the same databases.
func lockDataDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "outpostd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another outpostd; stop it first", dir)
	}
	return func() { f.Close() }, nil
}

func listenAdmin(dataDir string) (net.Listener, error) {
	path := filepath.Join(dataDir, adminapi.SocketName)
	// We hold the data dir lock, so a socket file here is a leftover from a crash.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// ProvisionSources lists where outpostd looks for a manifest at first boot, in order: the
// boot partition and a USB stick on the appliance, then the -provision file.
func ProvisionSources(flagPath string) []provision.Source {
	var out []provision.Source
	for _, s := range platform.ProvisionPaths() {
		out = append(out, provision.Source{Kind: s.Kind, Path: s.Path})
	}
	if flagPath != "" {
		if abs, err := filepath.Abs(flagPath); err == nil {
			flagPath = abs
		}
		out = append(out, provision.Source{Kind: "command line", Path: flagPath})
	}
	return out
}

// provisionAtBoot applies the first manifest found, then consumes it and takes the first
// snapshot. A manifest that fails leaves the box unconfigured with the setup page available,
// and says why on the console.
func provisionAtBoot(ctx context.Context, c Config, a *provision.Applier, b *backup.Service, log *slog.Logger) {
	src, ok, unmount := findManifest(c, log)
	defer unmount()
	if !ok {
		return
	}
	var pinned ed25519.PublicKey
	if c.ProvisionKey != "" {
		text, err := os.ReadFile(c.ProvisionKey)
		if err == nil {
			pinned, err = provisioning.ParsePublicKey(string(text))
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("the pinned provisioning key cannot be read; refusing every manifest", "path", c.ProvisionKey, "err", err)
			fmt.Fprintf(c.Console, "\n  Provisioning refused: the pinned company key %s cannot be read (%v).\n\n", c.ProvisionKey, err)
			return
		}
	}
	log.Info("provisioning manifest found", "source", src.Kind, "path", src.Path, "signed_required", pinned != nil)
	m, err := provision.Load(src, pinned)
	if err == nil {
		err = a.Apply(ctx, m, src)
	}
	if err != nil {
		log.Error("provisioning failed; the setup page is still available", "path", src.Path, "err", err)
		fmt.Fprintf(c.Console, "\n  Provisioning from %s failed:\n    %v\n  Fix the manifest, or set the box up on its setup page.\n\n", src.Path, err)
		return
	}
	if err := provision.Consume(src, m); err != nil {
		log.Error("the applied manifest could not be wiped", "err", err)
		fmt.Fprintf(c.Console, "\n  WARNING: %v\n\n", err)
	}
	signed := "unsigned; no company key is pinned"
	if pinned != nil {
		signed = "signature checked with the pinned company key " + provisioning.KeyFingerprint(pinned)
	}
	fmt.Fprintf(c.Console, "\n  Provisioned from the %s as %s.\n  (%s)\n\n", src.Kind, m.ServerName, signed)
	if m.Snapshots != nil {
		if _, err := b.Snapshot(ctx, "", "provisioned", nil); err != nil {
			log.Error("the first snapshot after provisioning failed; it is retried on schedule", "err", err)
		}
	}
}

// findManifest mounts the media a manifest may be on and finds the first one; unmount is
// to be called when done with it.
func findManifest(c Config, log *slog.Logger) (src provision.Source, ok bool, unmount func()) {
	unmount = func() {}
	if c.MountProvisionMedia != nil {
		var err error
		if unmount, err = c.MountProvisionMedia(); err != nil {
			log.Warn("cannot look everywhere for a provisioning manifest", "err", err)
		}
	}
	src, ok = provision.Find(c.ProvisionSources)
	return src, ok, unmount
}

// consumeLeftoverManifest wipes a manifest that was applied but not consumed: setup
// completes before the manifest is wiped, so a power cut in between leaves its secrets on
// the stick or boot partition of a box that is already set up. A manifest for another
// server name was not applied here and is left alone.
func consumeLeftoverManifest(c Config, serverName string, log *slog.Logger) {
	src, ok, unmount := findManifest(c, log)
	defer unmount()
	if !ok {
		return
	}
	m, err := provision.Load(src, nil)
	if err != nil || m.ServerName != serverName {
		log.Warn("a provisioning manifest is present but the box is already set up; it is ignored", "path", src.Path)
		return
	}
	if err := provision.Consume(src, m); err != nil {
		log.Error("the applied manifest could not be wiped", "path", src.Path, "err", err)
		fmt.Fprintf(c.Console, "\n  WARNING: %v\n\n", err)
		return
	}
	log.Info("wiped a provisioning manifest applied before a restart", "source", src.Kind, "path", src.Path)
}

// snapshotToStick takes a snapshot to every target on the USB stick just plugged in, and
// tells the person at the box when the stick may be pulled again.
func snapshotToStick(ctx context.Context, console io.Writer, b *backup.Service, label string, log *slog.Logger) {
	list, err := b.Targets.List(ctx)
	if err != nil {
		log.Error("USB stick plugged in, but the targets cannot be read", "label", label, "err", err)
		return
	}
	found := false
	for _, t := range list {
		if t.Kind != target.KindLocal || usb.LabelOf(t.Path) != label {
			continue
		}
		found = true
		log.Info("USB stick plugged in; taking a snapshot to it", "label", label, "target", t.Name)
		fmt.Fprintf(console, "\n  USB stick %s plugged in: taking a snapshot to target %s...\n", label, t.Name)
		res, err := b.Snapshot(ctx, t.Name, "usb-plugged", nil)
		if err != nil {
			log.Error("snapshot to the USB stick failed", "label", label, "target", t.Name, "err", err)
			fmt.Fprintf(console, "\n  Snapshot to USB stick %s FAILED: %v\n\n", label, err)
			continue
		}
		fmt.Fprintf(console, "\n  Snapshot %s written to USB stick %s and verified; you can remove the stick.\n\n", res.Snapshot.ID, label)
	}
	if !found {
		log.Info("USB stick plugged in; it is not a snapshot target", "label", label)
	}
}
