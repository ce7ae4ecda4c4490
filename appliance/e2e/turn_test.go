package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// netns is a network namespace with one veth pair: the box side (hostIP) in our namespace,
// the peer side (peerIP) inside. It stands in for another device on the LAN.
type netns struct {
	name, hostIf   string
	hostIP, peerIP string
	prefix         string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	needTool(t, "ip", "iproute2")
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a network namespace and needs root (CI runs as root)")
	}
	b := make([]byte, 3)
	rand.Read(b) //nolint:errcheck
	id := hex.EncodeToString(b)
	n := &netns{name: "outpost-" + id, hostIf: "oh" + id, hostIP: "10.213.7.1", peerIP: "10.213.7.2", prefix: "10.213.7.0/24"}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	run("netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()  //nolint:errcheck
		exec.Command("ip", "link", "del", n.hostIf).Run() //nolint:errcheck
	})
	run("link", "add", n.hostIf, "type", "veth", "peer", "name", "op"+id)
	run("link", "set", "op"+id, "netns", n.name)
	run("addr", "add", n.hostIP+"/24", "dev", n.hostIf)
	run("link", "set", n.hostIf, "up")
	run("netns", "exec", n.name, "ip", "addr", "add", n.peerIP+"/24", "dev", "op"+id)
	run("netns", "exec", n.name, "ip", "link", "set", "op"+id, "up")
	run("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// TestTURNInteropWithCoturnClient: coturn's own client relays data through our server over
// UDP, TCP and TLS with the credentials Dendrite hands out on /voip/turnServer, to a peer
// on another "machine" (a network namespace); relaying to the box itself is refused.
func TestTURNInteropWithCoturnClient(t *testing.T) {
	uclient := needTool(t, "turnutils_uclient", "coturn")
	peerTool := needTool(t, "turnutils_peer", "coturn")
	ns := newNetns(t)
	d := startDaemon(t, t.TempDir())
	d.setup("box.lan")
	d.mustCLI("", "turn", "set", "--relay-ip", ns.hostIP, "--allow", ns.prefix)

	// Credentials exactly as a Matrix client gets them, through the gateway.
	alice := newClient(t, d.surl(""))
	alice.login("alice", password("alice"))
	var creds struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		TTL      int      `json:"ttl"`
		URIs     []string `json:"uris"`
	}
	alice.must("GET", "/_matrix/client/v3/voip/turnServer", nil, &creds)
	if !strings.HasSuffix(creds.Username, ":@alice:box.lan") || creds.TTL != 3600 || len(creds.URIs) != 3 {
		t.Fatalf("turnServer answer: %+v", creds)
	}
	wantURIs := []string{"turn:" + d.turnAddr + "?transport=udp", "turn:" + d.turnAddr + "?transport=tcp", "turns:" + d.turnTLSAddr + "?transport=tcp"}
	if fmt.Sprint(creds.URIs) != fmt.Sprint(wantURIs) {
		t.Fatalf("uris %v, want %v", creds.URIs, wantURIs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	peer := exec.CommandContext(ctx, "ip", "netns", "exec", ns.name, peerTool, "-L", ns.peerIP, "-p", "3480")
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { peer.Process.Kill(); peer.Wait() }() //nolint:errcheck
	time.Sleep(300 * time.Millisecond)

	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	lost := regexp.MustCompile(`Total lost packets (\d+) \(([\d.]+)%\)`)
	recv := regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$`)
	relay := func(peerIP string, extra ...string) (sent, received int, out string) {
		args := append(extra, "-u", creds.Username, "-w", creds.Password, "-e", peerIP, "-r", "3480",
			"-n", "50", "-m", "2", "-l", "1000", "-X", "127.0.0.1")
		cmd := exec.CommandContext(ctx, uclient, args...)
		b, _ := cmd.CombinedOutput()
		out = string(b)
		for _, line := range strings.Split(out, "\n") {
			if m := recv.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				fmt.Sscan(m[1], &sent)     //nolint:errcheck
				fmt.Sscan(m[2], &received) //nolint:errcheck
			}
		}
		return sent, received, out
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"udp", []string{"-p", port(d.turnAddr)}},
		{"tcp", []string{"-t", "-p", port(d.turnAddr)}},
		{"tls", []string{"-t", "-S", "-p", port(d.turnTLSAddr)}},
	} {
		sent, received, out := relay(ns.peerIP, tc.args...)
		m := lost.FindStringSubmatch(out)
		if sent != 100 || received != 100 || m == nil || m[1] != "0" {
			t.Errorf("%s: sent %d, received %d, lost %v\n%s", tc.name, sent, received, m, tail(out, 15))
		} else {
			t.Logf("%s: 100 messages of 1000 bytes relayed, 0 lost", tc.name)
		}
	}
	// The box's own loopback is never a relay target.
	before := d.turnStats()
	if _, received, out := relay("127.0.0.1", "-p", port(d.turnAddr)); received != 0 {
		t.Errorf("relay to 127.0.0.1 delivered %d messages\n%s", received, tail(out, 10))
	}
	// Nor the box's own LAN address.
	if _, received, _ := relay(ns.hostIP, "-p", port(d.turnAddr)); received != 0 {
		t.Errorf("relay to the box's own address delivered %d messages", received)
	}
	after := d.turnStats()
	if after.DeniedPeers <= before.DeniedPeers {
		t.Errorf("denied peers not counted: %d -> %d", before.DeniedPeers, after.DeniedPeers)
	}
	if after.RelayedBytes < 3*2*100*1000 || after.TotalAllocations < 6 {
		t.Errorf("counters: %+v", after)
	}
	if out := d.mustCLI("", "status"); !strings.Contains(out, "TURN:         on") {
		t.Errorf("status lacks TURN:\n%s", out)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
