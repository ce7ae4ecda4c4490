// Package turnbench compares Outpost's TURN relay (pion/turn/v2) with coturn, the reference
// implementation, on this machine in one run: the same client (coturn's turnutils_uclient),
// the same load, the same peer in a network namespace, rounds alternating A B A B so the
// machine's drift cancels out. It reports packets per second, loss and server CPU per
// relayed packet, and the ratios pion/coturn.
package turnbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/turn"
)

// Options of a run.
type Options struct {
	Sessions int // concurrent TURN clients (allocations)
	Messages int // per session
	Size     int // bytes per message
	Rounds   int // A/B pairs
	Out      io.Writer
	// PionProfile, if set, is where the pion process writes a CPU profile.
	PionProfile string
}

const (
	secret = "bench-secret"
	realm  = "bench.lan"
	hostIP = "10.213.9.1"
	peerIP = "10.213.9.2"
	prefix = "10.213.9.0/24"
	netns  = "outpost-turnbench"
)

// Result is one round against one server.
type Result struct {
	Server      string
	Sent, Recv  int
	LossPct     float64
	Seconds     float64 // client's transmit time
	CPUSeconds  float64 // server user+system time during the round
	PacketsPerS float64 // relayed packets per second (each message is relayed twice)
	CPUPerPktUS float64 // server CPU microseconds per relayed packet
}

// Serve runs a bare pion relay for the benchmark (in its own process, so its CPU time can
// be measured alone) until ctx ends.
func Serve(ctx context.Context, listen string) error {
	s, err := turn.Start(turn.Config{
		Realm: realm, Secret: secret, UDPAddr: listen,
		RelayIP: net.ParseIP(hostIP), MinPort: 50000, MaxPort: 50999,
		Filter:         turn.Filter{Allowed: []netip.Prefix{netip.MustParsePrefix(prefix)}},
		MaxAllocations: 1000, MaxPerUser: 1000, BytesPerSecond: 1 << 30,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

func run(ctx context.Context, name string, args ...string) error {
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}

func setupNetns(ctx context.Context) (cleanup func(), err error) {
	exec.Command("ip", "netns", "del", netns).Run() //nolint:errcheck // leftover of a killed run
	exec.Command("ip", "link", "del", "otb0").Run() //nolint:errcheck
	cleanup = func() {
		exec.Command("ip", "netns", "del", netns).Run() //nolint:errcheck
		exec.Command("ip", "link", "del", "otb0").Run() //nolint:errcheck
	}
	for _, args := range [][]string{
		{"netns", "add", netns},
		{"link", "add", "otb0", "type", "veth", "peer", "name", "otb1"},
		{"link", "set", "otb1", "netns", netns},
		{"addr", "add", hostIP + "/24", "dev", "otb0"},
		{"link", "set", "otb0", "up"},
		{"netns", "exec", netns, "ip", "addr", "add", peerIP + "/24", "dev", "otb1"},
		{"netns", "exec", netns, "ip", "link", "set", "otb1", "up"},
		{"netns", "exec", netns, "ip", "link", "set", "lo", "up"},
	} {
		if err := run(ctx, "ip", args...); err != nil {
			cleanup()
			return nil, err
		}
	}
	return cleanup, nil
}

// cpuSeconds is a process's user+system time so far.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

var (
	reTotals = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$`)
	reLoss   = regexp.MustCompile(`Total lost packets \d+ \(([\d.]+)%\)`)
	reTime   = regexp.MustCompile(`Total transmit time is (\d+)`)
)

func round(ctx context.Context, o Options, server string, pid int, port string) (Result, error) {
	r := Result{Server: server}
	user, pass := turn.Credentials(secret, "@bench:"+realm, time.Hour, time.Now())
	before, err := cpuSeconds(pid)
	if err != nil {
		return r, err
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "turnutils_uclient", "-u", user, "-w", pass, "-p", port,
		"-e", peerIP, "-r", "3480", "-m", strconv.Itoa(o.Sessions), "-n", strconv.Itoa(o.Messages),
		"-l", strconv.Itoa(o.Size), "-X", "127.0.0.1").CombinedOutput()
	wall := time.Since(start).Seconds()
	if err != nil {
		return r, fmt.Errorf("turnutils_uclient against %s: %v\n%s", server, err, out)
	}
	after, _ := cpuSeconds(pid)
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if m := reTotals.FindStringSubmatch(line); m != nil {
			r.Sent, _ = strconv.Atoi(m[1])
			r.Recv, _ = strconv.Atoi(m[2])
		}
		if m := reLoss.FindStringSubmatch(line); m != nil {
			r.LossPct, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := reTime.FindStringSubmatch(line); m != nil {
			r.Seconds, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	if r.Seconds == 0 {
		r.Seconds = wall
	}
	r.CPUSeconds = after - before
	pkts := float64(2 * r.Recv)
	if pkts == 0 {
		return r, fmt.Errorf("no message came back through %s:\n%s", server, out)
	}
	r.PacketsPerS = pkts / r.Seconds
	r.CPUPerPktUS = r.CPUSeconds / pkts * 1e6
	return r, nil
}

// Run performs the comparison and writes the table to o.Out.
func Run(ctx context.Context, o Options, self string) ([]Result, error) {
	for _, tool := range []string{"turnserver", "turnutils_uclient", "turnutils_peer", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is needed: apt-get install coturn iproute2", tool)
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the benchmark creates a network namespace for the peer: run it as root")
	}
	cleanup, err := setupNetns(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	peer := exec.CommandContext(ctx, "ip", "netns", "exec", netns, "turnutils_peer", "-L", peerIP, "-p", "3480")
	if err := peer.Start(); err != nil {
		return nil, err
	}
	defer func() { peer.Process.Kill(); peer.Wait() }() //nolint:errcheck

	pionArgs := []string{"-serve-pion", "127.0.0.1:34780"}
	if o.PionProfile != "" {
		pionArgs = append(pionArgs, "-cpuprofile", o.PionProfile)
	}
	pion := exec.CommandContext(ctx, self, pionArgs...)
	pion.Stderr = os.Stderr
	if err := pion.Start(); err != nil {
		return nil, err
	}
	defer func() { pion.Process.Signal(os.Interrupt); pion.Wait() }() //nolint:errcheck // SIGINT lets it write its profile
	coturn := exec.CommandContext(ctx, "turnserver", "-n", "--listening-ip=127.0.0.1", "--listening-port=34781",
		"--relay-ip="+hostIP, "--min-port=51000", "--max-port=51999", "--use-auth-secret", "--static-auth-secret="+secret,
		"--realm="+realm, "--no-tls", "--no-dtls", "--no-cli", "--no-tcp", "--allowed-peer-ip="+peerIP,
		"--total-quota=0", "--user-quota=0", "--no-stdout-log", "--log-file=/dev/null", "--pidfile=/dev/null")
	if err := coturn.Start(); err != nil {
		return nil, err
	}
	defer func() { coturn.Process.Kill(); coturn.Wait() }() //nolint:errcheck
	time.Sleep(time.Second)

	var results []Result
	for i := 0; i < o.Rounds; i++ {
		for _, srv := range []struct {
			name string
			pid  int
			port string
		}{{"pion", pion.Process.Pid, "34780"}, {"coturn", coturn.Process.Pid, "34781"}} {
			r, err := round(ctx, o, srv.name, srv.pid, srv.port)
			if err != nil {
				return results, err
			}
			fmt.Fprintf(o.Out, "round %d %-6s %6d/%6d msgs  loss %5.2f%%  %8.0f pkt/s  %6.2f CPU-s  %6.1f µs CPU/pkt\n",
				i+1, r.Server, r.Recv, r.Sent, r.LossPct, r.PacketsPerS, r.CPUSeconds, r.CPUPerPktUS)
			results = append(results, r)
		}
	}
	return results, nil
}

// Summary reduces the rounds to medians per server and their ratios.
type Summary struct {
	Pion, Coturn Result
	// Efficiency is coturn's CPU per packet divided by pion's: 1.0 means equal, above 1
	// means pion needs less CPU per packet.
	Efficiency, ThroughputRatio float64
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summarize computes medians and ratios.
func Summarize(rs []Result) Summary {
	var out Summary
	for _, name := range []string{"pion", "coturn"} {
		var pps, cpu, loss []float64
		var r Result
		for _, x := range rs {
			if x.Server == name {
				pps, cpu, loss = append(pps, x.PacketsPerS), append(cpu, x.CPUPerPktUS), append(loss, x.LossPct)
				r = x
			}
		}
		r.PacketsPerS, r.CPUPerPktUS, r.LossPct = median(pps), median(cpu), median(loss)
		if name == "pion" {
			out.Pion = r
		} else {
			out.Coturn = r
		}
	}
	if out.Pion.CPUPerPktUS > 0 {
		out.Efficiency = out.Coturn.CPUPerPktUS / out.Pion.CPUPerPktUS
	}
	if out.Coturn.PacketsPerS > 0 {
		out.ThroughputRatio = out.Pion.PacketsPerS / out.Coturn.PacketsPerS
	}
	return out
}
