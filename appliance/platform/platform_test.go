package platform

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestBoxURLs(t *testing.T) {
	for _, tc := range []struct{ scheme, addr, want string }{
		{"https", "127.0.0.1:8443", "https://127.0.0.1:8443/"},
		{"https", "10.0.0.5:443", "https://10.0.0.5/"},
		{"http", "10.0.0.5:80", "http://10.0.0.5/setup/"},
		{"http", "[fd00::1]:80", "http://[fd00::1]/setup/"},
	} {
		path := "/"
		if tc.scheme == "http" {
			path = "/setup/"
		}
		if got := BoxURLs(tc.scheme, tc.addr, path); len(got) != 1 || got[0] != tc.want {
			t.Errorf("BoxURLs(%s, %s) = %v, want %s", tc.scheme, tc.addr, got, tc.want)
		}
	}
	// An unspecified address lists the machine's LAN addresses, or at least something usable.
	for _, u := range BoxURLs("https", "[::]:443", "/") {
		if strings.Contains(u, "[::]") || strings.Contains(u, ":443") {
			t.Errorf("unusable URL %s", u)
		}
	}
}

func TestResourceLine(t *testing.T) {
	proc := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755) //nolint:errcheck
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self := filepath.Join(proc, itoa(os.Getpid()))
	write(filepath.Join(self, "status"), "Name:\toutpostd\nVmRSS:\t   32768 kB\n")
	write(filepath.Join(self, "comm"), "outpostd\n")
	write(filepath.Join(proc, "4242/status"), "Name:\tdendrite\nVmRSS:\t   61440 kB\n")
	write(filepath.Join(proc, "4242/comm"), "dendrite\n")
	write(filepath.Join(proc, "4243/comm"), "dhcp\n")
	got := ResourceLine(proc, t.TempDir())
	if !regexp.MustCompile(`resources: outpostd 32\.0 MiB, dendrite 60\.0 MiB resident; /.* [0-9.]+% of [0-9.]+ GiB used`).MatchString(got) {
		t.Fatalf("ResourceLine = %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestConsoleHandler(t *testing.T) {
	var logBuf, console bytes.Buffer
	log := slog.New(ConsoleHandler(slog.NewTextHandler(&logBuf, nil), &console, slog.LevelWarn)).With("component", "x")
	log.Info("routine")
	log.Warn("wrong setup code entered", "ip", "10.0.0.9")
	if strings.Contains(console.String(), "routine") || !strings.Contains(console.String(), "wrong setup code") || !strings.Contains(console.String(), "component=x") {
		t.Fatalf("console got %q", console.String())
	}
	if !strings.Contains(logBuf.String(), "routine") || !strings.Contains(logBuf.String(), "wrong setup code") {
		t.Fatalf("log got %q", logBuf.String())
	}
}
