package loadgen

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-im/outpost/appliance/testenv"
)

// The smoke tests run the load generator and a miniature bench against a real outpostd and
// dendrite for a few seconds, so `make test` keeps the harness working. They check that
// things were measured and nothing was lost, never how fast anything was.

// dendriteBinary is the real dendrite (see testenv).
func dendriteBinary(t *testing.T) string { return testenv.DendriteBinary(t) }

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds outpostd and Dendrite's generate-config once per test binary.
func binaries(t *testing.T) Binaries {
	t.Helper()
	dendrite := dendriteBinary(t)
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "outpost-loadgen-bin")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		for _, b := range []struct{ dir, pkg, out string }{
			{"../..", "./cmd/outpostd", "outpostd"},
			{"../../firmware/dendrite", "github.com/element-hq/dendrite/cmd/generate-config", "generate-config"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Dir = b.dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = &buildError{b.pkg, err, string(out)}
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return Binaries{Outpostd: filepath.Join(built.dir, "outpostd"), Dendrite: dendrite, GenerateConfig: filepath.Join(built.dir, "generate-config")}
}

type buildError struct {
	pkg string
	err error
	out string
}

func (e *buildError) Error() string { return "build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func checkRun(t *testing.T, r *Result, procs ...string) {
	t.Helper()
	if r.Sent == 0 || r.SendLatency.N == 0 {
		t.Errorf("%s: nothing sent: %+v", r.Target, r)
	}
	if r.Expected == 0 || r.Delivered != r.Expected || r.Lost != 0 || r.Delivery.N == 0 {
		t.Errorf("%s: deliveries %d of %d (missing %d)", r.Target, r.Delivered, r.Expected, r.Lost)
	}
	if r.ErrorCount != 0 {
		t.Errorf("%s: errors: %v", r.Target, r.Errors)
	}
	if len(r.Procs) != len(procs) {
		t.Fatalf("%s: sampled %+v, want %v", r.Target, r.Procs, procs)
	}
	for i, p := range r.Procs {
		if p.Name != procs[i] || p.PID <= 0 || p.PeakRSSMB <= 0 {
			t.Errorf("%s: process sample %+v", r.Target, p)
		}
	}
	if r.PeakRSSMB <= 0 {
		t.Errorf("%s: no peak RSS", r.Target)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Error(err)
	}
}

func TestSmokeOutpost(t *testing.T) {
	bins := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := StartOutpost(ctx, bins, t.TempDir(), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("outpostd log tail:\n%s", srv.LogTail(40))
		}
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}()
	o := Options{Users: 3, Rooms: 1, Warmup: 300 * time.Millisecond, Duration: 2 * time.Second, Drain: 20 * time.Second,
		MediaEvery: 3, MediaBytes: 4096, Logf: t.Logf}

	// Through the gateway, with uploads.
	r, err := Run(ctx, srv.Target, o)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, r, "outpostd", "dendrite")
	if r.Uploads == 0 || r.UploadLatency == nil || r.UploadLatency.N == 0 {
		t.Errorf("no uploads measured: %d", r.Uploads)
	}
	if !strings.Contains(Table([]*Result{r}), "outpost") {
		t.Error("table lacks the target")
	}

	// Straight at dendrite's socket, open loop.
	o.MediaEvery, o.Rate = 0, 20
	r, err = Run(ctx, *srv.Direct, o)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, r, "outpostd", "dendrite")
	if r.Target != "outpost-direct" || r.Mode != "rate 20/s" {
		t.Errorf("target %q mode %q", r.Target, r.Mode)
	}

	ov, err := ProbeOverhead(ctx, srv.Target, *srv.Direct, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(ov.Requests) != 3 {
		t.Fatalf("overhead probe: %+v", ov)
	}
	for _, e := range ov.Requests {
		if e.Gateway.N != 5 || e.Direct.N != 5 {
			t.Errorf("%s: %d gateway and %d direct samples, want 5 each", e.Request, e.Gateway.N, e.Direct.N)
		}
	}
	modes, err := JournalModes(srv.DBDir)
	if err != nil {
		t.Fatal(err)
	}
	for f, m := range modes {
		if m != "wal" {
			t.Errorf("%s is in %s mode: the WAL pragma did not take effect", f, m)
		}
	}
	if len(modes) == 0 {
		t.Error("no databases found in", srv.DBDir)
	}
}

// TestSmokeBench runs `make bench` in miniature: both variants, one round, a profiled run,
// the overhead probe and the report.
func TestSmokeBench(t *testing.T) {
	bins := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	work := t.TempDir()
	res, err := RunBench(ctx, BenchOptions{
		Bins:   bins,
		Levels: []Level{{Users: 2, Duration: time.Second}},
		Rounds: 1, Warmup: 200 * time.Millisecond, Drain: 20 * time.Second, WorkDir: work,
		OverheadUsers: 2, OverheadIters: 3, ProfileUsers: 2, BudgetUsers: 2, BudgetMB: 100000,
		Command: "go test", Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 || res.Runs[0].Target != VariantOutpost || res.Runs[1].Target != VariantStock {
		t.Fatalf("runs: %+v", res.Runs)
	}
	checkRun(t, res.Runs[0].Result, "outpostd", "dendrite")
	checkRun(t, res.Runs[1].Result, "dendrite")
	if len(res.Levels) != 1 || res.Levels[0].Ratio == nil || res.Levels[0].Ratio.Throughput <= 0 {
		t.Errorf("no A/B ratio: %+v", res.Levels)
	}
	if res.Budget == nil || !res.Budget.Met {
		t.Errorf("budget: %+v", res.Budget)
	}
	if m := res.JournalModes[VariantStock]; len(m) == 0 {
		t.Error("stock journal modes not read")
	} else {
		for f, mode := range m {
			if mode == "wal" {
				t.Errorf("stock %s is in WAL mode; generate-config's default is the rollback journal", f)
			}
		}
	}
	if res.Profile == nil || len(res.Profile.Where) == 0 || len(res.Profile.What) == 0 {
		t.Errorf("no profile summary: %+v", res.Profile)
	}
	doc := filepath.Join(work, "benchmarks.md")
	if err := UpdateDoc(doc, res); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(doc)
	for _, want := range []string{"ratios A/B", "Gateway overhead", "Memory budget", "Where dendrite's CPU goes", "`go test`"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
