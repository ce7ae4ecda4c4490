package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// OverheadResult compares request latency through the gateway with the same requests
// sent straight to Dendrite's socket, alternating path on every request so drift cancels.
type OverheadResult struct {
	// Variant names the bench variant whose server was probed (empty in older results: the
	// first variant).
	Variant    string          `json:"variant,omitempty"`
	Iterations int             `json:"iterations"`
	Requests   []OverheadEntry `json:"requests"`
}

// OverheadEntry is one request kind.
type OverheadEntry struct {
	Request string `json:"request"`
	Gateway Dist   `json:"gateway"`
	Direct  Dist   `json:"direct"`
	// OverheadPct is (gateway p50 - direct p50) / direct p50, in percent.
	OverheadPct float64 `json:"overhead_pct"`
	// AddedMs is the gateway's median added latency in milliseconds.
	AddedMs float64 `json:"added_ms"`
}

// ProbeOverhead signs in one user (through gw) and times a message send, a state read and
// /versions, iters times on each path.
func ProbeOverhead(ctx context.Context, gw, direct Target, iters int) (*OverheadResult, error) {
	if iters <= 0 {
		iters = 200
	}
	pw := "ov-" + randomSecret()
	name := "ov" + randomSecret()[:8]
	if err := gw.Registrar.Register(ctx, name, pw); err != nil {
		return nil, fmt.Errorf("overhead probe: register: %w", err)
	}
	mk := func(t Target) *client {
		base := strings.TrimSuffix(t.BaseURL, "/")
		if t.Socket != "" {
			base = "http://homeserver"
		}
		return &client{base: base, hc: &http.Client{Transport: newTransport(t, 1), Timeout: time.Minute}}
	}
	cg, cd := mk(gw), mk(direct)
	if err := cg.login(ctx, name, pw); err != nil {
		return nil, fmt.Errorf("overhead probe: %w", err)
	}
	cd.token, cd.userID = cg.token, cg.userID
	var room struct {
		RoomID string `json:"room_id"`
	}
	if err := cg.doRetry(ctx, http.MethodPost, "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "name": "overhead"}, &room); err != nil {
		return nil, fmt.Errorf("overhead probe: create room: %w", err)
	}
	type req struct {
		name string
		do   func(c *client, i int) error
	}
	reqs := []req{
		{"PUT /send (message)", func(c *client, i int) error {
			return c.send(ctx, room.RoomID, fmt.Sprintf("ov%d-%p", i, c), map[string]any{"msgtype": "m.text", "body": "overhead"})
		}},
		{"GET /rooms/{id}/state (read)", func(c *client, i int) error {
			return c.do(ctx, http.MethodGet, "/_matrix/client/v3/rooms/"+pathEscape(room.RoomID)+"/state", nil, "", nil)
		}},
		{"GET /versions (trivial)", func(c *client, i int) error {
			return c.do(ctx, http.MethodGet, "/_matrix/client/versions", nil, "", nil)
		}},
	}
	res := &OverheadResult{Iterations: iters}
	for _, r := range reqs {
		var g, d []time.Duration
		const warm = 20
		for i := 0; i < iters+warm; i++ {
			order := []*client{cg, cd}
			if i%2 == 1 {
				order = []*client{cd, cg}
			}
			for _, c := range order {
				start := time.Now()
				if err := r.do(c, i); err != nil {
					return nil, fmt.Errorf("overhead probe: %s: %w", r.name, err)
				}
				lat := time.Since(start)
				if i < warm {
					continue
				}
				if c == cg {
					g = append(g, lat)
				} else {
					d = append(d, lat)
				}
			}
		}
		e := OverheadEntry{Request: r.name, Gateway: summarize(g), Direct: summarize(d)}
		if e.Direct.P50 > 0 {
			e.OverheadPct = round1(100 * (e.Gateway.P50 - e.Direct.P50) / e.Direct.P50)
		}
		e.AddedMs = round3(e.Gateway.P50 - e.Direct.P50)
		res.Requests = append(res.Requests, e)
	}
	return res, nil
}
