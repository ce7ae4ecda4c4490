package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// A client that connects while the daemon restarts (after a restore) is served by the next
// run instead of being refused; the port stays the same.
func TestListenersKeptAcrossRestart(t *testing.T) {
	var lns keptListeners
	defer lns.close()
	serve := func(answer string) (*http.Server, string) {
		t.Helper()
		ln, err := lns.listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, answer) })} //nolint:errcheck
		go srv.Serve(ln)                                                                                                           //nolint:errcheck
		return srv, ln.Addr().String()
	}
	get := func(addr string) (string, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	srv1, addr := serve("run 1")
	if got, err := get(addr); err != nil || got != "run 1" {
		t.Fatalf("run 1: %q, %v", got, err)
	}
	if err := srv1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Between the runs: the connection is queued, not refused.
	type result struct {
		body string
		err  error
	}
	pending := make(chan result, 1)
	go func() {
		b, err := get(addr)
		pending <- result{b, err}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-pending:
		t.Fatalf("a request between the runs ended before the next run: %q, %v", r.body, r.err)
	default:
	}
	srv2, addr2 := serve("run 2")
	defer srv2.Close()
	if addr2 != addr {
		t.Errorf("run 2 listens on %s, run 1 on %s", addr2, addr)
	}
	if r := <-pending; r.err != nil || r.body != "run 2" {
		t.Errorf("the queued request got %q, %v; want run 2's answer", r.body, r.err)
	}
	// When the process is done, the port is closed.
	srv2.Close()
	lns.close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after close: %v, want refused", err)
	}
}
