//go:build !linux

package platform

import (
	"context"
	"io"
	"log/slog"
)

// Boot does nothing off Linux: the appliance is always gokrazy on Linux.
func Boot(context.Context, *slog.Logger, io.Writer) {}
