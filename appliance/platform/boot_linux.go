package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/outpost-im/outpost/appliance/clock"
	"github.com/outpost-im/outpost/appliance/permgrow"
)

// clockSaveInterval bounds how far the clock can fall back after a power cut, and keeps
// writes to the SD card rare.
const clockSaveInterval = 5 * time.Minute

// Boot prepares the appliance before outpostd opens its data: it steps a clock that is
// behind the last time the box saw forward, grows /perm to the whole disk, and starts the
// background jobs that keep the clock's high-water mark and report resource use on the
// console. On a laptop it does nothing. Nothing in it waits for the network or a time server.
func Boot(ctx context.Context, log *slog.Logger, console io.Writer) {
	if !OnGokrazy() {
		return
	}
	// A power cut (the usual way an appliance is switched off) loses what the kernel has not
	// written back yet: 30 s of acknowledged messages by default. Write dirty data back
	// within about 3 s instead; the amounts are small.
	for name, v := range map[string]string{"dirty_expire_centisecs": "200", "dirty_writeback_centisecs": "100"} {
		if err := os.WriteFile("/proc/sys/vm/"+name, []byte(v), 0o644); err != nil {
			log.Warn("cannot shorten the write-back delay", "sysctl", name, "err", err)
		}
	}
	k := &clock.Keeper{
		Path:  "/perm/outpost-clock",
		Floor: buildTime(),
		Now:   time.Now,
		Set:   setClock,
		Log:   log.With("component", "clock"),
	}
	if step, err := k.Restore(); err != nil {
		log.Error("cannot restore the clock", "err", err)
	} else if step > 0 {
		fmt.Fprintf(console, "\n  The clock was behind; set it to %s (last known time).\n", time.Now().UTC().Format(time.RFC1123))
	}
	keeper.Store(k)
	go k.Run(ctx, clockSaveInterval)

	res, err := permgrow.Grow(ctx, "/perm", log.With("component", "permgrow"))
	switch {
	case err != nil:
		log.Error("cannot grow /perm to the whole disk; the box keeps working with the space it has", "err", err)
		fmt.Fprintf(console, "\n  Could not grow the data partition to the whole disk: %v\n", err)
	case res.GrewTable:
		log.Info("grew /perm to the whole disk", "disk", res.Disk, "bytes", res.FSBytes)
		fmt.Fprintf(console, "\n  Data partition grown to %.1f GiB (the whole disk).\n", float64(res.FSBytes)/(1<<30))
	}
	go reportResources(ctx, console, time.Minute, 24*time.Hour)
}

// buildTime is when the running image was built: the modification time gokrazy gives the
// files of the root file system. Before 2024 it is not a build time at all.
func buildTime() time.Time {
	exe, err := os.Executable()
	if err != nil {
		return time.Time{}
	}
	fi, err := os.Stat(exe)
	if err != nil || fi.ModTime().Year() < 2024 {
		return time.Time{}
	}
	return fi.ModTime()
}

// keeper is the boot's clock keeper, for StepClock.
var keeper atomic.Pointer[clock.Keeper]

// StepClock sets the clock to t (from a LAN time server) and makes t the keeper's new mark,
// also when that is a step back. Only on the appliance.
func StepClock(t time.Time) error {
	if !OnGokrazy() {
		return errors.New("platform: not setting the clock of a machine that is not an Outpost box")
	}
	if err := setClock(t); err != nil {
		return err
	}
	if k := keeper.Load(); k != nil {
		return k.Reset(t)
	}
	return nil
}

func setClock(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Settimeofday(&tv)
}

// reportResources prints one line with the memory outpostd and the homeserver use and the
// space left on /perm: first after a minute (the idle figure after boot), then every period.
func reportResources(ctx context.Context, w io.Writer, first, period time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fmt.Fprintln(w, ResourceLine("/proc", "/perm"))
		t.Reset(period)
	}
}

// ResourceLine summarises resident memory of outpostd and dendrite and the use of the data
// partition, e.g. "  resources: outpostd 31.2 MiB, dendrite 58.0 MiB resident; /perm 1.2% of 3.0 GiB used".
func ResourceLine(procfs, perm string) string {
	self := rssOf(procfs, os.Getpid())
	var hs int64
	entries, _ := os.ReadDir(procfs)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join(procfs, e.Name(), "comm")); err == nil && strings.TrimSpace(string(comm)) == "dendrite" {
			hs += rssOf(procfs, pid)
		}
	}
	line := fmt.Sprintf("  resources: outpostd %.1f MiB, dendrite %.1f MiB resident", float64(self)/(1<<20), float64(hs)/(1<<20))
	var sfs unix.Statfs_t
	if err := unix.Statfs(perm, &sfs); err == nil && sfs.Blocks > 0 {
		total := float64(sfs.Blocks) * float64(sfs.Bsize)
		used := float64(sfs.Blocks-sfs.Bfree) * float64(sfs.Bsize)
		line += fmt.Sprintf("; %s %.1f%% of %.1f GiB used", perm, 100*used/total, total/(1<<30))
	}
	return line
}

// rssOf reads VmRSS from /proc/PID/status (0 when the process is gone).
func rssOf(procfs string, pid int) int64 {
	b, err := os.ReadFile(filepath.Join(procfs, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
