package loadgen

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Dist summarises a latency distribution, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// samples collects durations from many goroutines.
type samples struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

func (s *samples) dist() Dist {
	s.mu.Lock()
	d := slices.Clone(s.d)
	s.mu.Unlock()
	return summarize(d)
}

// summarize computes nearest-rank percentiles.
func summarize(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	ms := func(v time.Duration) float64 { return round3(float64(v) / float64(time.Millisecond)) }
	return Dist{
		N:    len(d),
		Mean: ms(sum / time.Duration(len(d))),
		P50:  ms(percentile(d, 50)),
		P95:  ms(percentile(d, 95)),
		P99:  ms(percentile(d, 99)),
		Max:  ms(d[len(d)-1]),
	}
}

// percentile of sorted d by the nearest-rank method.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(d))))
	rank = min(max(rank, 1), len(d))
	return d[rank-1]
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// counters counts errors by kind.
type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counters) inc(kind string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[kind]++
	c.mu.Unlock()
}

func (c *counters) snapshot() (map[string]int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	var total int64
	for k, v := range c.m {
		out[k] = v
		total += v
	}
	return out, total
}
