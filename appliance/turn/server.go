package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	pion "github.com/pion/turn/v2"
	"golang.org/x/time/rate"
)

// Config is one TURN server.
type Config struct {
	// Realm is the Matrix server name.
	Realm string
	// Secret is the REST shared secret (also given to Dendrite).
	Secret string
	// UDPAddr and TCPAddr are where clients reach the server ("" = off); TLSAddr with
	// TLSConfig serves "turns:" for clients behind firewalls that only pass TLS.
	UDPAddr, TCPAddr, TLSAddr string
	TLSConfig                 *tls.Config
	// RelayIP is the address handed to clients as their relay address; relays bind to it.
	RelayIP net.IP
	// MinPort, MaxPort bound the relay ports (firewall-friendly).
	MinPort, MaxPort uint16
	// Filter decides which peers may be relayed to.
	Filter Filter
	// Limits.
	MaxAllocations        int           // in total
	MaxPerUser            int           // per Matrix user
	BytesPerSecond        int           // per allocation, each direction
	MaxAllocationLifetime time.Duration // an allocation is closed after this, refreshed or not
	Log                   *slog.Logger
}

// Defaults for a small box: a few dozen concurrent calls at up to ~4 Mbit/s each way.
const (
	DefaultMaxAllocations = 64
	// A browser gathers one relay per TURN URI (UDP, TCP, TLS), so one call can hold three
	// allocations per device; 12 leaves room for a few devices and a retry.
	DefaultMaxPerUser     = 12
	DefaultBytesPerSecond = 512 << 10
	DefaultMaxLifetime    = 12 * time.Hour
	DefaultMinPort        = 49160
	DefaultMaxPort        = 49359
	// userWindow is how long a client address counts as one of a user's allocations after
	// its last authenticated request. A live allocation authenticates at least every five
	// minutes (permissions expire after 300 s and are refreshed), so an ended one stops
	// counting soon after.
	userWindow = 330 * time.Second
)

// Stats are the server's counters, for `outpost status`.
type Stats struct {
	ActiveAllocations int64 `json:"active_allocations"`
	TotalAllocations  int64 `json:"total_allocations"`
	RelayedBytes      int64 `json:"relayed_bytes"`
	DroppedBytes      int64 `json:"dropped_bytes"`
	DeniedPeers       int64 `json:"denied_peers"`
	AuthFailures      int64 `json:"auth_failures"`
	RefusedAllocs     int64 `json:"refused_allocations"`
}

// Server is a running TURN server.
type Server struct {
	cfg   Config
	srv   *pion.Server
	conns []io.Closer

	active, total, relayed, dropped, denied, authFail, refused atomic.Int64

	mu    sync.Mutex
	users map[string]map[string]time.Time // user -> client address -> last seen
	now   func() time.Time
}

var errCapacity = errors.New("turn: allocation limit reached")

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Secret == "" || cfg.Realm == "" {
		return nil, errors.New("turn: realm and shared secret are required")
	}
	if cfg.RelayIP == nil {
		return nil, errors.New("turn: no relay address: give the box's LAN address")
	}
	if cfg.MinPort == 0 || cfg.MaxPort < cfg.MinPort {
		return nil, fmt.Errorf("turn: bad relay port range %d-%d", cfg.MinPort, cfg.MaxPort)
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.BytesPerSecond <= 0 {
		cfg.BytesPerSecond = DefaultBytesPerSecond
	}
	if cfg.MaxAllocationLifetime <= 0 {
		cfg.MaxAllocationLifetime = DefaultMaxLifetime
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, users: map[string]map[string]time.Time{}, now: time.Now}
	gen := &relayGen{
		inner: &pion.RelayAddressGeneratorPortRange{
			RelayAddress: cfg.RelayIP, Address: cfg.RelayIP.String(), MinPort: cfg.MinPort, MaxPort: cfg.MaxPort,
		},
		s: s,
	}
	permit := func(client net.Addr, peer net.IP) bool {
		if cfg.Filter.Permit(peer) {
			return true
		}
		s.denied.Add(1)
		cfg.Log.Warn("TURN relay to a forbidden peer refused", "client", client.String(), "peer", peer.String())
		return false
	}
	sc := pion.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.auth,
		LoggerFactory: slogFactory{cfg.Log},
	}
	fail := func(err error) (*Server, error) {
		for _, c := range s.conns {
			c.Close()
		}
		return nil, err
	}
	if cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp", cfg.UDPAddr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen udp %s: %w", cfg.UDPAddr, err))
		}
		s.conns = append(s.conns, pc)
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, pion.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: gen, PermissionHandler: permit})
	}
	for _, l := range []struct {
		addr string
		tls  bool
	}{{cfg.TCPAddr, false}, {cfg.TLSAddr, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen tcp %s: %w", l.addr, err))
		}
		if l.tls {
			if cfg.TLSConfig == nil {
				ln.Close()
				return fail(errors.New("turn: a TLS address needs a TLS configuration"))
			}
			ln = tls.NewListener(ln, cfg.TLSConfig)
		}
		s.conns = append(s.conns, ln)
		sc.ListenerConfigs = append(sc.ListenerConfigs, pion.ListenerConfig{Listener: ln, RelayAddressGenerator: gen, PermissionHandler: permit})
	}
	if len(s.conns) == 0 {
		return nil, errors.New("turn: no listen address")
	}
	srv, err := pion.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turn: %w", err))
	}
	s.srv = srv
	cfg.Log.Info("TURN server listening", "udp", cfg.UDPAddr, "tcp", cfg.TCPAddr, "tls", cfg.TLSAddr,
		"relay", cfg.RelayIP.String(), "ports", fmt.Sprintf("%d-%d", cfg.MinPort, cfg.MaxPort))
	return s, nil
}

// Close stops the server and all its relays.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		ActiveAllocations: s.active.Load(), TotalAllocations: s.total.Load(), RelayedBytes: s.relayed.Load(),
		DroppedBytes: s.dropped.Load(), DeniedPeers: s.denied.Load(), AuthFailures: s.authFail.Load(), RefusedAllocs: s.refused.Load(),
	}
}

// auth checks REST credentials and the per-user allocation limit. pion calls it for every
// authenticated request (allocate, refresh, permissions, channel binds) with the client's
// transport address; each allocation has its own address, so the number of a user's
// addresses seen recently is the number of their allocations.
func (s *Server) auth(username, realm string, src net.Addr) ([]byte, bool) {
	user, _, err := ParseUsername(username, s.now())
	if err != nil || realm != s.cfg.Realm {
		s.authFail.Add(1)
		s.cfg.Log.Warn("TURN credentials refused", "client", src.String(), "reason", errString(err, "wrong realm"))
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	addrs := s.users[user]
	if addrs == nil {
		addrs = map[string]time.Time{}
		s.users[user] = addrs
	}
	for a, seen := range addrs {
		if now.Sub(seen) > userWindow {
			delete(addrs, a)
		}
	}
	key := src.Network() + "/" + src.String()
	if _, known := addrs[key]; !known && len(addrs) >= s.cfg.MaxPerUser {
		s.mu.Unlock()
		s.refused.Add(1)
		s.cfg.Log.Warn("TURN allocation refused: per-user limit", "user", user, "limit", s.cfg.MaxPerUser)
		return nil, false
	}
	addrs[key] = now
	s.mu.Unlock()
	// The long-term credential key: MD5(username:realm:password), password the REST one.
	return pion.GenerateAuthKey(username, realm, Password(s.cfg.Secret, username)), true
}

func errString(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// relayGen hands out relay sockets within the port range, up to the total limit, each
// wrapped for accounting, bandwidth and lifetime limits.
type relayGen struct {
	inner pion.RelayAddressGenerator
	s     *Server
}

func (g *relayGen) Validate() error { return g.inner.Validate() }

func (g *relayGen) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	s := g.s
	if s.active.Add(1) > int64(s.cfg.MaxAllocations) {
		s.active.Add(-1)
		s.refused.Add(1)
		s.cfg.Log.Warn("TURN allocation refused: server limit", "limit", s.cfg.MaxAllocations)
		return nil, nil, errCapacity
	}
	pc, addr, err := g.inner.AllocatePacketConn(network, port)
	if err != nil {
		s.active.Add(-1)
		return nil, nil, err
	}
	s.total.Add(1)
	rc := &relayConn{
		PacketConn: pc,
		s:          s,
		in:         rate.NewLimiter(rate.Limit(s.cfg.BytesPerSecond), max(s.cfg.BytesPerSecond/4, 64<<10)),
		out:        rate.NewLimiter(rate.Limit(s.cfg.BytesPerSecond), max(s.cfg.BytesPerSecond/4, 64<<10)),
	}
	rc.timer = time.AfterFunc(s.cfg.MaxAllocationLifetime, func() {
		s.cfg.Log.Info("TURN allocation reached its maximum lifetime", "relay", addr.String())
		rc.Close()
	})
	return rc, addr, nil
}

// AllocateConn would be a TCP relay (RFC 6062); pion does not offer it and WebRTC does not
// need it.
func (g *relayGen) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("turn: TCP relays are not supported")
}

// relayConn accounts for and limits one allocation's relayed traffic. Over the limit,
// datagrams are dropped (as a congested link would), never queued.
type relayConn struct {
	net.PacketConn
	s       *Server
	in, out *rate.Limiter
	timer   *time.Timer
	once    sync.Once
}

// ReadFrom receives from peers (towards the client).
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.in.AllowN(time.Now(), n) {
			if n > 0 && err == nil {
				c.s.relayed.Add(int64(n))
			}
			return n, addr, err
		}
		c.s.dropped.Add(int64(n))
	}
}

// WriteTo sends to a peer (from the client).
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok && ua.IP.Equal(c.s.cfg.RelayIP) &&
		(ua.Port < int(c.s.cfg.MinPort) || ua.Port > int(c.s.cfg.MaxPort)) {
		// The relay address is a permitted peer only as another relay.
		c.s.denied.Add(1)
		return len(p), nil
	}
	if !c.out.AllowN(time.Now(), len(p)) {
		c.s.dropped.Add(int64(len(p)))
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.s.relayed.Add(int64(n))
	return n, err
}

// Close releases the allocation's slot once.
func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.once.Do(func() {
		c.timer.Stop()
		c.s.active.Add(-1)
	})
	return err
}

// slogFactory routes pion's logs into ours, warnings and above only: pion is chatty.
type slogFactory struct{ log *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.log.With("pion", scope)}
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Trace(string)                     {}
func (l slogLogger) Tracef(string, ...any)            {}
func (l slogLogger) Debug(string)                     {}
func (l slogLogger) Debugf(string, ...any)            {}
func (l slogLogger) Info(string)                      {}
func (l slogLogger) Infof(string, ...any)             {}
func (l slogLogger) Warn(msg string)                  { l.log.Warn(strings.TrimSpace(msg)) }
func (l slogLogger) Warnf(format string, args ...any) { l.log.Warn(fmt.Sprintf(format, args...)) }
func (l slogLogger) Error(msg string)                 { l.log.Error(strings.TrimSpace(msg)) }
func (l slogLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// LANPrefixes returns the networks of the machine's interfaces: the default set of peers a
// relay may reach.
func LANPrefixes() []netip.Prefix {
	var out []netip.Prefix
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			ones, _ := ipn.Mask.Size()
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				out = append(out, netip.PrefixFrom(ip.Unmap(), ones).Masked())
			}
		}
	}
	return out
}
