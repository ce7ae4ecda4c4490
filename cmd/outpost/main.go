// Command outpost is the operator CLI for an Outpost appliance. It talks to outpostd over the
// admin socket in the data directory.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-im/outpost/appliance/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
