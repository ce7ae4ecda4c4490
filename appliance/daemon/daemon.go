// Package daemon wires outpostd together: settings, homeserver supervision, gateway, setup
// and the admin socket. cmd/outpostd only parses flags and calls Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/gateway"
	"github.com/outpost-im/outpost/appliance/homeserver"
	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/web"
)

// Config is outpostd's command line.
type Config struct {
	DataDir   string
	HTTPAddr  string
	HTTPSAddr string
	TURNAddr  string
	// Dendrite is the path of the dendrite binary.
	Dendrite string
	Log      *slog.Logger
	// Console receives the few lines a person at the box must see (how to finish setup).
	Console io.Writer
}

// Run serves until ctx ends, then shuts everything down in order.
func Run(ctx context.Context, c Config) error {
	if c.HTTPSAddr != "" {
		return errors.New("-https: this build serves plain HTTP only; TLS arrives with the certificate manager. Leave -https empty")
	}
	if c.TURNAddr != "" {
		return errors.New("-turn: this build has no TURN server yet. Leave -turn empty")
	}
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

	store, err := settings.Open(ctx, dataDir)
	if err != nil {
		return err
	}
	defer store.Close()

	log := c.Log
	hsDir := filepath.Join(dataDir, "homeserver")
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
		}, nil
	}
	sup := homeserver.NewSupervisor(c.Dendrite, homeserver.Config{Dir: hsDir}.SocketPath(), hsConfig, log.With("component", "homeserver"))
	defer sup.Stop()

	static := web.Static()
	gw := gateway.New(gateway.Options{
		Homeserver: sup,
		Log:        log.With("component", "gateway"),
		Static:     static,
		FirstRun:   setup.FirstRunHandler(dataDir, http.FileServerFS(static)),
	})
	publish := func(st settings.Settings) {
		gw.SetState(gateway.State{SetupComplete: st.SetupComplete, ServerName: st.ServerName, Federation: st.Federation})
	}
	setupSvc := &setup.Service{
		Store:         store,
		HS:            sup,
		HomeserverDir: hsDir,
		Log:           log.With("component", "setup"),
		OnComplete:    publish,
	}

	st, err := store.Get(ctx)
	if err != nil {
		return err
	}
	publish(st)

	httpLn, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another outpostd running, or choose another -http address)", c.HTTPAddr, err)
	}
	adminLn, err := listenAdmin(dataDir)
	if err != nil {
		httpLn.Close()
		return err
	}
	admin := &adminapi.Server{
		Store:     store,
		HS:        sup,
		Setup:     setupSvc,
		DataDir:   dataDir,
		HTTPAddr:  httpLn.Addr().String(),
		StartedAt: time.Now().UTC(),
		Log:       log.With("component", "admin"),
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	servers := []*http.Server{
		{Handler: gw, ReadHeaderTimeout: 20 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second},
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for i, ln := range []net.Listener{httpLn, adminLn} {
		srv := servers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				cancel()
			}
		}()
	}
	log.Info("outpostd listening", "http", httpLn.Addr().String(), "data", dataDir, "admin_socket", adminLn.Addr().String())

	if st.SetupComplete {
		sup.Start(ctx)
	} else {
		fmt.Fprintf(c.Console, "\nOutpost is not set up yet. Open http://%s/ or run:\n  outpost -data %s setup --server-name NAME --admin USER --password-stdin\n\n",
			httpLn.Addr().String(), dataDir)
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
		return nil
	}
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
