package platform

import (
	"context"
	"io"
	"log/slog"
)

// ConsoleHandler sends records at or above min to the console as well as to next, so that a
// person at the box (or the serial log) sees warnings and errors: gokrazy keeps a service's
// own output only in a small in-memory ring.
func ConsoleHandler(next slog.Handler, console io.Writer, min slog.Level) slog.Handler {
	return &teeHandler{next: next, console: slog.NewTextHandler(console, &slog.HandlerOptions{Level: min}), min: min}
}

type teeHandler struct {
	next, console slog.Handler
	min           slog.Level
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || l >= h.min
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= h.min {
		h.console.Handle(ctx, r.Clone()) //nolint:errcheck // the console is best effort
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{next: h.next.WithAttrs(as), console: h.console.WithAttrs(as), min: h.min}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{next: h.next.WithGroup(name), console: h.console.WithGroup(name), min: h.min}
}
