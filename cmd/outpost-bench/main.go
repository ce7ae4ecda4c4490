// Command outpost-bench runs the interleaved A/B benchmark behind `make bench`: the bundled
// dendrite under Outpost's generated configuration (through outpostd's gateway) against the
// same binary under Dendrite's stock configuration, at several load levels. See
// appliance/loadgen and docs/benchmarks.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-im/outpost/appliance/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := loadgen.BenchMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
