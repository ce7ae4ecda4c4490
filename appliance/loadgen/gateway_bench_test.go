package loadgen

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/outpost-im/outpost/appliance/gateway"
	"github.com/outpost-im/outpost/appliance/homeserver"
)

// fakeHS is the gateway's view of a homeserver that is always ready, behind a real unix
// socket transport (the one outpostd uses).
type fakeHS struct{ tr http.RoundTripper }

func (f fakeHS) WaitReady(context.Context) error { return nil }
func (f fakeHS) Transport() http.RoundTripper    { return f.tr }
func (f fakeHS) StateName() string               { return "running" }

// BenchmarkGatewayProxy measures what the gateway adds to a small request: client → TCP →
// gateway → unix socket → a trivial backend, against client → unix socket → backend.
// Run with -cpuprofile to see where the gateway's time goes.
func BenchmarkGatewayProxy(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "hs.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"versions":["v1.1","v1.2"],"unstable_features":{}}`)
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck
	})}
	go backend.Serve(ln) //nolint:errcheck
	b.Cleanup(func() { backend.Close() })

	gw := gateway.New(gateway.Options{Homeserver: fakeHS{homeserver.SocketTransport(sock)}, Log: slog.New(slog.DiscardHandler)})
	gw.SetState(gateway.State{SetupComplete: true, ServerName: "bench.local"})
	front := httptest.NewServer(gw)
	b.Cleanup(front.Close)

	get := func(b *testing.B, hc *http.Client, url string) {
		for b.Loop() {
			resp, err := hc.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
		}
	}
	b.Run("gateway", func(b *testing.B) {
		get(b, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}, front.URL+"/_matrix/client/versions")
	})
	b.Run("socket", func(b *testing.B) {
		get(b, &http.Client{Transport: homeserver.SocketTransport(sock)}, "http://homeserver/_matrix/client/versions")
	})
	// The least any proxy can add: bytes copied between a TCP connection and the socket,
	// with no HTTP parsing at all. What this adds over "socket" is the floor of any
	// gateway's overhead within one process (docs/benchmarks.md has it between processes).
	b.Run("splice", func(b *testing.B) {
		get(b, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}, "http://"+splice(b, sock)+"/_matrix/client/versions")
	})
}

// splice listens on 127.0.0.1 and copies each connection's bytes to and from sock.
func splice(b *testing.B, sock string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c) //nolint:errcheck // ends when either side closes
				io.Copy(c, u)    //nolint:errcheck
			}()
		}
	}()
	return ln.Addr().String()
}
