package backup

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/settings"
	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/targetstore"
)

func TestNextRun(t *testing.T) {
	loc := time.Local
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, loc)
	if got := nextRun(now, "02:30", nil); !got.Equal(time.Date(2026, 11, 24, 2, 30, 0, 0, loc)) {
		t.Fatalf("no snapshot yet: %v", got)
	}
	if got := nextRun(now, "23:00", nil); !got.Equal(time.Date(2026, 11, 23, 23, 0, 0, 0, loc)) {
		t.Fatalf("later today: %v", got)
	}
	last := &Run{StartedAt: time.Date(2026, 11, 23, 2, 31, 0, 0, loc)}
	if got := nextRun(now, "02:30", last); !got.Equal(time.Date(2026, 11, 24, 2, 30, 0, 0, loc)) {
		t.Fatalf("after today's run: %v", got)
	}
	for _, bad := range []string{"25:00", "2:3x", "noon", ""} {
		if _, _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestStatusAlerts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := settings.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ts, err := targetstore.Open(dir, st.DB())
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{DataDir: dir, Store: st, Targets: ts, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := time.Now()
	st.Update(ctx, func(v *settings.Settings) error {
		v.SetupComplete, v.SetupCompletedAt = true, now.Add(-48*time.Hour)
		return nil
	})
	alerts := func() string {
		t.Helper()
		out, err := s.Status(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(out.Alerts, " | ")
	}
	if a := alerts(); !strings.Contains(a, "No snapshot target") || !strings.Contains(a, "No snapshot has been taken") {
		t.Fatalf("fresh box alerts: %s", a)
	}
	if err := ts.Put(ctx, target.Config{Name: "usb", Kind: target.KindLocal, Path: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	st.Update(ctx, func(v *settings.Settings) error { v.SnapshotTarget = "usb"; return nil })
	if a := alerts(); !strings.Contains(a, "No recovery key") {
		t.Fatalf("no recovery key: %s", a)
	}
	if _, _, err := s.NewRecoveryKey(ctx); err != nil {
		t.Fatal(err)
	}
	// A real snapshot of an (almost empty) data dir clears the alerts.
	if _, err := s.Snapshot(ctx, "", "manual", nil); err != nil {
		t.Fatal(err)
	}
	if a := alerts(); a != "" {
		t.Fatalf("alerts after a verified snapshot: %s", a)
	}
	// Two days later without a snapshot: both "last snapshot" and "last verified" are late.
	now = now.Add(49 * time.Hour)
	if a := alerts(); !strings.Contains(a, "last snapshot") || !strings.Contains(a, "verified-restorable") {
		t.Fatalf("late alerts: %s", a)
	}
	// A failed run is reported with its error.
	ts.Put(ctx, target.Config{Name: "gone", Kind: target.KindLocal, Path: dir + "/unplugged"})
	if _, err := s.Snapshot(ctx, "gone", "manual", nil); err == nil {
		t.Fatal("snapshot to a missing directory succeeded")
	}
	now = time.Now()
	if a := alerts(); !strings.Contains(a, "The last snapshot") || !strings.Contains(a, "failed") || !strings.Contains(a, "unplugged") {
		t.Fatalf("failed run not reported: %s", a)
	}
}
