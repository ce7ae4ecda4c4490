//go:build !linux

package platform

import (
	"context"
	"io"
	"log/slog"
)

// Boot does nothing off Linux: the appliance is always gokrazy on Linux.
func Boot(context.Context, *slog.Logger, io.Writer) {}

// MountBootPartition does nothing off Linux.
func MountBootPartition() (func(), error) { return func() {}, nil }

// MountProvisionMedia does nothing off Linux.
func MountProvisionMedia() (func(), error) { return func() {}, nil }
