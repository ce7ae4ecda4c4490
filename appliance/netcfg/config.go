// Package netcfg owns the box's IPv4 configuration: DHCP (the default) or a static address,
// gateway and DNS servers, applied to the LAN interface with a safety net. A new
// configuration is tried, not trusted: the gateway must answer within seconds and an
// administrator must confirm it from the console within minutes, or the previous
// configuration comes back on its own. Only a confirmed configuration is stored, so a power
// cut during a trial also ends in the old, working one.
package netcfg

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Mode is how the box gets its address.
const (
	ModeDHCP   = "dhcp"
	ModeStatic = "static"
)

// Config is a network configuration as people write it (console, CLI, provisioning
// manifest) and as settings store it (JSON).
type Config struct {
	Mode    string   `json:"mode"`
	Address string   `json:"address,omitempty"` // static: CIDR, e.g. 192.168.17.10/24
	Gateway string   `json:"gateway,omitempty"` // static: the router, in the address's subnet
	DNS     []string `json:"dns,omitempty"`     // static: resolvers; DHCP: extra ones are ignored
	NTP     []string `json:"ntp,omitempty"`     // LAN NTP servers (host or IP), either mode
}

// FieldError names the field of a Config that is wrong and what is allowed.
type FieldError struct {
	Field   string // "address", "gateway", "dns[1]", ...; "" for the whole configuration
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Parse reads a stored configuration; "" is DHCP, the factory default.
func Parse(s string) (Config, error) {
	if strings.TrimSpace(s) == "" {
		return Config{Mode: ModeDHCP}, nil
	}
	var c Config
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return Config{}, fmt.Errorf("netcfg: stored network configuration: %w", err)
	}
	return c, c.Validate()
}

// String is the configuration as settings store it.
func (c Config) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Equal reports whether two configurations configure the same thing.
func (c Config) Equal(o Config) bool {
	return c.Mode == o.Mode && c.Address == o.Address && c.Gateway == o.Gateway &&
		slices.Equal(c.DNS, o.DNS) && slices.Equal(c.NTP, o.NTP)
}

// Summary is one line for people: "static 192.168.17.10/24 via 192.168.17.1" or "DHCP".
func (c Config) Summary() string {
	if c.Mode == ModeStatic {
		s := "static " + c.Address + " via " + c.Gateway
		if len(c.DNS) > 0 {
			s += ", DNS " + strings.Join(c.DNS, " ")
		}
		return s
	}
	return "DHCP"
}

// Prefix and GatewayAddr are the parsed static values (zero for DHCP); call Validate first.
func (c Config) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(c.Address)
	return p
}

func (c Config) GatewayAddr() netip.Addr {
	a, _ := netip.ParseAddr(c.Gateway)
	return a
}

// DNSAddrs are the parsed DNS servers; call Validate first.
func (c Config) DNSAddrs() []netip.Addr {
	var out []netip.Addr
	for _, d := range c.DNS {
		if a, err := netip.ParseAddr(d); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Validate checks everything that can be checked without touching the network. Every error
// is a *FieldError that says what to write instead.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeDHCP:
		if c.Address != "" || c.Gateway != "" {
			return fieldErr("", "mode dhcp takes no address or gateway; use mode static for a fixed address")
		}
	case ModeStatic:
		p, err := netip.ParsePrefix(c.Address)
		if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
			return fieldErr("address", "is %q; use an IPv4 address with its prefix length, e.g. 192.168.17.10/24", c.Address)
		}
		a := p.Addr()
		switch {
		case a == p.Masked().Addr():
			return fieldErr("address", "%s is the network address of its subnet, not a host address", a)
		case a == broadcast(p):
			return fieldErr("address", "%s is the broadcast address of its subnet, not a host address", a)
		case a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsUnspecified() || !a.IsGlobalUnicast():
			return fieldErr("address", "%s cannot be a LAN address; use one from the site's subnet, e.g. 192.168.17.10/24", a)
		}
		gw, err := netip.ParseAddr(c.Gateway)
		if err != nil || !gw.Is4() {
			return fieldErr("gateway", "is %q; use the router's IPv4 address, e.g. 192.168.17.1", c.Gateway)
		}
		if !p.Masked().Contains(gw) {
			return fieldErr("gateway", "%s is not in the box's subnet %s: the box could not reach it", gw, p.Masked())
		}
		if gw == a {
			return fieldErr("gateway", "is the box's own address")
		}
		if gw == p.Masked().Addr() || gw == broadcast(p) {
			return fieldErr("gateway", "%s is the network or broadcast address of %s, not a router", gw, p.Masked())
		}
	case "":
		return fieldErr("mode", "is missing: use dhcp or static")
	default:
		return fieldErr("mode", "is %q; use dhcp or static", c.Mode)
	}
	if len(c.DNS) > 3 {
		return fieldErr("dns", "lists %d servers; at most 3 are used", len(c.DNS))
	}
	for i, d := range c.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || a.Zone() != "" {
			return fieldErr(fmt.Sprintf("dns[%d]", i), "is %q; use an IP address", d)
		}
	}
	if len(c.NTP) > 4 {
		return fieldErr("ntp", "lists %d servers; at most 4", len(c.NTP))
	}
	for i, s := range c.NTP {
		if s == "" || len(s) > 253 || strings.ContainsAny(s, " /\\@?#\t\n") {
			return fieldErr(fmt.Sprintf("ntp[%d]", i), "is %q; use a host name or IP address on the LAN", s)
		}
	}
	return nil
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
