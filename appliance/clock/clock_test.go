package clock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fake is a settable clock.
type fake struct{ t time.Time }

func (f *fake) now() time.Time        { return f.t }
func (f *fake) set(t time.Time) error { f.t = t; return nil }

func keeper(t *testing.T, f *fake) *Keeper {
	return &Keeper{Path: filepath.Join(t.TempDir(), "clock"), Now: f.now, Set: f.set}
}

func TestRestore(t *testing.T) {
	build := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	saved := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		now, want   time.Time
		saved       bool
		floor       time.Time
		wantStepped bool
	}{
		{name: "1970 boot steps to the saved time", now: time.Unix(5, 0), saved: true, floor: build, want: saved, wantStepped: true},
		{name: "no saved time: the build time is the floor", now: time.Unix(5, 0), floor: build, want: build, wantStepped: true},
		{name: "a good clock is left alone", now: saved.Add(time.Hour), saved: true, floor: build, want: saved.Add(time.Hour)},
		{name: "never backwards, even when the floor is later than a good clock", now: build.Add(-time.Hour), floor: time.Time{}, want: build.Add(-time.Hour)},
		{name: "nothing known, nothing done", now: time.Unix(5, 0), want: time.Unix(5, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{t: saved}
			k := keeper(t, f)
			k.Floor = tc.floor
			if tc.saved {
				if err := k.Save(); err != nil {
					t.Fatal(err)
				}
			}
			f.t = tc.now
			step, err := k.Restore()
			if err != nil {
				t.Fatal(err)
			}
			if !f.t.Equal(tc.want) {
				t.Fatalf("clock %s, want %s", f.t, tc.want)
			}
			if (step > 0) != tc.wantStepped {
				t.Fatalf("step %s, want stepped=%v", step, tc.wantStepped)
			}
		})
	}
}

func TestSaveNeverMovesBackwards(t *testing.T) {
	f := &fake{t: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
	k := keeper(t, f)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	later := f.t
	f.t = f.t.Add(-48 * time.Hour) // someone set the clock back
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if got := k.Saved(); !got.Equal(later) {
		t.Fatalf("saved %s after a backwards clock, want %s", got, later)
	}
	f.t = later.Add(time.Minute)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if got := k.Saved(); !got.Equal(later.Add(time.Minute)) {
		t.Fatalf("saved %s, want %s", got, later.Add(time.Minute))
	}
}

func TestCorruptFileDoesNotBlockBoot(t *testing.T) {
	f := &fake{t: time.Unix(5, 0)}
	k := keeper(t, f)
	if err := os.WriteFile(k.Path, []byte("garbage\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Restore(); err != nil {
		t.Fatal(err)
	}
	if !f.t.Equal(time.Unix(5, 0)) {
		t.Fatalf("clock moved to %s on a corrupt file", f.t)
	}
}

func TestRestoreReportsSetFailure(t *testing.T) {
	f := &fake{t: time.Unix(5, 0)}
	k := keeper(t, f)
	k.Floor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k.Set = func(time.Time) error { return errors.New("EPERM") }
	if _, err := k.Restore(); err == nil {
		t.Fatal("no error when the clock cannot be set")
	}
}

func TestRunSavesOnStop(t *testing.T) {
	f := &fake{t: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
	k := keeper(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx, time.Hour); close(done) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if k.Saved().IsZero() {
		t.Fatal("nothing saved")
	}
}
