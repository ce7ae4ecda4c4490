// Command outpost-load is a Matrix client-server load generator: N users, M rooms, a /sync
// long poll per user, closed-loop or fixed-rate sends, optional media uploads. It reports
// send and delivery latency, throughput, errors, and the server's CPU and RSS. See
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
	code := loadgen.LoadMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
