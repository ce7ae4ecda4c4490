package imagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// staticIP is inside QEMU's user network (10.0.2.0/24, router 10.0.2.2, DNS 10.0.2.3).
const staticIP = "10.0.2.20"

type netView struct {
	Managed   bool     `json:"managed"`
	Addresses []string `json:"addresses"`
	Applied   struct {
		Mode    string `json:"mode"`
		Address string `json:"address"`
	} `json:"applied"`
	Trial *struct {
		Phase    string    `json:"phase"`
		Deadline time.Time `json:"deadline"`
		Started  time.Time `json:"started"`
		By       string    `json:"by"`
		Config   any       `json:"config"`
	} `json:"trial"`
	Last *struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"last"`
	Message string `json:"message"`
}

// newBrowserAt is a console session (same cookies and CSRF token) talking to another address
// of the box, as a browser tab opened on the new address after signing in there.
func newBrowserAt(t *testing.T, base string, b *browser, hc *http.Client) *browser {
	nb := &browser{t: t, base: base, hc: &http.Client{Jar: b.hc.Jar, Timeout: 30 * time.Second, Transport: hc.Transport}, csrf: b.csrf}
	return nb
}

func reachable(hc *http.Client, base string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, err := getter(hc, base+"/healthz")(ctx)
	return err == nil && code == 200
}

func waitNetIdle(t *testing.T, v *vm, b *browser, within time.Duration) netView {
	t.Helper()
	deadline := time.Now().Add(within)
	var nv netView
	for time.Now().Before(deadline) {
		if reachable(b.hc, b.base) {
			b.mustCall("GET", "/admin/api/network", nil, &nv)
			if nv.Trial == nil {
				return nv
			}
		}
		time.Sleep(time.Second)
	}
	b2, _ := json.Marshal(nv)
	t.Fatalf("network change still on trial after %s: %s\nconsole:\n%s", within, b2, tail(v.console()))
	return nv
}

// staticNetwork drives the console's Network tab: a fixed address is tried, confirmed from
// that address and kept; then a wrong gateway is tried and the box comes back by itself.
// It returns the base URL of the box at its static address.
func staticNetwork(t *testing.T, v *vm, admin *browser, hc *http.Client) string {
	t.Helper()
	var nv netView
	admin.mustCall("GET", "/admin/api/network", nil, &nv)
	if !nv.Managed || nv.Applied.Mode != "dhcp" || !slices.Contains(nv.Addresses, "10.0.2.15/24") {
		t.Fatalf("network at first boot: %+v", nv)
	}
	staticBase := fmt.Sprintf("https://127.0.0.1:%d", v.staticTLS)
	if reachable(hc, staticBase) {
		t.Fatal("the box answers at the static address before it has one")
	}
	start := time.Now()
	admin.mustCall("POST", "/admin/api/network", map[string]any{"mode": "static", "address": staticIP + "/24", "gateway": "10.0.2.2", "dns": []string{"10.0.2.3"}}, &nv)
	if nv.Trial == nil || !strings.Contains(nv.Message, "https://"+staticIP+"/admin/") {
		t.Fatalf("trying a static address: %+v", nv)
	}
	at := newBrowserAt(t, staticBase, admin, hc)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if reachable(hc, staticBase) {
			at.mustCall("GET", "/admin/api/network", nil, &nv)
			if nv.Trial != nil && !nv.Trial.Deadline.IsZero() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the box never became reachable at %s for confirmation: %+v\n%s", staticIP, nv, tail(v.console()))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("MEASURE static address reachable and checked: %s after the request", time.Since(start).Round(100*time.Millisecond))
	if reachable(hc, admin.base) {
		t.Error("the box still answers at its DHCP address after switching to a static one")
	}
	at.mustCall("POST", "/admin/api/network/confirm", map[string]any{}, &nv)
	nv = waitNetIdle(t, v, at, 30*time.Second)
	if nv.Last == nil || nv.Last.Outcome != "kept" || nv.Applied.Mode != "static" {
		t.Fatalf("after confirming: %+v", nv)
	}

	// A gateway that is not there: the box must come back to the working address by itself.
	start = time.Now()
	at.mustCall("POST", "/admin/api/network", map[string]any{"mode": "static", "address": "10.0.5.20/24", "gateway": "10.0.5.1"}, &nv)
	time.Sleep(3 * time.Second)
	if reachable(hc, staticBase) {
		t.Error("the box still answers at its old address while trying a new one")
	}
	nv = waitNetIdle(t, v, at, 2*time.Minute)
	if nv.Last == nil || nv.Last.Outcome != "rolled back" || !strings.Contains(nv.Last.Reason, "10.0.5.1 did not answer") {
		t.Fatalf("wrong gateway: %+v", nv)
	}
	t.Logf("MEASURE wrong gateway: back at %s %s after the request (%s)", staticIP, time.Since(start).Round(100*time.Millisecond), nv.Last.Reason)
	if !strings.Contains(v.console(), "rolled back") {
		t.Error("the rollback is not on the console")
	}
	return staticBase
}

// backToDHCP switches the box back to DHCP from its static address and confirms from the
// address QEMU's DHCP server hands out.
func backToDHCP(t *testing.T, v *vm, staticBase, dhcpBase string, hc *http.Client) {
	t.Helper()
	// Console sessions do not survive a reboot: sign in again at the static address.
	at := newBrowser(t, staticBase)
	at.hc.Transport = hc.Transport
	var login struct{ CSRF string }
	at.mustCall("POST", "/admin/api/login", map[string]string{"username": "alice", "password": password("alice")}, &login)
	at.csrf = login.CSRF
	var nv netView
	at.mustCall("GET", "/admin/api/network", nil, &nv)
	if nv.Applied.Mode != "static" || !slices.Contains(nv.Addresses, staticIP+"/24") {
		t.Fatalf("the static address did not survive the reboots: %+v", nv)
	}
	at.mustCall("POST", "/admin/api/network", map[string]any{"mode": "dhcp"}, &nv)
	back := newBrowserAt(t, dhcpBase, at, hc)
	deadline := time.Now().Add(2 * time.Minute)
	for !reachable(hc, dhcpBase) {
		if time.Now().After(deadline) {
			t.Fatalf("no DHCP address after switching back:\n%s", tail(v.console()))
		}
		time.Sleep(time.Second)
	}
	for i := 0; ; i++ {
		back.mustCall("GET", "/admin/api/network", nil, &nv)
		if nv.Trial != nil && !nv.Trial.Deadline.IsZero() {
			break
		}
		if i > 60 {
			t.Fatalf("DHCP trial never waited for confirmation: %+v", nv)
		}
		time.Sleep(time.Second)
	}
	back.mustCall("POST", "/admin/api/network/confirm", map[string]any{}, &nv)
	nv = waitNetIdle(t, v, back, 30*time.Second)
	if nv.Applied.Mode != "dhcp" || !slices.Contains(nv.Addresses, "10.0.2.15/24") || slices.Contains(nv.Addresses, staticIP+"/24") {
		t.Fatalf("back on DHCP: %+v", nv)
	}
}
