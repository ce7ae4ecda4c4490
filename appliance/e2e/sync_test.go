package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// syncAnswer is one incremental /sync answer: when it arrived and the message bodies it
// carried for the room.
type syncAnswer struct {
	at     time.Time
	bodies []string
}

// syncOnce long-polls /sync from since and returns the room's new message bodies and the
// next token.
func (c *client) syncOnce(since, roomID string) (bodies []string, next string) {
	c.t.Helper()
	q := url.Values{"timeout": {"10000"}, "since": {since}}
	var resp syncResponse
	c.must(http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil, &resp)
	for _, ev := range resp.timeline(roomID) {
		if ev.Type == "m.room.message" {
			bodies = append(bodies, fmt.Sprint(ev.Content["body"]))
		}
	}
	return bodies, resp.NextBatch
}

// TestSyncMinInterval drives our Dendrite patch the way a busy room does: messages arrive
// faster than the shortest interval between two answers to one device, and the reader's
// client comes straight back after every answer. The reader must get every message, in
// order, once, in fewer answers spaced at least the interval apart; and a message into a
// room that has been quiet for longer than the interval must not be held.
func TestSyncMinInterval(t *testing.T) {
	const interval = time.Second // the patch's ceiling, so the spacing is unmistakable
	t.Setenv("DENDRITE_SYNC_MIN_INTERVAL", interval.String())
	d := startDaemon(t, t.TempDir())
	d.setup("box.lan")
	base := d.surl("")
	alice, bob := newClient(t, base), newClient(t, base)
	alice.login("alice", password("alice"))
	bob.login("bob", password("bob"))
	room := alice.createRoom("Busy", bob.userID)
	bob.join(room)

	var first struct {
		NextBatch string `json:"next_batch"`
	}
	bob.must(http.MethodGet, "/_matrix/client/v3/sync?timeout=0", nil, &first)
	since := first.NextBatch

	// 12 messages over ~1.8 s: without the interval, bob would be answered once per message.
	const n = 12
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := alice.send(room, fmt.Sprintf("burst-%d", i), fmt.Sprintf("burst %d", i)); err != nil {
				sent <- err
				return
			}
			time.Sleep(150 * time.Millisecond)
		}
		sent <- nil
	}()
	var answers []syncAnswer
	var got []string
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		bodies, next := bob.syncOnce(since, room)
		since = next
		if len(bodies) > 0 {
			answers = append(answers, syncAnswer{time.Now(), bodies})
			got = append(got, bodies...)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("bob got %d of %d messages: %q", len(got), n, got)
	}
	for i, b := range got {
		if b != fmt.Sprintf("burst %d", i) {
			t.Fatalf("message %d is %q; all: %q", i, b, got)
		}
	}
	if len(answers) < 2 || len(answers) >= n {
		t.Fatalf("%d messages came in %d answers; want them batched into 2..%d", n, len(answers), n-1)
	}
	for i := 1; i < len(answers); i++ {
		// Answers start at least the interval apart; their arrival may differ by the time
		// one answer takes to compute, hence the slack.
		if gap := answers[i].at.Sub(answers[i-1].at); gap < interval-200*time.Millisecond {
			t.Errorf("answers %d and %d only %v apart (interval %v)", i-1, i, gap, interval)
		}
	}
	t.Logf("%d messages over ~%v came in %d answers", n, time.Duration(n)*150*time.Millisecond, len(answers))

	// Quiet room: bob's last answer is longer ago than the interval, so the next message is
	// not held. Bob's long poll is already waiting when alice sends.
	time.Sleep(interval + 500*time.Millisecond)
	polled := make(chan syncAnswer, 1)
	go func() {
		bodies, _ := bob.syncOnce(since, room)
		polled <- syncAnswer{time.Now(), bodies}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if _, err := alice.send(room, "quiet", "after a pause"); err != nil {
		t.Fatal(err)
	}
	r := <-polled
	if len(r.bodies) != 1 || r.bodies[0] != "after a pause" {
		t.Fatalf("quiet message: got %q", r.bodies)
	}
	// Not a speed target: anything close to the interval would mean it was held.
	if took := r.at.Sub(start); took > interval*3/4 {
		t.Errorf("a message into a quiet room took %v to arrive (held for the interval?)", took)
	}

	// A quiet device on a busy server: carol shares only a quiet room with alice while alice
	// keeps the busy room going. Carol's long poll starts behind the server's position, so
	// Dendrite first passes over the busy room's events with an empty result; that pass is
	// not an answer and must not hold the message alice then sends her.
	if _, errOut, code := d.cli(password("carol")+"\n", "users", "add", "carol", "--password-stdin"); code != 0 {
		t.Fatalf("add carol: %s", errOut)
	}
	carol := newClient(t, base)
	carol.login("carol", password("carol"))
	quiet := alice.createRoom("Quiet", carol.userID)
	carol.join(quiet)
	// Let carol's own join settle first (her membership, alice's device list reaching her):
	// an answer carrying that would rightly hold her next one for the interval. Settled is
	// two snapshots in a row at the same position; then the interval passes.
	var cfirst syncResponse
	carol.must(http.MethodGet, "/_matrix/client/v3/sync?timeout=0", nil, &cfirst)
	csince := cfirst.NextBatch
	for settle := time.Now(); ; {
		time.Sleep(200 * time.Millisecond)
		var again syncResponse
		carol.must(http.MethodGet, "/_matrix/client/v3/sync?timeout=0&since="+url.QueryEscape(csince), nil, &again)
		if again.NextBatch == csince {
			break
		}
		csince = again.NextBatch
		if time.Since(settle) > 10*time.Second {
			t.Fatal("carol's sync position still moving after 10 s with nobody sending")
		}
	}
	time.Sleep(interval)
	stop := make(chan struct{})
	busy := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				busy <- nil
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := alice.send(room, fmt.Sprintf("busy-%d", i), "busy"); err != nil {
				busy <- err
				return
			}
		}
	}()
	for i := range 3 {
		time.Sleep(400 * time.Millisecond) // busy events pile up past carol's token
		polled := make(chan syncAnswer, 1)
		go func() {
			bodies, next := carol.syncOnce(csince, quiet)
			csince = next
			polled <- syncAnswer{time.Now(), bodies}
		}()
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		want := fmt.Sprintf("quiet %d", i)
		if _, err := alice.send(quiet, "quiet-"+want, want); err != nil {
			t.Fatal(err)
		}
		r := <-polled
		if len(r.bodies) != 1 || r.bodies[0] != want {
			t.Fatalf("carol's answer: %q, want %q", r.bodies, want)
		}
		if took := r.at.Sub(start); took > 400*time.Millisecond {
			t.Errorf("carol's message %d took %v to arrive: held by passes over other rooms?", i, took)
		}
	}
	close(stop)
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
}
