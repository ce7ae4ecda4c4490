package turn

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/turn/v2"
)

const secret = "test-shared-secret"

func startTest(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Realm: "box.lan", Secret: secret, UDPAddr: "127.0.0.1:0",
		RelayIP: net.ParseIP("127.0.0.1"), MinPort: 40000, MaxPort: 40999,
		// Loopback peers are always denied; these tests only allocate, they relay nothing.
		Filter: Filter{Allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (s *Server) udpAddr() string { return s.conns[0].(net.PacketConn).LocalAddr().String() }

// allocate is a real TURN client (pion's) asking for a relay.
func allocate(t *testing.T, server, username, password string) (net.PacketConn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pion.NewClient(&pion.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: username, Password: password, Realm: "box.lan",
		RTO: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c.Allocate()
}

func TestCredentials(t *testing.T) {
	s := startTest(t, nil)
	now := time.Now()
	good, goodPW := Credentials(secret, "@alice:box.lan", time.Hour, now)
	expired, expiredPW := Credentials(secret, "@alice:box.lan", -time.Minute, now)
	for _, tc := range []struct {
		name, user, pass string
		ok               bool
	}{
		{"good", good, goodPW, true},
		{"expired", expired, expiredPW, false},
		{"wrong secret", good, Password("another-secret", good), false},
		{"malformed: no expiry", "@alice:box.lan", Password(secret, "@alice:box.lan"), false},
		{"malformed: not a number", "soon:@alice:box.lan", Password(secret, "soon:@alice:box.lan"), false},
		{"malformed: no user", "9999999999:", Password(secret, "9999999999:"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relay, err := allocate(t, s.udpAddr(), tc.user, tc.pass)
			if (err == nil) != tc.ok {
				t.Fatalf("allocate: err = %v, want ok=%v", err, tc.ok)
			}
			if relay != nil {
				if !strings.HasPrefix(relay.LocalAddr().String(), "127.0.0.1:40") {
					t.Errorf("relay address %s outside the range", relay.LocalAddr())
				}
				relay.Close()
			}
		})
	}
	if s.Stats().AuthFailures == 0 {
		t.Error("auth failures not counted")
	}
}

func TestCredentialsMatchDendrite(t *testing.T) {
	// Dendrite: username = "<expiry>:<user id>", password = base64(HMAC-SHA1(secret, username)).
	// Expected value from Python: base64(hmac.new(b"secret", b"1700000000:@alice:box.lan", sha1)).
	if got := Password("secret", "1700000000:@alice:box.lan"); got != "0sojn81m9YO6M2oUi64QC33YDBg=" {
		t.Fatalf("password %q", got)
	}
	user, exp, err := ParseUsername("1700000000:@alice:box.lan", time.Unix(1600000000, 0))
	if err != nil || user != "@alice:box.lan" || exp.Unix() != 1700000000 {
		t.Fatalf("parse: %q %v %v", user, exp, err)
	}
}

func TestFilter(t *testing.T) {
	f := Filter{
		Allowed: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("0.0.0.0/0")},
		Own:     []netip.Addr{netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("fd00::2")},
	}
	for _, tc := range []struct {
		ip string
		ok bool
	}{
		{"192.168.1.50", true},
		{"10.1.2.3", true},
		{"fd00::50", true},
		{"192.168.1.2", false},        // the box itself
		{"::ffff:192.168.1.2", false}, // the box, IPv4-mapped
		{"fd00::2", false},
		{"127.0.0.1", false},
		{"127.8.8.8", false},
		{"::ffff:127.0.0.1", false},
		{"::1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"224.0.0.251", false},
		{"ff02::1", false},
		{"239.255.255.250", false},
		{"100.64.0.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"2002:7f00:1::", false},   // 6to4 of 127.0.0.1
	} {
		if got := f.Permit(net.ParseIP(tc.ip)); got != tc.ok {
			t.Errorf("Permit(%s) = %v, want %v", tc.ip, got, tc.ok)
		}
	}
	// The relay address is a peer (relay to relay), even on loopback; the port check in
	// relayConn keeps it to relay ports.
	rf := Filter{Relay: netip.MustParseAddr("127.0.0.1"), Own: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	if !rf.Permit(net.ParseIP("127.0.0.1")) || !rf.Permit(net.ParseIP("::ffff:127.0.0.1")) || rf.Permit(net.ParseIP("127.0.0.2")) {
		t.Error("relay-to-relay filter")
	}
	// Only the allowed prefixes: a LAN filter refuses the internet.
	lan := Filter{Allowed: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}
	if lan.Permit(net.ParseIP("8.8.8.8")) || !lan.Permit(net.ParseIP("192.168.1.9")) {
		t.Error("LAN filter")
	}
	if (Filter{}).Permit(nil) {
		t.Error("nil IP permitted")
	}
}

func TestAllocationLimits(t *testing.T) {
	s := startTest(t, func(c *Config) { c.MaxAllocations = 3; c.MaxPerUser = 2 })
	now := time.Now()
	alice, alicePW := Credentials(secret, "@alice:box.lan", time.Hour, now)
	bob, bobPW := Credentials(secret, "@bob:box.lan", time.Hour, now)
	carol, carolPW := Credentials(secret, "@carol:box.lan", time.Hour, now)
	for i := 0; i < 2; i++ {
		if _, err := allocate(t, s.udpAddr(), alice, alicePW); err != nil {
			t.Fatalf("alice allocation %d: %v", i, err)
		}
	}
	if _, err := allocate(t, s.udpAddr(), alice, alicePW); err == nil {
		t.Fatal("alice got a third allocation over the per-user limit of 2")
	}
	if _, err := allocate(t, s.udpAddr(), bob, bobPW); err != nil {
		t.Fatalf("bob refused because of alice: %v", err)
	}
	if _, err := allocate(t, s.udpAddr(), carol, carolPW); err == nil {
		t.Fatal("fourth allocation over the server limit of 3")
	}
	st := s.Stats()
	if st.ActiveAllocations != 3 || st.RefusedAllocs < 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRelayBandwidthLimit(t *testing.T) {
	s := startTest(t, nil)
	s.cfg.BytesPerSecond = 10000
	// The sink below stands for a LAN peer, not the relay address (which only takes relay ports).
	s.cfg.RelayIP = net.ParseIP("127.0.0.2")
	gen := &relayGen{inner: &pion.RelayAddressGeneratorPortRange{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1", MinPort: 41000, MaxPort: 41999}, s: s}
	if err := gen.Validate(); err != nil {
		t.Fatal(err)
	}
	pc, _, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sink, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer sink.Close()
	buf := make([]byte, 1000)
	for i := 0; i < 200; i++ { // 200 kB at once against 10 kB/s (burst 64 kB)
		if _, err := pc.WriteTo(buf, sink.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.DroppedBytes == 0 || st.RelayedBytes == 0 || st.RelayedBytes > 100000 {
		t.Fatalf("bandwidth limit not applied: %+v", st)
	}
	if st.ActiveAllocations != 1 {
		t.Fatalf("active %d", st.ActiveAllocations)
	}
	pc.Close()
	pc.Close()
	if got := s.Stats().ActiveAllocations; got != 0 {
		t.Fatalf("active after close %d (double close must release once)", got)
	}
}

func TestRelayToOwnAddressOnlyWithinRelayPorts(t *testing.T) {
	s := startTest(t, nil)
	gen := &relayGen{inner: &pion.RelayAddressGeneratorPortRange{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1", MinPort: 40000, MaxPort: 40999}, s: s}
	if err := gen.Validate(); err != nil {
		t.Fatal(err)
	}
	a, _, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, bAddr, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Another relay: delivered.
	if _, err := a.WriteTo([]byte("hello"), bAddr); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	if n, _, err := b.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("relay to relay: %q %v", buf[:n], err)
	}
	// A service of the box on the same address: dropped.
	svc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer svc.Close()
	before := s.Stats().DeniedPeers
	a.WriteTo([]byte("probe"), svc.LocalAddr())
	svc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := svc.ReadFrom(buf); err == nil {
		t.Fatal("relay reached a box service outside the relay ports")
	}
	if s.Stats().DeniedPeers != before+1 {
		t.Fatal("drop not counted")
	}
}
