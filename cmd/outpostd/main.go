// Command outpostd is the Outpost appliance daemon: it supervises the homeserver and serves
// the gateway, setup and admin socket. On gokrazy it is the boot program; on a laptop,
// `make run` starts it with a data directory under ./var.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-im/outpost/appliance/daemon"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/usb"
)

func main() {
	var c daemon.Config
	flag.StringVar(&c.DataDir, "data", platform.DefaultDataDir(), "state directory (settings, homeserver databases, media)")
	flag.StringVar(&c.HTTPAddr, "http", platform.DefaultHTTPAddr(), "gateway HTTP listen address")
	flag.StringVar(&c.HTTPSAddr, "https", platform.DefaultHTTPSAddr(), "gateway HTTPS listen address once set up (empty: plain HTTP only, for development)")
	flag.StringVar(&c.TURNAddr, "turn", platform.DefaultTURNAddr(), "TURN listen address, UDP and TCP (empty: off)")
	flag.StringVar(&c.TURNTLSAddr, "turn-tls", platform.DefaultTURNTLSAddr(), "TURN over TLS listen address (empty: off)")
	flag.StringVar(&c.Dendrite, "dendrite", platform.DefaultDendrite(), "path of the dendrite binary")
	provision := flag.String("provision", "", "apply this provisioning manifest at first boot (see docs/provisioning.md)")
	flag.StringVar(&c.ProvisionKey, "provision-key", platform.DefaultProvisionKey(), "company public key manifests must be signed with (empty: unsigned manifests are accepted)")
	level := flag.String("log-level", "info", "debug, info, warn or error (debug includes the access log)")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("outpostd: unexpected argument %q", flag.Arg(0))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		log.Fatalf("outpostd: -log-level: %v", err)
	}
	c.Console = platform.Console()
	c.ProvisionSources = daemon.ProvisionSources(*provision)
	if platform.OnGokrazy() {
		c.MountProvisionMedia = platform.MountProvisionMedia
		c.WatchUSB = func(ctx context.Context, added func(string)) error {
			return usb.Watch(ctx, func(s usb.Stick) { added(s.Label) })
		}
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})
	if platform.OnGokrazy() {
		// gokrazy keeps our stderr only in a small ring in memory: warnings and errors also
		// go to the serial console and the screen.
		h = platform.ConsoleHandler(h, c.Console, slog.LevelWarn)
	}
	c.Log = slog.New(h)
	c.Network = platform.NetworkLink(c.Log)
	if platform.OnGokrazy() {
		c.SetClock = platform.StepClock
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// On the appliance: clock, /perm size and console reports, before any data is opened.
	platform.Boot(ctx, c.Log, c.Console)
	if err := daemon.Run(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "outpostd: %v\n", err)
		os.Exit(1)
	}
}
