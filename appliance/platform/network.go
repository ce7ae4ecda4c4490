package platform

import (
	"log/slog"
	"os"
	"syscall"

	"github.com/outpost-im/outpost/appliance/netcfg"
)

// LANInterface is the wired interface gokrazy's kernels name on every supported board.
const LANInterface = "eth0"

// NetworkLink is the interface outpostd configures: the box's LAN port on the appliance
// (gokrazy's own DHCP client is not started by init; outpostd runs it in DHCP mode and stops
// it for a static address), and nothing on a laptop, whose network is its owner's.
func NetworkLink(log *slog.Logger) netcfg.Link {
	if !OnGokrazy() {
		return netcfg.Host{}
	}
	return &netcfg.Interface{
		Name:       LANInterface,
		DHCP:       &netcfg.Process{Path: "/gokrazy/dhcp", Args: []string{"-interface", LANInterface}, Log: log.With("component", "dhcp")},
		ResolvConf: "/tmp/resolv.conf", // /etc/resolv.conf points here on gokrazy
		Changed: func() {
			// gokrazy's init listens on the box's addresses for its own services and
			// re-reads them on SIGHUP, as after a DHCP lease.
			if p, err := os.FindProcess(1); err == nil {
				p.Signal(syscall.SIGHUP) //nolint:errcheck
			}
		},
	}
}
