package claim

import (
	"sync"
	"time"
)

// Limiter counts failed attempts per client and in total, in a sliding window. It guards
// anything that accepts a guessable secret (claim codes, invitation codes).
type Limiter struct {
	PerClient int           // failures allowed per client per window
	Total     int           // failures allowed from everyone per window
	Window    time.Duration // how long a failure counts

	mu       sync.Mutex
	failures map[string][]time.Time
	all      []time.Time
	now      func() time.Time
}

// NewLimiter returns a limiter with the given budget.
func NewLimiter(perClient, total int, window time.Duration) *Limiter {
	return &Limiter{PerClient: perClient, Total: total, Window: window, failures: map[string][]time.Time{}, now: time.Now}
}

func prune(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cutoff) {
		i++
	}
	return ts[i:]
}

// Allowed reports whether client may try now, and if not, how long until it may.
func (l *Limiter) Allowed(client string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	cutoff := now.Add(-l.Window)
	l.all = prune(l.all, cutoff)
	f := prune(l.failures[client], cutoff)
	if len(f) == 0 {
		delete(l.failures, client)
	} else {
		l.failures[client] = f
	}
	switch {
	case len(f) >= l.PerClient:
		return false, f[0].Add(l.Window).Sub(now)
	case len(l.all) >= l.Total:
		return false, l.all[0].Add(l.Window).Sub(now)
	}
	return true, 0
}

// Fail records a failed attempt.
func (l *Limiter) Fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.failures[client] = append(l.failures[client], now)
	l.all = append(l.all, now)
}
