package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const benchUsage = `outpost-bench runs the same dendrite binary under (A) Outpost's generated configuration,
through outpostd's gateway, and (B) Dendrite's stock generate-config configuration, interleaved
(A B A B ...) at each load level, and writes the comparison into docs/benchmarks.md.

  outpost-bench -bin bin -levels 2:30s,20:30s,100:20s -out docs/benchmarks.md

Flags:
`

// BenchMain is outpost-bench's main. It returns the process exit code.
func BenchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	var (
		binDir    = fs.String("bin", "bin", "directory holding outpostd and dendrite")
		genConfig = fs.String("generate-config", "", "Dendrite's generate-config (default BIN/dendrite-generate-config, built from firmware/dendrite if missing)")
		repo      = fs.String("repo", ".", "repository root (to build generate-config from firmware/dendrite)")
		levels    = fs.String("levels", "2:30s,20:30s,100:20s,20:30s@8", "load levels, users[:window][@msgs-per-second] comma-separated (no @: closed loop)")
		rounds    = fs.Int("rounds", 2, "interleaved rounds per level")
		warmup    = fs.Duration("warmup", 3*time.Second, "load before each window")
		drain     = fs.Duration("drain", 30*time.Second, "wait at most this long for late deliveries (a run moves on as soon as all arrived)")
		variants  variantFlags
		ovUsers   = fs.Int("overhead-users", 20, "probe gateway vs socket latency after each A run at this level (0: off)")
		ovIters   = fs.Int("overhead-iters", 200, "requests of each kind on each path per probe")
		dirUsers  = fs.Int("direct-users", 0, "also run the whole load straight at dendrite's socket at this level (0: off)")
		profUsers = fs.Int("profile-users", 20, "one extra profiled A run at this level (0: off)")
		profDir   = fs.String("profile-dir", "", "keep the CPU profile here (default: -workdir, removed with it)")
		budUsers  = fs.Int("budget-users", 20, "memory budget: active users")
		budMB     = fs.Float64("budget-mb", 256, "memory budget: ceiling for outpostd + dendrite RSS, MB")
		aEnv      = fs.String("a-env", "", "extra environment for A, K=V comma-separated (experiments)")
		bEnv      = fs.String("b-env", "", "extra environment for B, K=V comma-separated (experiments)")
		out       = fs.String("out", "", "update this markdown file's generated section (e.g. docs/benchmarks.md)")
		jsonOut   = fs.String("json", "", "write the full result as JSON here")
		workDir   = fs.String("workdir", "", "server state goes here (default: a temporary directory, removed)")
		keep      = fs.Bool("keep", false, "keep each run's server state under -workdir")
		goTool    = fs.String("go", "go", "the go command (for go tool pprof, and building generate-config)")
		render    = fs.String("render", "", "only re-render -out from an earlier -json result (re-summarising its profile if the file is still there)")
		command   = fs.String("command", "", "how this run was invoked, for the report (default: the command line)")
	)
	fs.Var(&variants, "variant", "a variant to compare, name=kind[,outpostd=PATH][,dendrite=PATH][,env=K=V K=V] (repeat; default: outpost then stock; ratios are first/second)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "outpost-bench: %v\n", err); return 1 }
	if *render != "" {
		return renderOnly(ctx, *render, *out, *goTool, *binDir, stdout, stderr)
	}
	lv, err := parseLevels(*levels)
	if err != nil {
		return fail(err)
	}
	bins := Binaries{Outpostd: filepath.Join(*binDir, "outpostd"), Dendrite: filepath.Join(*binDir, "dendrite"), GenerateConfig: *genConfig}
	for _, p := range []*string{&bins.Outpostd, &bins.Dendrite} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fail(err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fail(fmt.Errorf("%w (run make build first)", err))
		}
		*p = abs
	}
	if bins.GenerateConfig == "" {
		bins.GenerateConfig = filepath.Join(filepath.Dir(bins.Dendrite), "dendrite-generate-config")
		if _, err := os.Stat(bins.GenerateConfig); err != nil {
			tmp, err := os.MkdirTemp("", "outpost-bench-gc-")
			if err != nil {
				return fail(err)
			}
			defer os.RemoveAll(tmp)
			bins.GenerateConfig = filepath.Join(tmp, "generate-config")
			fmt.Fprintf(stderr, "building Dendrite's generate-config from %s/firmware/dendrite\n", *repo)
			cmd := exec.CommandContext(ctx, *goTool, "build", "-o", bins.GenerateConfig, "github.com/element-hq/dendrite/cmd/generate-config")
			cmd.Dir = filepath.Join(*repo, "firmware", "dendrite")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				return fail(fmt.Errorf("build generate-config: %v\n%s", err, b))
			}
		}
	}
	if *command == "" {
		*command = "outpost-bench " + strings.Join(args, " ")
	}
	o := BenchOptions{
		Bins: bins, Levels: lv, Rounds: *rounds, Warmup: *warmup, Drain: *drain,
		Variants: variants, WorkDir: *workDir, KeepState: *keep,
		OverheadUsers: *ovUsers, OverheadIters: *ovIters, DirectUsers: *dirUsers, ProfileUsers: *profUsers, ProfileDir: *profDir,
		BudgetUsers: *budUsers, BudgetMB: *budMB, AEnv: splitList(*aEnv), BEnv: splitList(*bEnv),
		Command: *command, GoTool: *goTool,
		Logf: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) },
	}
	for _, d := range []string{o.WorkDir, o.ProfileDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fail(err)
			}
		}
	}
	if *jsonOut != "" {
		if err := os.MkdirAll(filepath.Dir(*jsonOut), 0o755); err != nil {
			return fail(err)
		}
	}
	res, err := RunBench(ctx, o)
	if res != nil && *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); werr != nil {
			fmt.Fprintf(stderr, "outpost-bench: %v\n", werr)
		}
	}
	if err != nil {
		return fail(err)
	}
	var runs []*Result
	for _, r := range res.Runs {
		runs = append(runs, r.Result)
	}
	fmt.Fprint(stdout, Table(runs))
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, Markdown(res))
	if *out != "" {
		if err := UpdateDoc(*out, res); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", *out)
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseLevels reads "2:30s,20:30s,100:20s,20:30s@8": users, the window (default 30s), and
// optionally a fixed total send rate in messages per second (default: closed loop).
func parseLevels(s string) ([]Level, error) {
	var out []Level
	for _, p := range splitList(s) {
		var rate float64
		if spec, r, ok := strings.Cut(p, "@"); ok {
			v, err := strconv.ParseFloat(r, 64)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("level %q: bad rate", p)
			}
			p, rate = spec, v
		}
		u, d, _ := strings.Cut(p, ":")
		users, err := strconv.Atoi(u)
		if err != nil || users < 2 {
			return nil, fmt.Errorf("level %q: want users (≥ 2)[:window]", p)
		}
		dur := 30 * time.Second
		if d != "" {
			if dur, err = time.ParseDuration(d); err != nil || dur <= 0 {
				return nil, fmt.Errorf("level %q: bad window", p)
			}
		}
		out = append(out, Level{Users: users, Duration: dur, Rate: rate})
	}
	if len(out) == 0 {
		return nil, errors.New("no levels")
	}
	return out, nil
}

type variantFlags []Variant

func (v *variantFlags) String() string { return fmt.Sprint(*v) }

func (v *variantFlags) Set(s string) error {
	x, err := ParseVariant(s)
	if err != nil {
		return err
	}
	*v = append(*v, x)
	return nil
}

// renderOnly rewrites the report from a saved result.
func renderOnly(ctx context.Context, jsonPath, out, goTool, binDir string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		fmt.Fprintf(stderr, "outpost-bench: %v\n", err)
		return 1
	}
	var res BenchResult
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(stderr, "outpost-bench: %s: %v\n", jsonPath, err)
		return 1
	}
	if p := res.Profile; p != nil && p.Path != "" {
		if _, err := os.Stat(p.Path); err == nil {
			if sum, err := SummarizeProfile(ctx, goTool, filepath.Join(binDir, "dendrite"), p.Path); err == nil {
				sum.Messages = p.Messages
				res.Profile = sum
			} else {
				fmt.Fprintf(stderr, "outpost-bench: profile: %v\n", err)
			}
		}
	}
	fmt.Fprint(stdout, Markdown(&res))
	if out != "" {
		if err := UpdateDoc(out, &res); err != nil {
			fmt.Fprintf(stderr, "outpost-bench: %v\n", err)
			return 1
		}
	}
	return 0
}
