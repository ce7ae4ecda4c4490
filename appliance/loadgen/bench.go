package loadgen

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Variants a bench can run.
const (
	VariantOutpost = "outpost"        // A: outpostd + its generated dendrite.yaml, through the gateway
	VariantStock   = "stock"          // B: the same dendrite under generate-config's defaults
	VariantDirect  = "outpost-direct" // A's server, but the clients use dendrite's socket
)

// Variant is one server setup a bench compares: a Kind (VariantOutpost, VariantStock or
// VariantDirect) under a name, optionally with another outpostd or dendrite binary (a
// candidate configuration or patch) or extra environment (GOGC, GOMAXPROCS, ...).
type Variant struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Outpostd string   `json:"outpostd,omitempty"`
	Dendrite string   `json:"dendrite,omitempty"`
	Env      []string `json:"env,omitempty"`
}

// ParseVariant reads "name=kind[,outpostd=PATH][,dendrite=PATH][,env=K=V K=V]".
func ParseVariant(s string) (Variant, error) {
	parts := strings.Split(s, ",")
	name, kind, ok := strings.Cut(parts[0], "=")
	if !ok {
		name, kind = parts[0], parts[0]
	}
	v := Variant{Name: name, Kind: kind}
	switch kind {
	case VariantOutpost, VariantStock, VariantDirect:
	default:
		return v, fmt.Errorf("variant %q: kind %q is not outpost, stock or outpost-direct", s, kind)
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		switch k {
		case "outpostd":
			v.Outpostd = val
		case "dendrite":
			v.Dendrite = val
		case "env":
			v.Env = strings.Fields(val)
		default:
			return v, fmt.Errorf("variant %q: unknown option %q", s, k)
		}
	}
	return v, nil
}

// Level is one load level of a bench: closed loop (Rate 0: how much can it take) or a
// fixed total send rate that both servers can sustain (how quickly does it deliver).
type Level struct {
	Users    int           `json:"users"`
	Rooms    int           `json:"rooms"`
	Rate     float64       `json:"rate,omitempty"`
	Duration time.Duration `json:"-"`
	Window   string        `json:"window"`
}

// Load names the level's load ("closed loop" or "8 msg/s").
func (l Level) Load() string {
	if l.Rate > 0 {
		return fmt.Sprintf("%g msg/s", l.Rate)
	}
	return "closed loop"
}

// BenchOptions configure an A/B bench.
type BenchOptions struct {
	Bins   Binaries
	Levels []Level
	Rounds int
	Warmup time.Duration
	Drain  time.Duration
	// Variants run per round and level, in this order (default outpost, stock). Ratios
	// are the first over the second.
	Variants []Variant
	// WorkDir holds each run's server state; a run's directory is removed after it
	// unless KeepState.
	WorkDir   string
	KeepState bool
	// OverheadUsers: after each A run at this many users, probe gateway vs socket latency
	// (OverheadIters requests of each kind on each path). DirectUsers: also run the whole
	// load straight at the socket at this many users, every round. 0 disables either.
	OverheadUsers int
	OverheadIters int
	DirectUsers   int
	// ProfileUsers: one extra A run at this many users with dendrite's pprof on, summarised.
	// The profile is kept in ProfileDir (default: WorkDir).
	ProfileUsers int
	ProfileDir   string
	// BudgetUsers and BudgetMB: the memory ceiling for outpostd + dendrite.
	BudgetUsers int
	BudgetMB    float64
	// AEnv and BEnv are extra environment for the servers (tuning experiments).
	AEnv, BEnv []string
	GoTool     string
	Command    string
	Logf       func(format string, args ...any)
}

// RunRecord is one run of a bench.
type RunRecord struct {
	Seq   int `json:"seq"`
	Round int `json:"round"`
	Level int `json:"level"` // index into BenchResult.Levels
	*Result
}

// Agg is the median of a variant's runs at one level.
type Agg struct {
	Runs       int     `json:"runs"`
	Throughput float64 `json:"throughput_msgs_per_sec"`
	DelivRate  float64 `json:"deliveries_per_sec"`
	SendP50    float64 `json:"send_p50_ms"`
	DelivP50   float64 `json:"delivery_p50_ms"`
	DelivP95   float64 `json:"delivery_p95_ms"`
	DelivP99   float64 `json:"delivery_p99_ms"`
	CPUPerMsg  float64 `json:"cpu_ms_per_msg"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	Missing    int64   `json:"deliveries_missing"`
	Errors     int64   `json:"errors"`
}

// Ratios are A/B. Throughput: higher is better; the rest: lower is better.
type Ratios struct {
	Throughput float64 `json:"throughput"`
	DelivRate  float64 `json:"deliveries_per_sec"`
	DelivP50   float64 `json:"delivery_p50"`
	DelivP95   float64 `json:"delivery_p95"`
	DelivP99   float64 `json:"delivery_p99"`
	CPUPerMsg  float64 `json:"cpu_per_msg"`
	PeakRSS    float64 `json:"peak_rss"`
}

// LevelSummary compares the variants at one level.
type LevelSummary struct {
	Level
	Aggs  map[string]Agg `json:"variants"`
	Ratio *Ratios        `json:"ratio_a_over_b,omitempty"`
}

// Check is one target of the issue, measured.
type Check struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// Machine describes where a bench ran.
type Machine struct {
	CPU          string `json:"cpu"`
	Cores        int    `json:"cores"`
	MemoryGB     int    `json:"memory_gb"`
	Kernel       string `json:"kernel"`
	Go           string `json:"go"`
	Dendrite     string `json:"dendrite"`
	Outpost      string `json:"outpost"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// BenchResult is everything a bench measured.
type BenchResult struct {
	Command       string            `json:"command"`
	Started       time.Time         `json:"started"`
	Finished      time.Time         `json:"finished"`
	Machine       Machine           `json:"machine"`
	Rounds        int               `json:"rounds"`
	Warmup        string            `json:"warmup"`
	Drain         string            `json:"drain"`
	Runs          []RunRecord       `json:"runs"`
	Levels        []LevelSummary    `json:"levels"`
	Variants      []Variant         `json:"variants"`
	OverheadUsers int               `json:"gateway_overhead_users,omitempty"`
	Overhead      []*OverheadResult `json:"gateway_overhead,omitempty"`
	OverheadMed   []OverheadEntry   `json:"gateway_overhead_median,omitempty"`
	// OverheadByVariant: the medians of every probed variant, when there was more than one.
	OverheadByVariant map[string][]OverheadEntry   `json:"gateway_overhead_by_variant,omitempty"`
	Budget            *Budget                      `json:"memory_budget,omitempty"`
	Profile           *ProfileSummary              `json:"profile,omitempty"`
	ProfileRun        *Result                      `json:"profile_run,omitempty"`
	JournalModes      map[string]map[string]string `json:"journal_modes"`
	Checks            []Check                      `json:"checks"`
}

// Budget is the memory check.
type Budget struct {
	Users      int     `json:"users"`
	CeilingMB  float64 `json:"ceiling_mb"`
	PeakMB     float64 `json:"peak_mb"` // worst A run at that level
	OutpostdMB float64 `json:"outpostd_peak_mb"`
	DendriteMB float64 `json:"dendrite_peak_mb"`
	Met        bool    `json:"met"`
}

type bench struct {
	o     BenchOptions
	res   *BenchResult
	seq   int
	level int // index of the level being run
}

func (b *bench) logf(format string, args ...any) {
	if b.o.Logf != nil {
		b.o.Logf(format, args...)
	}
}

// RunBench runs the interleaved A/B comparison.
func RunBench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if o.Rounds <= 0 {
		o.Rounds = 2
	}
	if len(o.Variants) == 0 {
		o.Variants = []Variant{{Name: VariantOutpost, Kind: VariantOutpost, Env: o.AEnv}, {Name: VariantStock, Kind: VariantStock, Env: o.BEnv}}
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "outpost-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	for i := range o.Levels {
		if o.Levels[i].Rooms <= 0 {
			o.Levels[i].Rooms = max(1, (o.Levels[i].Users+9)/10)
		}
		o.Levels[i].Window = o.Levels[i].Duration.String()
	}
	b := &bench{o: o, res: &BenchResult{
		Command: o.Command, Started: time.Now().UTC(), Machine: machineInfo(ctx, o.Bins), Rounds: o.Rounds,
		Warmup: o.Warmup.String(), Drain: o.Drain.String(), JournalModes: map[string]map[string]string{},
		Variants: o.Variants, OverheadUsers: o.OverheadUsers,
	}}
	for li, lv := range o.Levels {
		b.level = li
		for round := 1; round <= o.Rounds; round++ {
			variants := slices.Clone(o.Variants)
			if o.DirectUsers == lv.Users && lv.Rate == 0 {
				variants = append(variants, Variant{Name: VariantDirect, Kind: VariantDirect, Env: o.Variants[0].Env, Outpostd: o.Variants[0].Outpostd, Dendrite: o.Variants[0].Dendrite})
			}
			for _, v := range variants {
				if _, err := b.run(ctx, v, lv, round, false); err != nil {
					return b.res, err
				}
			}
		}
	}
	if o.ProfileUsers > 0 {
		lv := Level{Users: o.ProfileUsers, Rooms: max(1, (o.ProfileUsers+9)/10), Duration: 20 * time.Second}
		for _, l := range o.Levels {
			if l.Users == o.ProfileUsers && l.Rate == 0 {
				lv = l
			}
		}
		if _, err := b.run(ctx, o.Variants[0], lv, 0, true); err != nil {
			return b.res, err
		}
	}
	b.res.Machine.LoadAvgEnd = loadAvg()
	b.res.Finished = time.Now().UTC()
	b.summarize()
	return b.res, nil
}

// run starts a fresh server for one variant, loads it, and stops it.
func (b *bench) run(ctx context.Context, v Variant, lv Level, round int, profile bool) (*Result, error) {
	b.seq++
	variant := v.Name
	dir := filepath.Join(b.o.WorkDir, fmt.Sprintf("%02d-%s-%du", b.seq, variant, lv.Users))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if !b.o.KeepState {
		defer os.RemoveAll(dir)
	}
	var srv *Server
	var err error
	bins := b.o.Bins
	if v.Outpostd != "" {
		bins.Outpostd = v.Outpostd
	}
	if v.Dendrite != "" {
		bins.Dendrite = v.Dendrite
	}
	switch v.Kind {
	case VariantOutpost, VariantDirect:
		srv, err = StartOutpost(ctx, bins, dir, ServerOptions{Env: v.Env, Pprof: profile})
	case VariantStock:
		srv, err = StartStock(ctx, bins, dir, ServerOptions{Env: v.Env, Pprof: profile})
	default:
		return nil, fmt.Errorf("bench: unknown variant kind %q", v.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", variant, err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			b.logf("bench: %v", err)
		}
	}()
	t := srv.Target
	if v.Kind == VariantDirect {
		t = *srv.Direct
	}
	t.Name = variant
	label := fmt.Sprintf("[%d] %s, %d users, %s, round %d", b.seq, variant, lv.Users, lv.Load(), round)
	if profile {
		label = fmt.Sprintf("[%d] %s, %d users, profiled", b.seq, variant, lv.Users)
	}
	b.logf("%s: %s", time.Now().Format("15:04:05"), label)
	opts := Options{Users: lv.Users, Rooms: lv.Rooms, Rate: lv.Rate, Warmup: b.o.Warmup, Duration: lv.Duration, Drain: b.o.Drain,
		Logf: func(f string, a ...any) { b.logf("    "+f, a...) }}
	var profPath string
	profDone := make(chan struct{})
	if profile {
		dir := b.o.ProfileDir
		if dir == "" {
			dir = b.o.WorkDir
		}
		profPath = filepath.Join(dir, fmt.Sprintf("dendrite-%du.cpu.pprof", lv.Users))
		win := lv.Duration
		opts.OnWindow = func(context.Context) {
			defer close(profDone)
			if err := CaptureCPUProfile(ctx, srv.PprofAddr, win, profPath); err != nil {
				b.logf("bench: profile: %v", err)
				profPath = ""
			}
		}
	} else {
		close(profDone)
	}
	res, err := Run(ctx, t, opts)
	<-profDone
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w\nserver log tail:\n%s", label, err, srv.LogTail(20))
	}
	if modes, err := JournalModes(srv.DBDir); err == nil {
		b.res.JournalModes[variant] = modes
	}
	if profile {
		b.res.ProfileRun = res
		if profPath != "" {
			sum, err := SummarizeProfile(ctx, b.o.GoTool, b.o.Bins.Dendrite, profPath)
			if err != nil {
				b.logf("bench: profile summary: %v", err)
			} else {
				sum.Messages = res.Sent
				b.res.Profile = sum
			}
		}
		return res, nil
	}
	b.res.Runs = append(b.res.Runs, RunRecord{Seq: b.seq, Round: round, Level: b.level, Result: res})
	// Every Outpost variant is probed, so a gateway change can be compared with -variant.
	if v.Kind == VariantOutpost && b.o.OverheadUsers == lv.Users && lv.Rate == 0 && srv.Direct != nil {
		// Let the server finish the run's backlog first: the probe is about request
		// latency, not about queueing behind leftover work.
		waitIdle(ctx, srv.Target.Procs, 15*time.Second)
		ov, err := ProbeOverhead(ctx, srv.Target, *srv.Direct, b.o.OverheadIters)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		ov.Variant = v.Name
		b.res.Overhead = append(b.res.Overhead, ov)
		for _, e := range ov.Requests {
			b.logf("    gateway overhead (%s), %s: %+.1f%% (%.3f ms)", v.Name, e.Request, e.OverheadPct, e.AddedMs)
		}
	}
	return res, nil
}

// overheadMedians is the median over rounds of each request kind's overhead in the probes of
// one variant (results without a variant name belong to the first).
func overheadMedians(all []*OverheadResult, variant, first string) []OverheadEntry {
	var probes []*OverheadResult
	for _, ov := range all {
		if ov.Variant == variant || (ov.Variant == "" && variant == first) {
			probes = append(probes, ov)
		}
	}
	if len(probes) == 0 {
		return nil
	}
	var out []OverheadEntry
	for i, e := range probes[0].Requests {
		var pct, added, gw, dir []float64
		for _, ov := range probes {
			pct = append(pct, ov.Requests[i].OverheadPct)
			added = append(added, ov.Requests[i].AddedMs)
			gw = append(gw, ov.Requests[i].Gateway.P50)
			dir = append(dir, ov.Requests[i].Direct.P50)
		}
		out = append(out, OverheadEntry{Request: e.Request,
			Gateway: Dist{P50: median(gw)}, Direct: Dist{P50: median(dir)},
			OverheadPct: round1(median(pct)), AddedMs: median(added)})
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return round3((s[len(s)/2-1] + s[len(s)/2]) / 2)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

func (b *bench) summarize() {
	r := b.res
	for li, lv := range b.o.Levels {
		ls := LevelSummary{Level: lv, Aggs: map[string]Agg{}}
		byVariant := map[string][]*Result{}
		for _, run := range r.Runs {
			if run.Level == li {
				byVariant[run.Target] = append(byVariant[run.Target], run.Result)
			}
		}
		for v, runs := range byVariant {
			var a Agg
			col := func(f func(*Result) float64) float64 {
				var xs []float64
				for _, x := range runs {
					xs = append(xs, f(x))
				}
				return median(xs)
			}
			a.Runs = len(runs)
			a.Throughput = col(func(x *Result) float64 { return x.Throughput })
			a.DelivRate = col(func(x *Result) float64 { return x.DeliveryRate })
			a.SendP50 = col(func(x *Result) float64 { return x.SendLatency.P50 })
			a.DelivP50 = col(func(x *Result) float64 { return x.Delivery.P50 })
			a.DelivP95 = col(func(x *Result) float64 { return x.Delivery.P95 })
			a.DelivP99 = col(func(x *Result) float64 { return x.Delivery.P99 })
			a.CPUPerMsg = col(func(x *Result) float64 { return x.CPUPerMsgMs })
			a.PeakRSSMB = col(func(x *Result) float64 { return x.PeakRSSMB })
			for _, x := range runs {
				a.Missing += x.Lost
				a.Errors += x.ErrorCount
			}
			ls.Aggs[v] = a
		}
		A, okA := ls.Aggs[b.o.Variants[0].Name]
		var B Agg
		okB := false
		if len(b.o.Variants) > 1 {
			B, okB = ls.Aggs[b.o.Variants[1].Name]
		}
		if okA && okB {
			ls.Ratio = &Ratios{
				Throughput: ratio(A.Throughput, B.Throughput),
				DelivRate:  ratio(A.DelivRate, B.DelivRate),
				DelivP50:   ratio(A.DelivP50, B.DelivP50),
				DelivP95:   ratio(A.DelivP95, B.DelivP95),
				DelivP99:   ratio(A.DelivP99, B.DelivP99),
				CPUPerMsg:  ratio(A.CPUPerMsg, B.CPUPerMsg),
				PeakRSS:    ratio(A.PeakRSSMB, B.PeakRSSMB),
			}
		}
		r.Levels = append(r.Levels, ls)
	}
	// Gateway overhead: the median over rounds of each request kind's overhead, for the first
	// variant (the one the targets are about) and, when several were probed, for each.
	r.OverheadMed = overheadMedians(r.Overhead, r.Variants[0].Name, r.Variants[0].Name)
	if len(r.Variants) > 1 {
		r.OverheadByVariant = map[string][]OverheadEntry{}
		for _, v := range r.Variants {
			if med := overheadMedians(r.Overhead, v.Name, r.Variants[0].Name); len(med) > 0 {
				r.OverheadByVariant[v.Name] = med
			}
		}
		if len(r.OverheadByVariant) < 2 {
			r.OverheadByVariant = nil
		}
	}
	if b.o.BudgetUsers > 0 && b.o.BudgetMB > 0 {
		bg := &Budget{Users: b.o.BudgetUsers, CeilingMB: b.o.BudgetMB}
		for _, run := range r.Runs {
			if run.Users != b.o.BudgetUsers || run.Target != b.o.Variants[0].Name {
				continue
			}
			if run.PeakRSSMB > bg.PeakMB {
				bg.PeakMB = run.PeakRSSMB
				for _, p := range run.Procs {
					switch p.Name {
					case "outpostd":
						bg.OutpostdMB = p.PeakRSSMB
					case "dendrite":
						bg.DendriteMB = p.PeakRSSMB
					}
				}
			}
		}
		if bg.PeakMB > 0 {
			bg.Met = bg.PeakMB <= bg.CeilingMB
			r.Budget = bg
		}
	}
	// The targets, at 20 users (or the level closest to it): throughput from the
	// closed loop, delivery latency from the fixed-rate level when there is one.
	var at, lat *LevelSummary
	for i := range r.Levels {
		l := &r.Levels[i]
		if l.Ratio != nil && l.Rate == 0 && (at == nil || abs(l.Users-20) < abs(at.Users-20)) {
			at = l
		}
	}
	if at != nil {
		lat = at
		for i := range r.Levels {
			if l := &r.Levels[i]; l.Ratio != nil && l.Rate > 0 && l.Users == at.Users {
				lat = l
			}
		}
		u := strconv.Itoa(at.Users)
		r.Checks = append(r.Checks,
			Check{"send throughput, " + u + " users, closed loop", "≥ 2x stock", fmt.Sprintf("%.2fx", at.Ratio.Throughput), at.Ratio.Throughput >= 2},
			Check{"delivery p95, " + u + " users, " + lat.Load(), "≤ 0.5x stock", fmt.Sprintf("%.2fx", lat.Ratio.DelivP95), lat.Ratio.DelivP95 <= 0.5},
		)
		var worst float64
		for _, l := range r.Levels {
			if l.Ratio != nil {
				worst = max(worst, l.Ratio.PeakRSS)
			}
		}
		r.Checks = append(r.Checks, Check{"peak RSS (worst level)", "≤ 0.8x stock", fmt.Sprintf("%.2fx", worst), worst <= 0.8})
	}
	for _, e := range r.OverheadMed {
		if strings.HasPrefix(e.Request, "PUT /send") || strings.HasPrefix(e.Request, "GET /rooms") {
			r.Checks = append(r.Checks, Check{"gateway overhead, " + e.Request, "≤ 5%", fmt.Sprintf("%+.1f%% (%+.3f ms)", e.OverheadPct, e.AddedMs), e.OverheadPct <= 5})
		}
	}
	if r.Budget != nil {
		r.Checks = append(r.Checks, Check{fmt.Sprintf("memory, %d active users", r.Budget.Users), fmt.Sprintf("≤ %.0f MB RSS (outpostd + dendrite)", r.Budget.CeilingMB),
			fmt.Sprintf("%.0f MB", r.Budget.PeakMB), r.Budget.Met})
	}
}

// waitIdle waits (at most max) until the processes use under a tenth of a core.
func waitIdle(ctx context.Context, procs []Proc, max time.Duration) {
	deadline := time.Now().Add(max)
	s := newSampler(procs, time.Second)
	for time.Now().Before(deadline) {
		a, err := s.read()
		if err != nil || sleep(ctx, time.Second) != nil {
			return
		}
		b, err := s.read()
		if err != nil {
			return
		}
		var used time.Duration
		for i := range a {
			used += b[i].CPU - a[i].CPU
		}
		if used < 100*time.Millisecond {
			return
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// CPUModel is the processor's name from /proc/cpuinfo, for benchmark reports ("" if unknown).
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func machineInfo(ctx context.Context, bins Binaries) Machine {
	m := Machine{CPU: CPUModel(), Cores: runtime.NumCPU(), Go: runtime.Version(), LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemoryGB = int((kb + 512<<10) >> 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, bins.Dendrite, "-version").Output(); err == nil {
		m.Dendrite = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(cctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Outpost = strings.TrimSpace(string(out))
	}
	return m
}
