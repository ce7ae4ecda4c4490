package clock

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ntpServer answers SNTP requests on 127.0.0.1 with real time plus an offset that the test
// can change: a LAN time server whose idea of the time is known.
type ntpServer struct {
	conn   *net.UDPConn
	offset atomic.Int64
}

func startNTP(t *testing.T) *ntpServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &ntpServer{conn: c}
	t.Cleanup(func() { c.Close() })
	go s.serve()
	return s
}

func (s *ntpServer) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

func ntpStamp(t time.Time) uint64 {
	const era = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix() + era)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

func (s *ntpServer) serve() {
	buf := make([]byte, 512)
	for {
		n, peer, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n < 48 {
			continue
		}
		now := time.Now().Add(time.Duration(s.offset.Load()))
		out := make([]byte, 48)
		out[0] = 0<<6 | 4<<3 | 4 // no leap warning, version 4, server
		out[1] = 2               // stratum
		out[2] = buf[2]
		out[3] = 0xEC                              // precision
		binary.BigEndian.PutUint32(out[4:], 1<<12) // root delay
		binary.BigEndian.PutUint32(out[8:], 1<<12) // root dispersion
		copy(out[12:16], []byte{127, 0, 0, 1})     // reference ID
		binary.BigEndian.PutUint64(out[16:], ntpStamp(now.Add(-time.Minute)))
		copy(out[24:32], buf[40:48]) // origin = the client's transmit time
		binary.BigEndian.PutUint64(out[32:], ntpStamp(now))
		binary.BigEndian.PutUint64(out[40:], ntpStamp(now))
		s.conn.WriteToUDP(out, peer) //nolint:errcheck
	}
}

// fakeClock is a box clock off from real time by a settable amount.
type fakeClock struct{ off atomic.Int64 }

func (f *fakeClock) now() time.Time { return time.Now().Add(time.Duration(f.off.Load())) }
func (f *fakeClock) set(t time.Time) error {
	f.off.Store(int64(time.Until(t)))
	return nil
}

func TestSyncerSetsClockFromLANServer(t *testing.T) {
	srv := startNTP(t)
	box := &fakeClock{}
	box.off.Store(int64(-3 * time.Hour)) // booted with a stale saved time
	var stepped []time.Time
	s := &Syncer{Now: box.now, Set: box.set, Stepped: func(t time.Time) { stepped = append(stepped, t) },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Port: srv.port()}
	ctx := context.Background()

	if st := s.Poll(ctx); st.Server != "" || len(stepped) != 0 {
		t.Fatalf("with no servers configured the syncer asked %q and stepped %d times", st.Server, len(stepped))
	}
	s.SetServers([]string{"127.0.0.1"})

	// Behind by three hours: stepped forward at once.
	st := s.Poll(ctx)
	if st.Error != "" || !st.Stepped || st.Offset < 3*time.Hour-time.Second || st.Offset > 3*time.Hour+time.Second {
		t.Fatalf("behind: %+v", st)
	}
	if off := time.Duration(box.off.Load()).Abs(); off > 200*time.Millisecond {
		t.Fatalf("after the step the box is still %s off", off)
	}

	// The server says the box is 10 minutes ahead: one answer is not enough to go back...
	srv.offset.Store(int64(-10 * time.Minute))
	if st := s.Poll(ctx); st.Stepped {
		t.Fatalf("stepped back on a single answer: %+v", st)
	}
	// ...two that agree are.
	st = s.Poll(ctx)
	if !st.Stepped || st.Offset > -10*time.Minute+time.Second {
		t.Fatalf("ahead, second poll: %+v", st)
	}
	if off := time.Duration(box.off.Load()) + 10*time.Minute; off.Abs() > 200*time.Millisecond {
		t.Fatalf("after stepping back the box is %s from the server's time", off)
	}
	if len(stepped) != 2 {
		t.Fatalf("Stepped called %d times; want 2 (forward, back)", len(stepped))
	}

	// In agreement: left alone.
	if st := s.Poll(ctx); st.Stepped || st.Offset.Abs() > s.Tolerance {
		t.Fatalf("in step: %+v", st)
	}

	// Years ahead on one answer (a forged or broken server) is not taken; two agreeing
	// answers are (a box that was off for long and booted at its saved time).
	srv.offset.Store(int64(3 * 365 * 24 * time.Hour))
	if st := s.Poll(ctx); st.Stepped {
		t.Fatalf("stepped years forward on a single answer: %+v", st)
	}
	if st := s.Poll(ctx); !st.Stepped || len(stepped) != 3 {
		t.Fatalf("years ahead, second poll: %+v (%d steps)", st, len(stepped))
	}
	srv.offset.Store(0)
	box.off.Store(0)

	// A server that does not answer is reported, the next one is used.
	dead, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	s.SetServers([]string{deadAddr, "127.0.0.1"})
	if st := s.Poll(ctx); st.Server != "127.0.0.1" {
		t.Fatalf("fallback: %+v", st)
	}
	s.SetServers([]string{deadAddr})
	if st := s.Poll(ctx); st.Error == "" || !strings.Contains(st.Error, "no time server answered") {
		t.Fatalf("dead server: %+v", st)
	}
}

func TestSyncerOnlyMeasuresWithoutSet(t *testing.T) {
	srv := startNTP(t)
	srv.offset.Store(int64(time.Hour))
	s := &Syncer{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Port: srv.port()}
	s.SetServers([]string{"127.0.0.1"})
	if st := s.Poll(context.Background()); st.Stepped || st.Offset < 59*time.Minute {
		t.Fatalf("laptop: %+v", st)
	}
}

func TestKeeperResetLowersTheMark(t *testing.T) {
	f := &fake{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := keeper(t, f)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	back := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	if err := k.Reset(back); err != nil {
		t.Fatal(err)
	}
	if got := k.Saved(); !got.Equal(back) {
		t.Fatalf("Saved after Reset = %s; want %s", got, back)
	}
}
