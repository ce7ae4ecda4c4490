package e2e

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/backup"
	"github.com/outpost-im/outpost/appliance/loadgen"
)

// TestSnapshotPauseBench measures how long the homeserver is frozen for a snapshot's
// consistent cut with about 1 GB of homeserver state, while a client sends messages, and
// how much slower sends get during snapshots than between them. It is a benchmark, not a
// test: `make bench-snapshot` runs it (OUTPOST_BENCH_SNAPSHOT=N snapshots) and writes
// docs/snapshot-bench.md; `make test` runs a two-snapshot smoke version. Nothing here
// asserts a wall-clock time.
func TestSnapshotPauseBench(t *testing.T) {
	// Without OUTPOST_BENCH_SNAPSHOT (plain `make test`) it runs as a smoke test: two small
	// snapshots, so the benchmark keeps working; the report is written only by make.
	runs, ballastMB := 2, 16
	if v := os.Getenv("OUTPOST_BENCH_SNAPSHOT"); v != "" {
		fmt.Sscanf(v, "%d", &runs)
		ballastMB = 1024
		fmt.Sscanf(os.Getenv("OUTPOST_BENCH_STATE_MB"), "%d", &ballastMB)
	}
	usb := t.TempDir()
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	d.setup("bench.test")
	alice := newClient(t, d.surl(""))
	alice.login("alice", password("alice"))
	room := alice.createRoom("bench")

	// Ballast: rows the homeserver never reads, in the two biggest databases, compressible
	// like real event JSON (about 3:1), so the archive and the copy cost what 1 GB costs.
	start := time.Now()
	for _, c := range []string{"roomserver", "syncapi"} {
		p := filepath.Join(dataDir, "homeserver", "db", c+".db")
		db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: p}).String()+"?_pragma=busy_timeout(30000)")
		if err != nil {
			t.Fatal(err)
		}
		db.Exec(`CREATE TABLE IF NOT EXISTS outpost_bench_ballast (id INTEGER PRIMARY KEY, body TEXT)`)
		rows := ballastMB * 1024 / 2 / 4 // 4 KiB rows, half in each database
		tx, _ := db.Begin()
		for i := 0; i < rows; i++ {
			b := make([]byte, 680)
			rand.Read(b)
			body := strings.Repeat(`{"type":"m.room.message","content":{"body":"`+hex.EncodeToString(b)+`"}}`, 3)[:4096]
			if _, err := tx.Exec(`INSERT INTO outpost_bench_ballast(body) VALUES(?)`, body); err != nil {
				t.Fatal(err)
			}
			if i%20000 == 19999 {
				tx.Commit()
				tx, _ = db.Begin()
			}
		}
		tx.Commit()
		db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		db.Close()
	}
	var stateBytes int64
	filepath.Walk(filepath.Join(dataDir, "homeserver"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			stateBytes += fi.Size()
		}
		return nil
	})
	t.Logf("state: %.0f MB (ballast written in %s)", float64(stateBytes)/1e6, time.Since(start).Round(time.Second))

	d.mustCLI("", "recovery-key", "new")
	d.mustCLI("", "targets", "add", "--name", "usb", "--kind", "local", "--path", usb)

	// A client sending all the time; each send's latency is recorded with whether a
	// snapshot was running.
	type sample struct {
		lat    time.Duration
		during bool
	}
	var mu sync.Mutex
	var samples []sample
	snapshotting := false
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			during := snapshotting
			mu.Unlock()
			s := time.Now()
			if _, err := alice.send(room, fmt.Sprintf("b%d", i), fmt.Sprintf("bench %d", i)); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Since(s), during})
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	var pauses []float64
	var durations []time.Duration
	for i := 0; i < runs; i++ {
		mu.Lock()
		snapshotting = true
		mu.Unlock()
		s := time.Now()
		out := d.mustCLI("", "snapshot", "now", "--json")
		durations = append(durations, time.Since(s))
		mu.Lock()
		snapshotting = false
		mu.Unlock()
		var res backup.SnapshotResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if res.Verify == nil || res.Snapshot.PauseMillis <= 0 {
			t.Fatalf("snapshot %d was not verified or reported no pause: %s", i+1, out)
		}
		pauses = append(pauses, res.Snapshot.PauseMillis)
		t.Logf("snapshot %d: pause %.1f ms, total %s, state archive %.0f MB", i+1, res.Snapshot.PauseMillis, time.Since(s).Round(100*time.Millisecond), float64(res.Snapshot.StateBytes)/1e6)
		time.Sleep(2 * time.Second)
	}
	close(stop)
	wg.Wait()
	t.Logf("cut breakdown from outpostd's log:\n%s", grepLines(d.log(), "consistent cut taken"))

	var during, between []time.Duration
	for _, s := range samples {
		if s.during {
			during = append(during, s.lat)
		} else {
			between = append(between, s.lat)
		}
	}
	sort.Float64s(pauses)
	pct := func(p float64) float64 { return pauses[min(len(pauses)-1, int(p*float64(len(pauses))))] }
	dq := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return l[min(len(l)-1, int(p*float64(len(l))))]
	}
	ratio := func(a, b time.Duration) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", float64(a)/float64(b))
	}
	report := fmt.Sprintf(`# Snapshot pause benchmark

Command: `+"`make bench-snapshot`"+` (OUTPOST_BENCH_SNAPSHOT=%d, OUTPOST_BENCH_STATE_MB=%d), %s.
Machine: %s. Homeserver state: %.0f MB (Dendrite databases with ballast rows, JetStream, key);
target: a local directory on the same disk; one client sending a message every 20 ms throughout.

The pause is the time the homeserver is frozen (SIGSTOP to SIGCONT) for the consistent cut.

| snapshots | pause p50 | pause p95 | pause max | snapshot duration p50 |
|---|---|---|---|---|
| %d | %.1f ms | %.1f ms | %.1f ms | %s |

Send latency while a snapshot runs vs between snapshots (same run, same client):

| | sends | p50 | p99 | max |
|---|---|---|---|---|
| between snapshots | %d | %s | %s | %s |
| during snapshots | %d | %s | %s | %s |
| ratio during/between | | %s | %s | %s |
`, runs, ballastMB, time.Now().UTC().Format("2006-01-02"), machine(), float64(stateBytes)/1e6,
		runs, pct(0.5), pct(0.95), pauses[len(pauses)-1], dq(durations, 0.5).Round(100*time.Millisecond),
		len(between), dq(between, 0.5).Round(100*time.Microsecond), dq(between, 0.99).Round(100*time.Microsecond), dq(between, 1).Round(100*time.Microsecond),
		len(during), dq(during, 0.5).Round(100*time.Microsecond), dq(during, 0.99).Round(100*time.Microsecond), dq(during, 1).Round(100*time.Microsecond),
		ratio(dq(during, 0.5), dq(between, 0.5)), ratio(dq(during, 0.99), dq(between, 0.99)), ratio(dq(during, 1), dq(between, 1)))
	t.Log("\n" + report)
	if out := os.Getenv("OUTPOST_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func machine() string {
	return fmt.Sprintf("%s, %d cores", loadgen.CPUModel(), runtime.NumCPU())
}
