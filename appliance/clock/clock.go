// Package clock keeps the appliance's wall clock from going backwards across reboots.
//
// Boxes without a battery-backed clock (a Raspberry Pi) boot near 1970, and some PCs boot with
// a wrong RTC. Certificates, tokens and Matrix event ordering all go wrong with a clock in the
// past, and the box may never see an NTP server. So the box remembers the latest time it has
// seen in a file under /perm and, at boot, steps the clock forward to it (or to the build time
// of the running image, whichever is later) when the clock is behind. It never steps the clock
// backwards and nothing here waits for a network time source.
package clock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Keeper persists the clock's high-water mark and restores it at boot.
type Keeper struct {
	// Path is the file holding the last seen time (Unix seconds, one line).
	Path string
	// Floor is a time the clock can never be before, e.g. when the running image was built.
	Floor time.Time
	// Now and Set read and step the system clock; tests replace them.
	Now func() time.Time
	Set func(time.Time) error
	Log *slog.Logger

	// mu orders Save against Reset: a Save that read the clock before a step back must not
	// write its (future) time after Reset wrote the new mark.
	mu sync.Mutex
}

// Saved returns the persisted time, or the zero time if there is none (or it is unreadable:
// a torn file must not stop the box from booting).
func (k *Keeper) Saved() time.Time {
	b, err := os.ReadFile(k.Path)
	if err != nil {
		return time.Time{}
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// Restore steps the clock forward to the latest of the saved time and the floor when it is
// behind both. It reports the step it made (zero if none).
func (k *Keeper) Restore() (time.Duration, error) {
	target := k.Saved()
	if k.Floor.After(target) {
		target = k.Floor
	}
	now := k.Now()
	if target.IsZero() || !now.Before(target) {
		return 0, nil
	}
	if err := k.Set(target); err != nil {
		return 0, fmt.Errorf("step the clock forward to %s: %w", target.UTC().Format(time.RFC3339), err)
	}
	step := target.Sub(now)
	k.log().Warn("the clock was behind the last time this box saw; stepped it forward", "from", now.UTC().Format(time.RFC3339), "to", target.UTC().Format(time.RFC3339))
	return step, nil
}

// Save records the current time unless it is before the saved one (the saved time only ever
// moves forward, so a clock set back by hand is not made permanent).
func (k *Keeper) Save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.Now()
	if now.Before(k.Saved()) {
		return nil
	}
	return k.write(now)
}

// Reset records t even when it is before the saved time: an authoritative time source (a
// LAN NTP server the administrator configured) said the saved time was in the future.
// The caller steps the clock before calling it.
func (k *Keeper) Reset(t time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.write(t)
}

func (k *Keeper) write(now time.Time) error {
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("save the clock: %w", err)
	}
	tmp := k.Path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(now.Unix(), 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("save the clock: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = errors.Join(f.Sync(), f.Close())
	}
	if err != nil {
		return fmt.Errorf("save the clock: %w", err)
	}
	if err := os.Rename(tmp, k.Path); err != nil {
		return fmt.Errorf("save the clock: %w", err)
	}
	return nil
}

// Run saves the time every interval until ctx ends, then once more. The interval bounds how
// far the clock can fall back after a power cut; a few minutes keeps flash writes rare.
func (k *Keeper) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := k.Save(); err != nil {
			k.log().Error("cannot save the clock", "err", err)
		}
		select {
		case <-ctx.Done():
			if err := k.Save(); err != nil {
				k.log().Error("cannot save the clock", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

func (k *Keeper) log() *slog.Logger {
	if k.Log == nil {
		return slog.Default()
	}
	return k.Log
}
