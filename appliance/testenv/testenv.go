// Package testenv hands tests the real parts they drive (the dendrite binary built by
// `make`), the same way in every package.
package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// DendriteBinary is the real dendrite, built by `make` and passed in OUTPOST_DENDRITE, as an
// absolute path. Inside `make test` (OUTPOST_REQUIRE_DENDRITE=1) its absence is a failure,
// never a skip.
func DendriteBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("OUTPOST_DENDRITE")
	if p == "" {
		if os.Getenv("OUTPOST_REQUIRE_DENDRITE") != "" {
			t.Fatal("OUTPOST_DENDRITE is not set but OUTPOST_REQUIRE_DENDRITE is: the Makefile must build dendrite first")
		}
		t.Skip("needs the real dendrite binary: run `make test` (or set OUTPOST_DENDRITE=/path/to/dendrite)")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("OUTPOST_DENDRITE=%s: %v", p, err)
	}
	return abs
}

// Tool returns the absolute path of a real program a test drives (smbd, sshd, rclone, age...).
// Inside `make test` its absence is a failure that names the Debian package; in a plain
// `go test` it is a skip.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	for _, dir := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/usr/bin", "/sbin") {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("OUTPOST_REQUIRE_DENDRITE") != "" {
		t.Fatalf("%s not found: apt-get install %s (.ci/run installs it)", name, debianPackage)
	}
	t.Skipf("needs %s: apt-get install %s", name, debianPackage)
	return ""
}

// FreePorts returns n distinct loopback addresses ("127.0.0.1:PORT") that were free a moment
// ago, for a subprocess that cannot be handed a listener. The listeners stay open until all
// are picked: closed one at a time, the kernel may hand out the same port twice, and the
// subprocess then fails to bind its second one.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}
