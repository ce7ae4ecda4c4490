package turn

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/settings"
)

// Service runs the TURN server from the settings and restarts it when they change.
type Service struct {
	// UDPTCPAddr is where clients reach TURN over UDP and TCP ("" = TURN off), TLSAddr over TLS.
	UDPTCPAddr, TLSAddr string
	// TLSConfig serves "turns:"; nil leaves TLS off.
	TLSConfig func() *tls.Config
	Log       *slog.Logger

	mu  sync.Mutex
	srv *Server
	cur Effective
}

// Effective is the configuration actually in force, for status and Dendrite's config.
type Effective struct {
	Enabled  bool           `json:"enabled"`
	RelayIP  string         `json:"relay_ip,omitempty"`
	Ports    string         `json:"ports,omitempty"`
	Allowed  []netip.Prefix `json:"allowed_peers,omitempty"`
	URIs     []string       `json:"uris,omitempty"`
	Problem  string         `json:"problem,omitempty"`
	Settings Settings       `json:"settings"`
}

// Settings are the admin's choices (all optional).
type Settings struct {
	Off          bool   `json:"off"`
	RelayIP      string `json:"relay_ip"`      // advertised and bound relay address; "" = the box's LAN address
	Ports        string `json:"ports"`         // "min-max"; "" = default range
	AllowedPeers string `json:"allowed_peers"` // comma-separated prefixes; "" = the box's LAN prefixes
}

// FromSettings extracts the TURN settings.
func FromSettings(st settings.Settings) Settings {
	return Settings{Off: st.TURNOff, RelayIP: st.TURNRelayIP, Ports: st.TURNPorts, AllowedPeers: st.TURNAllowedPeers}
}

// resolved is Settings checked and filled with defaults.
type resolved struct {
	relay   net.IP
	min     uint16
	max     uint16
	allowed []netip.Prefix
}

// Validate checks settings and fills in defaults; errors name the field.
func (s Settings) resolve() (resolved, error) {
	var r resolved
	if s.RelayIP != "" {
		ip, err := netip.ParseAddr(s.RelayIP)
		if err != nil || ip.IsUnspecified() || ip.IsMulticast() {
			return r, &accounts.FieldError{Field: "relay_ip", Message: "give one IP address of the box that clients can reach, e.g. 192.168.1.20"}
		}
		r.relay = net.IP(ip.AsSlice())
	} else {
		for _, ip := range platform.LANAddresses() {
			if ip.To4() != nil {
				r.relay = ip
				break
			}
		}
		if r.relay == nil {
			r.relay = net.IPv4(127, 0, 0, 1)
		}
	}
	r.min, r.max = DefaultMinPort, DefaultMaxPort
	if s.Ports != "" {
		lo, hi, ok := strings.Cut(s.Ports, "-")
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if !ok || err1 != nil || err2 != nil || a < 1024 || b < a || b-a < 9 {
			return r, &accounts.FieldError{Field: "ports", Message: "give a range of at least 10 ports above 1023, e.g. 49160-49359"}
		}
		r.min, r.max = uint16(a), uint16(b)
	}
	if s.AllowedPeers != "" {
		for _, p := range strings.Split(s.AllowedPeers, ",") {
			pfx, err := netip.ParsePrefix(strings.TrimSpace(p))
			if err != nil {
				return r, &accounts.FieldError{Field: "allowed_peers", Message: fmt.Sprintf("%q is not a network prefix; use e.g. 192.168.1.0/24", strings.TrimSpace(p))}
			}
			r.allowed = append(r.allowed, pfx.Masked())
		}
	} else {
		r.allowed = LANPrefixes()
	}
	return r, nil
}

// Validate checks settings without applying them.
func (s Settings) Validate() error {
	_, err := s.resolve()
	return err
}

func hostPort(listen string, relay net.IP) (host, port string) {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return relay.String(), "3478"
	}
	if ip, err := netip.ParseAddr(h); err == nil && !ip.IsUnspecified() {
		return h, p
	}
	return relay.String(), p
}

// URIs are what Dendrite hands to clients: the address they reach the listeners at.
func (svc *Service) uris(r resolved, withTLS bool) []string {
	host, port := hostPort(svc.UDPTCPAddr, r.relay)
	h := host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	out := []string{"turn:" + h + ":" + port + "?transport=udp", "turn:" + h + ":" + port + "?transport=tcp"}
	if withTLS && svc.TLSAddr != "" {
		_, tport := hostPort(svc.TLSAddr, r.relay)
		out = append(out, "turns:"+h+":"+tport+"?transport=tcp")
	}
	return out
}

// URIsFor is what Dendrite should hand out for these settings (nil when TURN is off or
// misconfigured). It depends on the settings alone, so the homeserver's configuration
// does not wait for the TURN server to start.
func (svc *Service) URIsFor(st settings.Settings) []string {
	ts := FromSettings(st)
	if svc.UDPTCPAddr == "" || ts.Off {
		return nil
	}
	r, err := ts.resolve()
	if err != nil {
		return nil
	}
	return svc.uris(r, svc.TLSConfig != nil && svc.TLSConfig() != nil)
}

// Apply (re)starts TURN for the settings. A bad configuration stops TURN and says why;
// calls then fall back to direct connections where those work.
func (svc *Service) Apply(st settings.Settings) Effective {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.srv != nil {
		svc.srv.Close()
		svc.srv = nil
	}
	ts := FromSettings(st)
	eff := Effective{Settings: ts}
	if svc.UDPTCPAddr == "" || ts.Off || !st.SetupComplete {
		svc.cur = eff
		return eff
	}
	r, err := ts.resolve()
	if err != nil {
		eff.Problem = err.Error()
		svc.cur = eff
		return eff
	}
	var tlsCfg *tls.Config
	if svc.TLSConfig != nil {
		tlsCfg = svc.TLSConfig()
	}
	tlsAddr := svc.TLSAddr
	if tlsCfg == nil {
		tlsAddr = ""
	}
	own := []netip.Addr{}
	for _, ip := range platform.LANAddresses() {
		if a, ok := netip.AddrFromSlice(ip); ok {
			own = append(own, a.Unmap())
		}
	}
	relayAddr, _ := netip.AddrFromSlice(r.relay)
	srv, err := Start(Config{
		Realm: st.ServerName, Secret: st.TURNSharedSecret,
		UDPAddr: svc.UDPTCPAddr, TCPAddr: svc.UDPTCPAddr, TLSAddr: tlsAddr, TLSConfig: tlsCfg,
		RelayIP: r.relay, MinPort: r.min, MaxPort: r.max,
		Filter: Filter{Allowed: r.allowed, Own: own, Relay: relayAddr.Unmap()},
		Log:    svc.Log,
	})
	if err != nil {
		eff.Problem = err.Error()
		svc.Log.Error("TURN server not started", "err", err)
		svc.cur = eff
		return eff
	}
	svc.srv = srv
	eff.Enabled, eff.RelayIP, eff.Ports, eff.Allowed = true, r.relay.String(), fmt.Sprintf("%d-%d", r.min, r.max), r.allowed
	eff.URIs = svc.uris(r, tlsAddr != "")
	svc.cur = eff
	return eff
}

// Current is the configuration in force.
func (svc *Service) Current() Effective {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.cur
}

// Stats are the running server's counters (zero when off).
func (svc *Service) Stats() Stats {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.srv == nil {
		return Stats{}
	}
	return svc.srv.Stats()
}

// Close stops TURN.
func (svc *Service) Close() {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.srv != nil {
		svc.srv.Close()
		svc.srv = nil
	}
}

// Change validates and stores new TURN settings with an audit record; the caller then
// re-applies TURN and restarts the homeserver (its config carries the URIs).
func Change(ctx context.Context, store *settings.Store, actor audit.Actor, ts Settings) error {
	if err := ts.Validate(); err != nil {
		return err
	}
	return store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		st.TURNOff, st.TURNRelayIP, st.TURNPorts, st.TURNAllowedPeers = ts.Off, ts.RelayIP, ts.Ports, ts.AllowedPeers
		return audit.Record(ctx, tx, actor.String(), "turn.set", st.ServerName,
			fmt.Sprintf("off=%t relay_ip=%q ports=%q allowed_peers=%q", ts.Off, ts.RelayIP, ts.Ports, ts.AllowedPeers))
	})
}

// CredentialLifetime is how long Dendrite's TURN credentials last.
const CredentialLifetime = time.Hour
