package clock

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/beevik/ntp"
)

// Syncer sets the clock from NTP servers on the LAN that an administrator configured. It is
// off until servers are set: the box never looks for time on the internet.
//
// A clock that is behind is stepped forward at once, by up to MaxForward. A larger step
// forward, and any step back, needs two polls in a row that agree (the second one comes
// within Confirm), so one bad or forged answer cannot throw the box into the past or years
// ahead, where its certificates and sessions would expire; after
// a step back, Stepped lets the Keeper lower its high-water mark (else the next boot would
// move the clock forward to the old, wrong time again). Offsets under Tolerance are left
// alone: stepping for them would only add jitter to message timestamps.
type Syncer struct {
	// Now and Set read and step the clock; a nil Set only measures (a laptop, whose clock
	// is its operating system's business).
	Now func() time.Time
	Set func(time.Time) error
	// Stepped is called after every step with the new time.
	Stepped   func(time.Time)
	Log       *slog.Logger
	Interval  time.Duration // between polls; default 15 min
	Tolerance time.Duration // default 500 ms
	// MaxForward is the largest step forward taken on one answer; default 24 h (a box that
	// was off for longer boots at its saved time and waits for a second answer).
	MaxForward time.Duration
	// Confirm is how soon a second poll follows an answer that wants a step needing one;
	// default 30 s.
	Confirm time.Duration
	Port    int // NTP port; 0 = 123 (tests use others)

	mu      sync.Mutex
	servers []string
	wake    chan struct{}
	status  SyncStatus
	pending time.Duration // offset of the last poll that wanted a step needing a second answer
}

// SyncStatus is the last poll's result, for the console and `outpost status`.
type SyncStatus struct {
	Servers []string      `json:"servers"`
	Server  string        `json:"server,omitempty"` // the one that answered
	At      time.Time     `json:"at,omitzero"`
	Offset  time.Duration `json:"offset_ns"`
	Stepped bool          `json:"stepped"` // the last poll stepped the clock
	Error   string        `json:"error,omitempty"`
}

func (s *Syncer) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Interval == 0 {
		s.Interval = 15 * time.Minute
	}
	if s.Tolerance == 0 {
		s.Tolerance = 500 * time.Millisecond
	}
	if s.MaxForward == 0 {
		s.MaxForward = 24 * time.Hour
	}
	if s.Confirm == 0 {
		s.Confirm = 30 * time.Second
	}
}

// SetServers replaces the servers and polls them soon.
func (s *Syncer) SetServers(servers []string) {
	s.init()
	s.mu.Lock()
	s.servers = append([]string(nil), servers...)
	s.status = SyncStatus{Servers: s.servers}
	s.pending = 0
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Status reports the last poll.
func (s *Syncer) Status() SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Run polls until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	s.init()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		s.Poll(ctx)
		s.mu.Lock()
		next := s.Interval
		if s.pending != 0 {
			next = min(next, s.Confirm)
		}
		s.mu.Unlock()
		t.Reset(next)
	}
}

// Poll asks the servers in order until one answers and acts on its offset.
func (s *Syncer) Poll(ctx context.Context) SyncStatus {
	s.init()
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	st := SyncStatus{Servers: servers}
	if len(servers) == 0 {
		return st
	}
	var errs []string
	for _, srv := range servers {
		if ctx.Err() != nil {
			return st
		}
		host, port := srv, s.Port
		if h, p, err := net.SplitHostPort(srv); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				host, port = h, n
			}
		}
		resp, err := ntp.QueryWithOptions(host, ntp.QueryOptions{Timeout: 3 * time.Second, Port: port, GetSystemTime: s.Now})
		if err == nil {
			err = resp.Validate()
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", srv, err))
			continue
		}
		st.Server, st.At, st.Offset = srv, s.Now(), resp.ClockOffset
		st.Stepped, err = s.act(resp.ClockOffset, srv)
		if err != nil {
			st.Error = err.Error()
		}
		break
	}
	if st.Server == "" {
		st.Error = "no time server answered: " + fmt.Sprint(errs)
		s.Log.Warn("LAN time servers do not answer", "servers", servers, "errors", errs)
	}
	s.mu.Lock()
	s.status = st
	s.mu.Unlock()
	return st
}

func (s *Syncer) act(offset time.Duration, server string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	abs := offset
	if abs < 0 {
		abs = -abs
	}
	if abs < s.Tolerance {
		s.pending = 0
		return false, nil
	}
	if offset < 0 || offset > s.MaxForward {
		prev := s.pending
		s.pending = offset
		if prev == 0 || (prev-offset).Abs() > 2*s.Tolerance {
			s.Log.Info("the time server wants a step back or a large step forward; taking it if the next poll agrees", "server", server, "offset", offset)
			return false, nil
		}
	}
	s.pending = 0
	if s.Set == nil {
		s.Log.Info("clock offset from the time server (this machine's clock is not ours to set)", "server", server, "offset", offset)
		return false, nil
	}
	to := s.Now().Add(offset)
	if err := s.Set(to); err != nil {
		return false, fmt.Errorf("set the clock: %w", err)
	}
	s.Log.Info("clock set from a LAN time server", "server", server, "offset", offset)
	if s.Stepped != nil {
		s.Stepped(to)
	}
	return true, nil
}
