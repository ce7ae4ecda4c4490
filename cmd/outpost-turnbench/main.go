// Command outpost-turnbench compares Outpost's TURN relay with coturn on this machine
// (`make bench-turn`). It needs root (a network namespace for the peer) and coturn.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/outpost-im/outpost/appliance/turn/turnbench"
)

func main() {
	serve := flag.String("serve-pion", "", "internal: run the pion relay on this address")
	sessions := flag.Int("sessions", 40, "concurrent TURN sessions")
	messages := flag.Int("messages", 1000, "messages per session")
	size := flag.Int("size", 1000, "bytes per message")
	rounds := flag.Int("rounds", 3, "A/B rounds")
	doc := flag.String("doc", "", "write the results as Markdown to this file")
	cpuprofile := flag.String("cpuprofile", "", "internal, with -serve-pion: write a CPU profile of the relay")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *serve != "" {
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				log.Fatal(err)
			}
			pprof.StartCPUProfile(f) //nolint:errcheck
			defer pprof.StopCPUProfile()
		}
		if err := turnbench.Serve(ctx, *serve); err != nil {
			log.Fatal(err)
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	o := turnbench.Options{Sessions: *sessions, Messages: *messages, Size: *size, Rounds: *rounds, Out: os.Stdout}
	o.PionProfile = *cpuprofile
	rs, err := turnbench.Run(ctx, o, self)
	if err != nil {
		log.Fatal(err)
	}
	s := turnbench.Summarize(rs)
	table := fmt.Sprintf(`| | pion (Outpost) | coturn | pion/coturn |
|---|---|---|---|
| relayed packets/s (median) | %.0f | %.0f | %.2fx |
| loss (median) | %.2f%% | %.2f%% | |
| server CPU per relayed packet | %.1f µs | %.1f µs | efficiency %.2fx |
`, s.Pion.PacketsPerS, s.Coturn.PacketsPerS, s.ThroughputRatio, s.Pion.LossPct, s.Coturn.LossPct,
		s.Pion.CPUPerPktUS, s.Coturn.CPUPerPktUS, s.Efficiency)
	fmt.Print("\n" + table)
	if *doc != "" {
		host, _ := os.Hostname()
		md := fmt.Sprintf("## TURN relay: Outpost (pion/turn/v2) vs coturn\n\nCommand: `make bench-turn` (%d sessions × %d messages of %d bytes, %d A/B rounds), %s, %s/%s, %d CPUs, host %s.\n\n%s\nEfficiency is coturn's CPU per packet divided by pion's (1.0 = equal; the target is ≥ 0.8).\n",
			*sessions, *messages, *size, *rounds, time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host, table)
		if err := os.WriteFile(*doc, []byte(md), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
