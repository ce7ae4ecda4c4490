package netcfg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/settings"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		c         Config
		field, in string
	}{
		{"no mode", Config{}, "mode", "is missing"},
		{"bad mode", Config{Mode: "auto"}, "mode", "use dhcp or static"},
		{"dhcp with address", Config{Mode: "dhcp", Address: "10.0.0.2/24"}, "", "takes no address"},
		{"no prefix", Config{Mode: "static", Address: "10.0.0.2", Gateway: "10.0.0.1"}, "address", "prefix length"},
		{"ipv6", Config{Mode: "static", Address: "fd00::2/64", Gateway: "fd00::1"}, "address", "IPv4"},
		{"prefix too short", Config{Mode: "static", Address: "10.0.0.2/4", Gateway: "10.0.0.1"}, "address", "prefix length"},
		{"network address", Config{Mode: "static", Address: "10.0.0.0/24", Gateway: "10.0.0.1"}, "address", "network address"},
		{"broadcast address", Config{Mode: "static", Address: "10.0.0.255/24", Gateway: "10.0.0.1"}, "address", "broadcast address"},
		{"loopback", Config{Mode: "static", Address: "127.0.0.5/8", Gateway: "127.0.0.1"}, "address", "cannot be a LAN address"},
		{"link local", Config{Mode: "static", Address: "169.254.3.4/16", Gateway: "169.254.0.1"}, "address", "cannot be a LAN address"},
		{"no gateway", Config{Mode: "static", Address: "10.0.0.2/24"}, "gateway", "router's IPv4 address"},
		{"gateway outside", Config{Mode: "static", Address: "10.0.0.2/24", Gateway: "10.0.1.1"}, "gateway", "not in the box's subnet 10.0.0.0/24"},
		{"gateway self", Config{Mode: "static", Address: "10.0.0.2/24", Gateway: "10.0.0.2"}, "gateway", "own address"},
		{"gateway broadcast", Config{Mode: "static", Address: "10.0.0.2/24", Gateway: "10.0.0.255"}, "gateway", "broadcast"},
		{"bad dns", Config{Mode: "dhcp", DNS: []string{"dns.lan"}}, "dns[0]", "IP address"},
		{"too many dns", Config{Mode: "dhcp", DNS: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}}, "dns", "at most 3"},
		{"bad ntp", Config{Mode: "dhcp", NTP: []string{"ntp://x"}}, "ntp[0]", "host name or IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Message, tc.in) {
				t.Fatalf("Validate(%+v) = %v; want field %q with %q", tc.c, err, tc.field, tc.in)
			}
		})
	}
	for _, ok := range []Config{
		{Mode: "dhcp"},
		{Mode: "dhcp", NTP: []string{"ntp.lan", "10.0.0.1"}},
		{Mode: "static", Address: "192.168.17.10/24", Gateway: "192.168.17.1", DNS: []string{"192.168.17.1"}},
		{Mode: "static", Address: "10.1.2.3/8", Gateway: "10.0.0.1"},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", ok, err)
		}
	}
	if c, err := Parse(""); err != nil || c.Mode != ModeDHCP {
		t.Errorf(`Parse("") = %+v, %v; want DHCP`, c, err)
	}
}

// lan is a box interface in its own namespace, wired to a "LAN" namespace whose router
// answers at 10.213.9.1.
type lan struct {
	boxNS          netns.NsHandle
	boxName, lanNS string
	boxIf          string
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test configures network namespaces and needs root (make test runs as root in CI)")
	}
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &lan{boxName: "onb" + id, lanNS: "onl" + id, boxIf: "eth" + id}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", l.boxName)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.boxName).Run() }) //nolint:errcheck
	run("netns", "add", l.lanNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.lanNS).Run() }) //nolint:errcheck
	run("link", "add", l.boxIf, "netns", l.boxName, "type", "veth", "peer", "name", "lan"+id, "netns", l.lanNS)
	run("-n", l.lanNS, "addr", "add", "10.213.9.1/24", "dev", "lan"+id)
	run("-n", l.lanNS, "link", "set", "lan"+id, "up")
	run("-n", l.lanNS, "link", "set", "lo", "up")
	h, err := netns.GetFromName(l.boxName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	l.boxNS = h
	return l
}

// ping reports whether the LAN reaches addr: a TCP connection to a closed port from the LAN
// namespace is refused (an answer) by a reachable host and times out otherwise.
func (l *lan) ping(addr string) bool {
	h, err := netns.GetFromName(l.lanNS)
	if err != nil {
		return false
	}
	defer h.Close()
	probe := &Interface{Namespace: &h}
	var derr error
	probe.inNamespace(func() error { //nolint:errcheck // derr carries the answer
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(addr, "9"), 2*time.Second)
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	})
	return derr == nil || errors.Is(derr, syscall.ECONNREFUSED)
}

func (l *lan) defaultRoute(t *testing.T) string {
	out, err := exec.Command("ip", "-n", l.boxName, "-4", "route", "show", "default").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func waitIdle(t *testing.T, m *Manager, within time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if s := m.Status(); s.Trial == nil {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("trial still running after %s: %+v", within, m.Status().Trial)
	return Status{}
}

func waitPhase(t *testing.T, m *Manager, phase string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if s := m.Status(); s.Trial != nil && s.Trial.Phase == phase {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("trial never reached %q: %+v", phase, m.Status())
}

// TestTrialsInNamespace drives the manager the way the console does, against a real
// interface: a good static configuration confirmed and stored, a wrong gateway and a missed
// confirmation rolled back on their own, an explicit revert, the stored configuration
// applied again at the next start, and DHCP's client started and stopped with the mode.
func TestTrialsInNamespace(t *testing.T) {
	l := newLAN(t)
	LeaseWait = 500 * time.Millisecond // /bin/sleep stands in for the DHCP client: no lease comes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	store, err := settings.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dhcp := &Process{Path: "/bin/sleep", Args: []string{"1000"}, Log: log}
	defer dhcp.Stop(context.Background()) //nolint:errcheck
	resolv := filepath.Join(dir, "resolv.conf")
	link := &Interface{Name: l.boxIf, Namespace: &l.boxNS, ResolvConf: resolv, DHCP: dhcp}
	newManager := func() *Manager {
		return &Manager{Link: link, Store: store, Log: log, CheckTimeout: 3 * time.Second, ConfirmWindow: 2 * time.Second, ApplyDelay: 10 * time.Millisecond}
	}
	m := newManager()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !dhcp.Running() {
		t.Fatal("DHCP client not started for the default configuration")
	}
	admin := audit.Actor{UserID: "@admin:box", Via: "console"}

	// 1. A good static configuration, confirmed.
	good := Config{Mode: ModeStatic, Address: "10.213.9.20/24", Gateway: "10.213.9.1", DNS: []string{"10.213.9.1"}}
	if _, err := m.Try(ctx, good, admin, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Try(ctx, good, admin, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Try during a trial = %v; want ErrBusy", err)
	}
	waitPhase(t, m, PhaseConfirming)
	if dhcp.Running() {
		t.Fatal("DHCP client still running under a static configuration")
	}
	if !l.ping("10.213.9.20") {
		t.Fatal("the LAN cannot reach the static address")
	}
	if r := l.defaultRoute(t); !strings.Contains(r, "via 10.213.9.1") {
		t.Fatalf("default route = %q", r)
	}
	if err := m.Confirm(admin); err != nil {
		t.Fatal(err)
	}
	s := waitIdle(t, m, 5*time.Second)
	if s.Last == nil || s.Last.Outcome != OutcomeKept || !s.Committed.Equal(good) {
		t.Fatalf("after confirm: %+v", s)
	}
	if st, _ := store.Get(ctx); st.NetworkConfig != good.String() {
		t.Fatalf("stored %q; want %q", st.NetworkConfig, good.String())
	}
	if b, _ := os.ReadFile(resolv); !strings.Contains(string(b), "nameserver 10.213.9.1") {
		t.Fatalf("resolv.conf = %q", b)
	}

	// 2. A gateway that does not answer: back to the good configuration on its own.
	wrong := Config{Mode: ModeStatic, Address: "10.213.50.20/24", Gateway: "10.213.50.1"}
	start := time.Now()
	if _, err := m.Try(ctx, wrong, admin, false); err != nil {
		t.Fatal(err)
	}
	s = waitIdle(t, m, 10*time.Second)
	if s.Last.Outcome != OutcomeRolledBack || !strings.Contains(s.Last.Reason, "10.213.50.1 did not answer") {
		t.Fatalf("wrong gateway: %+v", s.Last)
	}
	t.Logf("wrong gateway rolled back %s after the request", time.Since(start).Round(10*time.Millisecond))
	if !slices.Contains(s.Addresses, "10.213.9.20/24") || slices.Contains(s.Addresses, "10.213.50.20/24") {
		t.Fatalf("addresses after rollback: %v", s.Addresses)
	}
	if !l.ping("10.213.9.20") || !strings.Contains(l.defaultRoute(t), "via 10.213.9.1") {
		t.Fatal("the box is not reachable at its old address after the rollback")
	}

	// 3. Nobody confirms: rolled back when the window closes.
	other := Config{Mode: ModeStatic, Address: "10.213.9.30/24", Gateway: "10.213.9.1"}
	if _, err := m.Try(ctx, other, admin, false); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, m, PhaseConfirming)
	if !l.ping("10.213.9.30") {
		t.Fatal("the trial address is not reachable during the trial")
	}
	s = waitIdle(t, m, 10*time.Second)
	if s.Last.Outcome != OutcomeRolledBack || !strings.Contains(s.Last.Reason, "nobody confirmed") || !l.ping("10.213.9.20") {
		t.Fatalf("unconfirmed: %+v", s.Last)
	}
	if l.ping("10.213.9.30") {
		t.Fatal("the unconfirmed address still answers after the rollback")
	}

	// 4. Reverted by the administrator.
	if _, err := m.Try(ctx, other, admin, false); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, m, PhaseConfirming)
	if err := m.Revert(admin); err != nil {
		t.Fatal(err)
	}
	s = waitIdle(t, m, 5*time.Second)
	if s.Last.Outcome != OutcomeRolledBack || !strings.Contains(s.Last.Reason, "reverted by") {
		t.Fatalf("revert: %+v", s.Last)
	}
	if err := m.Confirm(admin); !errors.Is(err, ErrNoTrial) {
		t.Fatalf("Confirm with nothing on trial = %v", err)
	}

	// 5. The next start applies what was kept.
	exec.Command("ip", "-n", l.boxName, "addr", "flush", "dev", l.boxIf).Run() //nolint:errcheck
	m2 := newManager()
	if err := m2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if s := m2.Status(); !s.Applied.Equal(good) || !slices.Contains(s.Addresses, "10.213.9.20/24") {
		t.Fatalf("after restart: %+v", s)
	}

	// 6. Back to DHCP (provisioning-style, kept without a confirmation): static address and
	// our resolver file gone, the client running.
	if _, err := m2.Try(ctx, Config{Mode: ModeDHCP}, admin, true); err != nil {
		t.Fatal(err)
	}
	s = waitIdle(t, m2, 5*time.Second)
	if s.Last.Outcome != OutcomeKept || len(s.Addresses) != 0 || !dhcp.Running() {
		t.Fatalf("DHCP: %+v, client running %v", s, dhcp.Running())
	}
	if _, err := os.Stat(resolv); !os.IsNotExist(err) {
		t.Fatalf("our resolv.conf survived the switch to DHCP: %v", err)
	}
	entries, err := audit.List(ctx, store.DB(), 50)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"network.try", "network.keep", "network.rollback"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit log lacks %s: %v", want, actions)
		}
	}
}
