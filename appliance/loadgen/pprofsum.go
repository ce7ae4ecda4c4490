package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Share is one bucket of a CPU profile.
type Share struct {
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
}

// ProfileSummary condenses a dendrite CPU profile into where the time goes (which part of
// the server a sample belongs to) and what it is doing (SQL parsing, fsync, GC, ...).
type ProfileSummary struct {
	Path     string  `json:"path"`
	Seconds  float64 `json:"sampled_seconds"`
	Where    []Share `json:"where"`
	What     []Share `json:"what"`
	TopFlat  string  `json:"top_flat"`
	Messages int64   `json:"messages,omitempty"`
}

// whereRules attribute a stack to the server component it runs in: the first rule any of
// whose patterns occurs in any frame wins, so more specific rules come first.
var whereRules = []struct{ name, pats string }{
	{"sync API: /sync long polls", "syncapi/sync.|syncapi/routing.|syncapi/streams."},
	{"sync API: consuming new events", "syncapi/consumers."},
	{"client API: /send and other requests", "clientapi/"},
	{"roomserver: event input, auth, state", "roomserver/"},
	{"user API: push rules, notification counts", "userapi/consumers."},
	{"user API: other (token lookups)", "userapi/"},
	{"federation API", "federationapi/"},
	{"media API", "mediaapi/"},
	{"JetStream (embedded NATS)", "nats-io/"},
	{"Go GC (background)", "runtime.gcBgMarkWorker|runtime.bgsweep|runtime.bgscavenge"},
	{"HTTP serving (outside handlers)", "net/http."},
}

// whatRules classify a stack by activity, with the same first-match rule.
var whatRules = []struct{ name, pats string }{
	{"fsync", "syscall.Fsync|libc.Xfsync|Fdatasync"},
	{"SQLite: opening connections (schema load, pragmas)", "modernc.org/sqlite.newConn"},
	{"SQLite: parsing SQL (statement prepare)", "_sqlite3RunParser|_sqlite3LockAndPrepare"},
	{"SQLite: executing, I/O, locks", "modernc.org/sqlite"},
	{"Go GC and allocation", "runtime.gcBgMarkWorker|runtime.gcDrain|runtime.bgsweep|runtime.mallocgc|runtime.gcAssist|runtime.bgscavenge"},
	{"JSON encode/decode", "encoding/json|tidwall/gjson|tidwall/sjson|CanonicalJSON"},
	{"crypto (signing, hashing)", "crypto/|golang.org/x/crypto"},
	{"JetStream file store", "server.(*fileStore)|server.(*msgBlock)|server.(*consumerFileStore)"},
	{"other syscalls (network, files)", "syscall."},
}

func classify(frames []string, rules []struct{ name, pats string }) string {
	for _, r := range rules {
		for _, p := range strings.Split(r.pats, "|") {
			for _, f := range frames {
				if strings.Contains(f, p) {
					return r.name
				}
			}
		}
	}
	return "other"
}

// SummarizeProfile runs `go tool pprof` on a CPU profile and buckets its samples.
func SummarizeProfile(ctx context.Context, goTool, binary, path string) (*ProfileSummary, error) {
	if goTool == "" {
		goTool = "go"
	}
	args := []string{"tool", "pprof", "-traces"}
	if binary != "" {
		args = append(args, binary)
	}
	out, err := exec.CommandContext(ctx, goTool, append(args, path)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces: %w", err)
	}
	s, err := summarizeTraces(string(out))
	if err != nil {
		return nil, err
	}
	s.Path = path
	args = []string{"tool", "pprof", "-top", "-nodecount=20"}
	if binary != "" {
		args = append(args, binary)
	}
	top, err := exec.CommandContext(ctx, goTool, append(args, path)...).Output()
	if err != nil && binary != "" {
		// A stripped binary pprof cannot read: the profile's own symbols are enough.
		top, err = exec.CommandContext(ctx, goTool, "tool", "pprof", "-top", "-nodecount=20", path).Output()
	}
	if err == nil {
		// Keep the table, not pprof's header lines.
		lines := strings.Split(string(top), "\n")
		for i, l := range lines {
			if strings.Contains(l, "flat%") {
				lines = lines[i:]
				break
			}
		}
		s.TopFlat = strings.TrimRight(strings.Join(lines, "\n"), "\n")
	}
	return s, nil
}

// summarizeTraces parses `go tool pprof -traces` output.
func summarizeTraces(text string) (*ProfileSummary, error) {
	where := map[string]time.Duration{}
	what := map[string]time.Duration{}
	var total time.Duration
	var val time.Duration
	var frames []string
	flush := func() {
		if val > 0 && len(frames) > 0 {
			where[classify(frames, whereRules)] += val
			what[classify(frames, whatRules)] += val
			total += val
		}
		val, frames = 0, nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			in = true
			continue
		}
		if !in {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(frames) == 0 && val == 0 {
			if strings.HasSuffix(f[0], ":") {
				continue // a pprof label ("type:  consumer"), before the sample's value
			}
			d, err := parsePprofDuration(f[0])
			if err != nil {
				return nil, fmt.Errorf("pprof traces: %q: %w", line, err)
			}
			val = d
			if len(f) > 1 {
				frames = append(frames, f[1])
			}
			continue
		}
		frames = append(frames, f[0])
	}
	flush()
	if total == 0 {
		return nil, fmt.Errorf("pprof traces: no samples")
	}
	toShares := func(m map[string]time.Duration) []Share {
		var out []Share
		for k, v := range m {
			out = append(out, Share{Name: k, Percent: round1(100 * float64(v) / float64(total))})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Percent != out[j].Percent {
				return out[i].Percent > out[j].Percent
			}
			return out[i].Name < out[j].Name
		})
		return out
	}
	return &ProfileSummary{Seconds: round3(total.Seconds()), Where: toShares(where), What: toShares(what)}, nil
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// parsePprofDuration reads pprof's sample values ("10ms", "1.20s", "500us").
func parsePprofDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	// pprof may print bare numbers for non-time profiles; treat them as nanoseconds.
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(n), nil
}
