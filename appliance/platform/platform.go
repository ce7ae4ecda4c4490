// Package platform tells the gokrazy appliance from a laptop and supplies the defaults that
// differ between them.
package platform

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// OnGokrazy reports whether we run as a gokrazy appliance (its init lives at /gokrazy/init).
func OnGokrazy() bool {
	_, err := os.Stat("/gokrazy/init")
	return err == nil
}

// DefaultDataDir is where the appliance keeps its state: the persistent partition on the
// box, ./var in the working directory on a laptop.
func DefaultDataDir() string {
	if OnGokrazy() {
		return "/perm/outpost"
	}
	return "var"
}

// DefaultHTTPAddr is where the gateway listens.
func DefaultHTTPAddr() string {
	if OnGokrazy() {
		return ":80"
	}
	return "127.0.0.1:8080"
}

// DefaultHTTPSAddr is where the gateway serves HTTPS once the box is set up.
func DefaultHTTPSAddr() string {
	if OnGokrazy() {
		return ":443"
	}
	return "127.0.0.1:8443"
}

// DefaultTURNAddr is where the TURN relay listens (UDP and TCP).
func DefaultTURNAddr() string {
	if OnGokrazy() {
		return ":3478"
	}
	return "127.0.0.1:3478"
}

// DefaultTURNTLSAddr is where TURN over TLS listens.
func DefaultTURNTLSAddr() string {
	if OnGokrazy() {
		return ":5349"
	}
	return "127.0.0.1:5349"
}

// DefaultDendrite finds the dendrite binary: beside our own executable (the image and
// `make run` put it there), else on PATH.
func DefaultDendrite() string {
	if OnGokrazy() {
		return "/user/dendrite"
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "dendrite")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("dendrite"); err == nil {
		return p
	}
	return "dendrite"
}

// Console is where messages for the person at the box go: on the appliance the serial
// console and the HDMI screen, on a laptop the terminal (stdout). Never the log, so a
// one-time code is not kept in log files.
func Console() io.Writer {
	if !OnGokrazy() {
		return os.Stdout
	}
	ws := []io.Writer{os.Stdout}
	for _, dev := range []string{"/dev/console", "/dev/tty1"} {
		if f, err := os.OpenFile(dev, os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
			ws = append(ws, f)
		}
	}
	return io.MultiWriter(ws...)
}

// LANAddresses lists the machine's non-loopback unicast addresses, IPv4 first.
func LANAddresses() []net.IP {
	var v4, v6 []net.IP
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
			continue
		}
		if ipn.IP.To4() != nil {
			v4 = append(v4, ipn.IP)
		} else {
			v6 = append(v6, ipn.IP)
		}
	}
	return append(v4, v6...)
}

// BoxURLs turns a listen address into the URLs people type: an unspecified host (":443",
// "[::]:80") becomes one URL per LAN address, and the scheme's default port is left out.
func BoxURLs(scheme, listenAddr, path string) []string {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return []string{scheme + "://" + listenAddr + path}
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	hostport := func(h string) string {
		if port == "" {
			if strings.Contains(h, ":") {
				return "[" + h + "]"
			}
			return h
		}
		return net.JoinHostPort(h, port)
	}
	var urls []string
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		for _, ip := range LANAddresses() {
			urls = append(urls, scheme+"://"+hostport(ip.String())+path)
		}
	}
	if len(urls) == 0 {
		urls = append(urls, scheme+"://"+hostport(host)+path)
	}
	return urls
}
