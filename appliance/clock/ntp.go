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
// A clock that is behind is stepped forward at once. One that is ahead is stepped back only
// when two polls in a row agree, so one bad answer cannot throw the box into the past; after
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
	Port      int           // NTP port; 0 = 123 (tests use others)

	mu          sync.Mutex
	servers     []string
	wake        chan struct{}
	status      SyncStatus
	pendingBack time.Duration // offset of the last poll that wanted a step back
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
}

// SetServers replaces the servers and polls them soon.
func (s *Syncer) SetServers(servers []string) {
	s.init()
	s.mu.Lock()
	s.servers = append([]string(nil), servers...)
	s.status = SyncStatus{Servers: s.servers}
	s.pendingBack = 0
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
		t.Reset(s.Interval)
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
		s.pendingBack = 0
		return false, nil
	}
	if offset < 0 {
		prev := s.pendingBack
		s.pendingBack = offset
		if prev == 0 || (prev-offset).Abs() > 2*s.Tolerance {
			s.Log.Info("the clock is ahead of the time server; stepping back if the next poll agrees", "server", server, "offset", offset)
			return false, nil
		}
	}
	s.pendingBack = 0
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
