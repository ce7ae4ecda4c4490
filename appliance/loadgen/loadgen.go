// Package loadgen is a Matrix client-server load generator. It signs in N users, puts them
// in M rooms, keeps a /sync long poll open per user, sends messages (closed loop or at a
// fixed rate, optionally with media uploads) and measures send latency, end-to-end delivery
// latency (send start to arrival in every other member's /sync), throughput, errors, and the
// server processes' CPU and RSS sampled from /proc.
//
// It speaks only the standard client-server API, so the same run can be pointed at
// Outpost's gateway, straight at Dendrite's unix socket, or at a stock Dendrite.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape the load.
type Options struct {
	// Users is the number of simulated users, Rooms the number of rooms. User i is a
	// member of room i mod Rooms (rooms of ~Users/Rooms people, like teams in an office).
	Users int
	Rooms int
	// Warmup runs the load before measuring; Duration is the measurement window; Drain is
	// how long to wait afterwards for the window's messages to reach every receiver.
	Warmup   time.Duration
	Duration time.Duration
	Drain    time.Duration
	// Rate is the total send rate in messages per second, spread over the users. Zero
	// means closed loop: every user sends its next message as soon as the previous send
	// returned (after Think).
	Rate  float64
	Think time.Duration
	// MediaEvery makes every n-th message of a user an upload of MediaBytes random bytes
	// followed by an m.file event pointing at it. Zero: text only.
	MediaEvery int
	MediaBytes int
	// SyncTimeout is the /sync long-poll timeout (clients use 30 s).
	SyncTimeout time.Duration
	// SampleEvery is the /proc sampling period.
	SampleEvery time.Duration
	// SetupParallel bounds concurrent registrations, logins and joins.
	SetupParallel int
	// Prefix starts every generated localpart; empty picks a random one so runs against
	// the same server never collide.
	Prefix string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
	// OnWindow, if set, is called (in its own goroutine) when the measurement window
	// opens, with a context that ends when it closes. The bench uses it to take a profile.
	OnWindow func(ctx context.Context)
}

func (o *Options) defaults() {
	if o.Users <= 0 {
		o.Users = 2
	}
	if o.Rooms <= 0 {
		o.Rooms = max(1, (o.Users+9)/10)
	}
	o.Rooms = min(o.Rooms, o.Users)
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 30 * time.Second
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 200 * time.Millisecond
	}
	if o.SetupParallel <= 0 {
		o.SetupParallel = 4
	}
	if o.MediaEvery > 0 && o.MediaBytes <= 0 {
		o.MediaBytes = 64 << 10
	}
	if o.Prefix == "" {
		b := make([]byte, 3)
		rand.Read(b) //nolint:errcheck // never fails
		o.Prefix = "lg" + hex.EncodeToString(b) + "-"
	}
}

// Result is one run's measurements. Latencies are in milliseconds.
type Result struct {
	Target     string    `json:"target"`
	Started    time.Time `json:"started"`
	Users      int       `json:"users"`
	Rooms      int       `json:"rooms"`
	Mode       string    `json:"mode"` // "closed-loop" or "rate N/s"
	MediaEvery int       `json:"media_every,omitempty"`
	SetupSecs  float64   `json:"setup_seconds"`
	WindowSecs float64   `json:"window_seconds"`
	Sent       int64     `json:"sent"` // successful sends started in the window
	Throughput float64   `json:"throughput_msgs_per_sec"`
	// DeliveryRate is deliveries (message × receiver) of the window's messages per second
	// of window: the fan-out work the server completed. Under overload a server can keep
	// accepting sends while /sync falls behind; this shows it.
	DeliveryRate float64 `json:"deliveries_per_sec"`
	SendLatency  Dist    `json:"send_latency"`
	// Delivery has one sample per (message, receiver): send start to the message's
	// arrival in that receiver's /sync. DeliveryAll has one per message: until the last
	// receiver had it.
	Delivery      Dist  `json:"delivery_latency"`
	DeliveryAll   Dist  `json:"delivery_all_latency"`
	Expected      int64 `json:"deliveries_expected"`
	Delivered     int64 `json:"deliveries"`
	Lost          int64 `json:"deliveries_missing"` // not seen by the end of the drain
	Uploads       int64 `json:"uploads,omitempty"`
	UploadLatency *Dist `json:"upload_latency,omitempty"`
	Syncs         int64 `json:"syncs"`
	SyncLimited   int64 `json:"sync_limited"` // timeline gaps (events the client would have to backfill)
	// RateLimited counts 429 answers that were waited out and retried, as apps do (media
	// uploads are rate-limited per device); the retried request's latency includes the wait.
	RateLimited int64 `json:"rate_limited,omitempty"`
	// Errors counts failures by kind; ErrorCount is their sum.
	Errors     map[string]int64 `json:"errors,omitempty"`
	ErrorCount int64            `json:"error_count"`
	// Server processes: CPU within the window, RSS peak over window and drain.
	Procs          []ProcResult `json:"procs"`
	CPUSeconds     float64      `json:"server_cpu_seconds"`
	CPUPerMsgMs    float64      `json:"server_cpu_ms_per_msg"`
	PeakRSSMB      float64      `json:"server_peak_rss_mb"` // peak of the processes' summed RSS
	LoadgenCPUSecs float64      `json:"loadgen_cpu_seconds"`
	// OtherCPUSecs is CPU the rest of the machine used during the window (all busy time
	// minus the servers and the load generator): noise from other work on a shared box.
	OtherCPUSecs float64 `json:"other_cpu_seconds"`
}

// pending is a message on its way to its receivers.
type pending struct {
	start   time.Time
	sender  int
	want    int32
	got     int32
	counted bool // sent inside the window
	ok      bool // the send was acknowledged
	seen    map[int]struct{}
}

type user struct {
	idx    int
	name   string
	c      *client
	filter string
	since  string
	room   int
}

// runner is one Run's state.
type runner struct {
	t     Target
	o     Options
	users []*user
	rooms []string // room IDs
	size  []int    // members per room

	phase atomic.Int32 // phaseWarmup, phaseMeasure, phaseStopped

	mu      sync.Mutex
	pend    map[string]*pending
	sendLat samples
	delLat  samples
	allLat  samples
	upLat   samples
	errs    counters

	sent, uploads, syncs, limited, delivered, rateLimited atomic.Int64
	media                                                 []byte
}

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStopped
)

func (r *runner) logf(format string, args ...any) {
	if r.o.Logf != nil {
		r.o.Logf(format, args...)
	}
}

// Run puts the load on t and returns the measurements.
func Run(ctx context.Context, t Target, o Options) (*Result, error) {
	o.defaults()
	if t.Registrar == nil {
		return nil, errors.New("loadgen: target has no registrar")
	}
	r := &runner{t: t, o: o, pend: map[string]*pending{}}
	base := strings.TrimSuffix(t.BaseURL, "/")
	if t.Socket != "" {
		base = "http://homeserver"
	}
	hc := &http.Client{Transport: newTransport(t, o.Users)}
	defer hc.CloseIdleConnections()
	res := &Result{Target: t.Name, Started: time.Now().UTC(), Users: o.Users, Rooms: o.Rooms, MediaEvery: o.MediaEvery, Mode: "closed-loop"}
	if o.Rate > 0 {
		res.Mode = fmt.Sprintf("rate %g/s", o.Rate)
	}
	if o.MediaEvery > 0 {
		r.media = make([]byte, o.MediaBytes)
		rand.Read(r.media) //nolint:errcheck
	}

	setupStart := time.Now()
	if err := r.setup(ctx, hc, base); err != nil {
		return nil, err
	}
	res.SetupSecs = round3(time.Since(setupStart).Seconds())
	r.logf("%s: %d users in %d rooms ready after %.1fs", t.Name, o.Users, o.Rooms, res.SetupSecs)

	// The load runs under loadCtx; aborting (ctx) ends everything.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	smp := newSampler(t.Procs, o.SampleEvery)
	smpCtx, stopSampler := context.WithCancel(loadCtx)
	defer stopSampler()
	smpDone := make(chan struct{})
	go func() { defer close(smpDone); smp.run(smpCtx) }()

	var syncWG sync.WaitGroup
	for _, u := range r.users {
		syncWG.Add(1)
		go func() { defer syncWG.Done(); r.syncLoop(loadCtx, u) }()
	}
	var sendWG sync.WaitGroup
	r.startSenders(loadCtx, &sendWG)

	if err := sleep(ctx, o.Warmup); err != nil {
		return nil, err
	}
	self := os.Getpid()
	selfStart, _ := readProc(self)
	machStart, _ := machineCPU()
	if err := smp.begin(); err != nil {
		return nil, fmt.Errorf("loadgen: sample server processes: %w", err)
	}
	windowStart := time.Now()
	r.phase.Store(phaseMeasure)
	winCtx, closeWin := context.WithCancel(ctx)
	defer closeWin()
	if o.OnWindow != nil {
		go o.OnWindow(winCtx)
	}
	r.logf("%s: measuring for %s", t.Name, o.Duration)
	err := sleep(ctx, o.Duration)
	r.phase.Store(phaseStopped)
	window := time.Since(windowStart)
	closeWin()
	if err != nil {
		return nil, err
	}
	if err := smp.end(); err != nil {
		return nil, fmt.Errorf("loadgen: sample server processes: %w", err)
	}
	selfEnd, _ := readProc(self)
	machEnd, _ := machineCPU()
	sendWG.Wait()

	// Drain: wait for the window's messages to reach everyone.
	deadline := time.Now().Add(o.Drain)
	for r.outstanding() > 0 && time.Now().Before(deadline) {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	stopSampler()
	<-smpDone
	stopLoad()
	syncWG.Wait()

	res.WindowSecs = round3(window.Seconds())
	res.Sent = r.sent.Load()
	res.Throughput = round3(float64(res.Sent) / window.Seconds())
	res.SendLatency = r.sendLat.dist()
	res.Delivery = r.delLat.dist()
	res.DeliveryAll = r.allLat.dist()
	res.Expected, res.Delivered, res.Lost = r.deliveryCounts()
	res.DeliveryRate = round3(float64(res.Delivered) / window.Seconds())
	if o.MediaEvery > 0 {
		res.Uploads = r.uploads.Load()
		d := r.upLat.dist()
		res.UploadLatency = &d
	}
	res.Syncs = r.syncs.Load()
	res.SyncLimited = r.limited.Load()
	res.RateLimited = r.rateLimited.Load()
	res.Errors, res.ErrorCount = r.errs.snapshot()
	var cpu time.Duration
	var peak int64
	res.Procs, cpu, peak = smp.results()
	res.CPUSeconds = round3(cpu.Seconds())
	if res.Sent > 0 {
		res.CPUPerMsgMs = round3(float64(cpu.Milliseconds()) / float64(res.Sent))
	}
	res.PeakRSSMB = mb(peak)
	res.LoadgenCPUSecs = round3((selfEnd.CPU - selfStart.CPU).Seconds())
	if machEnd > 0 && machStart > 0 {
		other := (machEnd - machStart) - cpu - (selfEnd.CPU - selfStart.CPU)
		res.OtherCPUSecs = round3(max(other, 0).Seconds())
	}
	r.logf("%s: %.1f msg/s, delivery p50 %.1f ms p95 %.1f ms, %d errors, %d missing, %d rate-limited and retried", t.Name, res.Throughput, res.Delivery.P50, res.Delivery.P95, res.ErrorCount, res.Lost, res.RateLimited)
	return res, nil
}

// parallel runs f(i) for i in [0,n) with at most p at once and returns the first error.
func parallel(ctx context.Context, n, p int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, p)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// setup creates and signs in the users, creates the rooms and joins everyone, and takes
// each user's first /sync.
func (r *runner) setup(ctx context.Context, hc *http.Client, base string) error {
	o := r.o
	r.users = make([]*user, o.Users)
	pw := make([]byte, 12)
	rand.Read(pw) //nolint:errcheck
	password := "lg-" + hex.EncodeToString(pw)
	err := parallel(ctx, o.Users, o.SetupParallel, func(ctx context.Context, i int) error {
		u := &user{idx: i, name: fmt.Sprintf("%s%03d", o.Prefix, i), room: i % o.Rooms, c: &client{base: base, hc: hc}}
		if err := r.t.Registrar.Register(ctx, u.name, password); err != nil {
			return fmt.Errorf("loadgen: register %s: %w", u.name, err)
		}
		if err := u.c.login(ctx, u.name, password); err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		f, err := u.c.uploadFilter(ctx)
		if err != nil {
			return fmt.Errorf("loadgen: upload filter for %s: %w", u.name, err)
		}
		u.filter = f
		r.users[i] = u
		return nil
	})
	if err != nil {
		return err
	}
	// Rooms: the first member creates the room and invites the rest, who then join.
	r.rooms = make([]string, o.Rooms)
	r.size = make([]int, o.Rooms)
	members := make([][]*user, o.Rooms)
	for _, u := range r.users {
		members[u.room] = append(members[u.room], u)
		r.size[u.room]++
	}
	err = parallel(ctx, o.Rooms, o.SetupParallel, func(ctx context.Context, i int) error {
		var invite []string
		for _, m := range members[i][1:] {
			invite = append(invite, m.c.userID)
		}
		var resp struct {
			RoomID string `json:"room_id"`
		}
		if err := members[i][0].c.doRetry(ctx, http.MethodPost, "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "private_chat", "name": fmt.Sprintf("load %d", i), "invite": invite,
		}, &resp); err != nil {
			return fmt.Errorf("loadgen: create room: %w", err)
		}
		r.rooms[i] = resp.RoomID
		return nil
	})
	if err != nil {
		return err
	}
	err = parallel(ctx, o.Users, o.SetupParallel, func(ctx context.Context, i int) error {
		u := r.users[i]
		if members[u.room][0] == u {
			return nil
		}
		if err := u.c.doRetry(ctx, http.MethodPost, "/_matrix/client/v3/join/"+pathEscape(r.rooms[u.room]), map[string]any{}, nil); err != nil {
			return fmt.Errorf("loadgen: %s joins %s: %w", u.name, r.rooms[u.room], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Initial sync: what a client does once at start; later syncs are incremental.
	return parallel(ctx, o.Users, o.SetupParallel, func(ctx context.Context, i int) error {
		// The sync API learns of the join asynchronously, so a busy server may not show
		// the room yet: keep syncing (incrementally) until it does.
		u := r.users[i]
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		since := ""
		for {
			timeout := time.Duration(0)
			if since != "" {
				timeout = 2 * time.Second
			}
			resp, err := u.c.sync(sctx, since, u.filter, timeout)
			if err != nil {
				return fmt.Errorf("loadgen: initial sync of %s (room %s joined?): %w", u.name, r.rooms[u.room], err)
			}
			if _, ok := resp.Rooms.Join[r.rooms[u.room]]; ok {
				u.since = resp.NextBatch
				return nil
			}
			since = resp.NextBatch
		}
	})
}

// syncLoop long-polls /sync for one user until ctx ends and records deliveries.
func (r *runner) syncLoop(ctx context.Context, u *user) {
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, r.o.SyncTimeout+30*time.Second)
		resp, err := u.c.sync(sctx, u.since, u.filter, r.o.SyncTimeout)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.errs.inc(errKind("sync", err))
			sleep(ctx, 200*time.Millisecond) //nolint:errcheck
			continue
		}
		now := time.Now()
		r.syncs.Add(1)
		u.since = resp.NextBatch
		for _, room := range resp.Rooms.Join {
			if room.Timeline.Limited {
				r.limited.Add(1)
			}
			for _, ev := range room.Timeline.Events {
				if ev.Type != "m.room.message" || !strings.HasPrefix(ev.Content.Body, "lg ") {
					continue
				}
				r.arrived(u.idx, ev.Content.Body[3:], now)
			}
		}
	}
}

// arrived records that message key reached user idx at now.
func (r *runner) arrived(idx int, key string, now time.Time) {
	r.mu.Lock()
	p := r.pend[key]
	if p == nil || p.sender == idx {
		r.mu.Unlock()
		return
	}
	if _, dup := p.seen[idx]; dup {
		r.mu.Unlock()
		r.errs.inc("sync: duplicate delivery")
		return
	}
	p.seen[idx] = struct{}{}
	p.got++
	lat := now.Sub(p.start)
	counted, all := p.counted, p.got == p.want
	r.mu.Unlock()
	if counted {
		r.delivered.Add(1)
		r.delLat.add(lat)
		if all {
			r.allLat.add(lat)
		}
	}
}

// outstanding counts receivers still waiting for an acknowledged message of the window.
func (r *runner) outstanding() int64 {
	exp, got, _ := r.deliveryCounts()
	return exp - got
}

func (r *runner) deliveryCounts() (expected, delivered, missing int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pend {
		if !p.counted || !p.ok {
			continue
		}
		expected += int64(p.want)
		delivered += int64(min(p.got, p.want))
	}
	return expected, delivered, expected - delivered
}

// startSenders starts the send loops: one per user (closed loop) or one scheduler (rate).
func (r *runner) startSenders(ctx context.Context, wg *sync.WaitGroup) {
	if r.o.Rate <= 0 {
		for _, u := range r.users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 1; r.phase.Load() != phaseStopped && ctx.Err() == nil; seq++ {
					r.sendOne(ctx, u, seq)
					if r.o.Think > 0 {
						sleep(ctx, r.o.Think) //nolint:errcheck
					}
				}
			}()
		}
		return
	}
	interval := time.Duration(float64(time.Second) / r.o.Rate)
	wg.Add(1)
	go func() {
		defer wg.Done()
		seqs := make([]int, len(r.users))
		var inflight atomic.Int64
		limit := int64(8 * len(r.users))
		next := time.Now()
		for i := 0; r.phase.Load() != phaseStopped && ctx.Err() == nil; i++ {
			u := r.users[i%len(r.users)]
			seqs[u.idx]++
			seq := seqs[u.idx]
			if inflight.Load() >= limit {
				if r.phase.Load() == phaseMeasure {
					r.errs.inc("send: skipped, too many in flight (server overloaded)")
				}
			} else {
				inflight.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer inflight.Add(-1)
					r.sendOne(ctx, u, seq)
				}()
			}
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				sleep(ctx, d) //nolint:errcheck
			}
		}
	}()
}

// waitOutLimits runs call again after each rate-limit answer, waiting what the server asks
// (within 50 ms..2 s), until it succeeds, fails otherwise, or ctx ends.
func (r *runner) waitOutLimits(ctx context.Context, counted bool, call func() error) error {
	for {
		err := call()
		wait := rateLimited(err)
		if wait == 0 {
			return err
		}
		if counted {
			r.rateLimited.Add(1)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// sendOne sends message seq of user u (after an upload, for media messages).
func (r *runner) sendOne(ctx context.Context, u *user, seq int) {
	counted := r.phase.Load() == phaseMeasure
	key := strconv.Itoa(u.idx) + "." + strconv.Itoa(seq)
	content := map[string]any{"msgtype": "m.text", "body": "lg " + key}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if r.o.MediaEvery > 0 && seq%r.o.MediaEvery == 0 {
		start := time.Now()
		var mxc string
		err := r.waitOutLimits(rctx, counted, func() (err error) {
			mxc, err = u.c.upload(rctx, "load-"+key+".bin", r.media)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				r.errs.inc(errKind("upload", err))
			}
			return
		}
		if counted {
			r.uploads.Add(1)
			r.upLat.add(time.Since(start))
		}
		content = map[string]any{"msgtype": "m.file", "body": "lg " + key, "url": mxc,
			"info": map[string]any{"size": len(r.media), "mimetype": "application/octet-stream"}}
	}
	p := &pending{start: time.Now(), sender: u.idx, want: int32(r.size[u.room] - 1), counted: counted, seen: map[int]struct{}{}}
	r.mu.Lock()
	r.pend[key] = p
	r.mu.Unlock()
	err := r.waitOutLimits(rctx, counted, func() error { return u.c.send(rctx, r.rooms[u.room], "lg"+key, content) })
	lat := time.Since(p.start)
	if err != nil {
		if ctx.Err() == nil {
			r.errs.inc(errKind("send", err))
		}
		return
	}
	r.mu.Lock()
	p.ok = true
	r.mu.Unlock()
	if counted {
		r.sent.Add(1)
		r.sendLat.add(lat)
	}
}
