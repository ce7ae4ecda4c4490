package turn

import (
	"net"
	"net/netip"
)

// deniedRanges may never be relayed to, whatever the allowed prefixes say: the box itself
// (loopback), link-local (and cloud metadata), multicast, unspecified, "this network",
// carrier-grade NAT, benchmarking and reserved space.
var deniedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 would reach IPv4 space indirectly
	netip.MustParsePrefix("2002::/16"),    // 6to4, likewise
}

// Filter decides which peers a client may relay to.
type Filter struct {
	// Allowed are the LAN prefixes peers may be in.
	Allowed []netip.Prefix
	// Own are the box's own addresses: relaying to them would expose the admin socket's
	// neighbours (gateway, homeserver, gokrazy's UI) to anyone with TURN credentials.
	Own []netip.Addr
	// Relay is the relay address itself. Two clients that both relay (the usual case when
	// both sit behind firewalls) send to each other's relay address, which is the box's;
	// that one address is allowed, and relayConn only lets datagrams reach the relay port
	// range on it, never another service of the box.
	Relay netip.Addr
}

// Permit reports whether relaying to ip is allowed.
func (f Filter) Permit(ip net.IP) bool {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	// ::ffff:127.0.0.1 is 127.0.0.1: judge the IPv4 address, not its IPv6 disguise.
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	if f.Relay.IsValid() && addr == f.Relay.Unmap() {
		return true
	}
	for _, p := range deniedRanges {
		if p.Contains(addr) {
			return false
		}
	}
	for _, own := range f.Own {
		if own.Unmap() == addr {
			return false
		}
	}
	for _, p := range f.Allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
