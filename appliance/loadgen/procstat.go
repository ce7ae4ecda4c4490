package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100 on every
// Linux architecture Outpost runs on (amd64, arm64); reading it needs sysconf (cgo).
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	CPU time.Duration // user + system time since the process started
	RSS int64         // resident set, bytes
}

// readProc reads CPU time and RSS of pid from /proc.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	statm, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return procSample{}, err
	}
	rss, err := parseStatmRSS(statm, int64(os.Getpagesize()))
	if err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return procSample{CPU: cpu, RSS: rss}, nil
}

// parseStatCPU returns utime+stime from a /proc/PID/stat line. The command name (field 2)
// may contain spaces and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ppid(4) ... utime(14) stime(15): indexes 11 and 12 here.
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// parseStatmRSS returns the resident set (second field of /proc/PID/statm, in pages).
func parseStatmRSS(statm []byte, pageSize int64) (int64, error) {
	f := strings.Fields(string(statm))
	if len(f) < 2 {
		return 0, fmt.Errorf("short statm")
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * pageSize, nil
}

// ProcResult is what was measured of one server process during the window.
type ProcResult struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	EndRSSMB   float64 `json:"end_rss_mb"`
}

// sampler polls /proc for a set of processes. The peak of the processes' summed RSS is
// kept from samples taken at the same instant, so it is a real peak of the whole, not a
// sum of peaks reached at different moments.
type sampler struct {
	procs []Proc
	every time.Duration

	mu       sync.Mutex
	on       bool // inside the measurement window
	peak     []int64
	last     []int64
	peakSum  int64
	errs     int
	startCPU []time.Duration
	endCPU   []time.Duration
}

func newSampler(procs []Proc, every time.Duration) *sampler {
	return &sampler{procs: procs, every: every, peak: make([]int64, len(procs)), last: make([]int64, len(procs))}
}

func (s *sampler) read() ([]procSample, error) {
	out := make([]procSample, len(s.procs))
	for i, p := range s.procs {
		ps, err := readProc(p.PID)
		if err != nil {
			return nil, fmt.Errorf("%s (pid %d): %w", p.Name, p.PID, err)
		}
		out[i] = ps
	}
	return out, nil
}

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sample() {
	ps, err := s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		return
	}
	if !s.on {
		return
	}
	var sum int64
	for i, p := range ps {
		s.peak[i] = max(s.peak[i], p.RSS)
		s.last[i] = p.RSS
		sum += p.RSS
	}
	s.peakSum = max(s.peakSum, sum)
}

// begin marks the start of the measurement window.
func (s *sampler) begin() error {
	ps, err := s.read()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.on = true
	s.startCPU = make([]time.Duration, len(ps))
	for i, p := range ps {
		s.startCPU[i] = p.CPU
	}
	s.mu.Unlock()
	s.sample()
	return nil
}

// end marks the end of the window (CPU is counted up to here; RSS keeps being sampled
// until stop, so the drain of outstanding deliveries is inside the peak).
func (s *sampler) end() error {
	s.sample()
	ps, err := s.read()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.endCPU = make([]time.Duration, len(ps))
	for i, p := range ps {
		s.endCPU[i] = p.CPU
	}
	s.mu.Unlock()
	return nil
}

func (s *sampler) results() (procs []ProcResult, cpu time.Duration, peakSum int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.procs {
		var c time.Duration
		if s.startCPU != nil && s.endCPU != nil {
			c = s.endCPU[i] - s.startCPU[i]
		}
		cpu += c
		procs = append(procs, ProcResult{Name: p.Name, PID: p.PID, CPUSeconds: round3(c.Seconds()), PeakRSSMB: mb(s.peak[i]), EndRSSMB: mb(s.last[i])})
	}
	return procs, cpu, s.peakSum
}

func mb(b int64) float64 { return round3(float64(b) / (1 << 20)) }

// machineCPU returns the CPU time all processors spent busy (not idle or iowait) since
// boot, from /proc/stat.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseStatBusy(line)
}

// parseStatBusy sums the busy fields of /proc/stat's "cpu" line (user nice system irq
// softirq steal; guest time is already inside user).
func parseStatBusy(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
