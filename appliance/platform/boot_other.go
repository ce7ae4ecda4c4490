//go:build !linux

package platform

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Boot does nothing off Linux: the appliance is always gokrazy on Linux.
func Boot(context.Context, *slog.Logger, io.Writer) {}

// MountBootPartition does nothing off Linux.
func MountBootPartition() (func(), error) { return func() {}, nil }

// MountProvisionMedia does nothing off Linux.
func MountProvisionMedia() (func(), error) { return func() {}, nil }

// StepClock refuses off Linux.
func StepClock(time.Time) error { return errors.New("platform: not an Outpost box") }
