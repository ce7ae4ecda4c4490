package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
)

const loadUsage = `outpost-load puts Matrix client-server load on a homeserver and measures it.

Against a running Outpost (users are created through its admin socket; outpostd and
dendrite are sampled from /proc):
  outpost-load -data var -url http://127.0.0.1:8080 -users 20 -duration 30s

Straight at the homeserver's socket, bypassing the gateway:
  outpost-load -data var -socket var/homeserver/dendrite.sock -users 20

Any homeserver with shared-secret registration:
  outpost-load -url http://127.0.0.1:8008 -shared-secret S -pid dendrite=1234

Or start a throwaway server first (Outpost's config, or Dendrite's generate-config):
  outpost-load -start outpost -bin bin -users 20
  outpost-load -start stock -bin bin -generate-config /path/to/generate-config -users 20

Flags:
`

// LoadMain is outpost-load's main. It returns the process exit code.
func LoadMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, loadUsage); fs.PrintDefaults() }
	var (
		baseURL   = fs.String("url", "", "client-server API base URL (Outpost's gateway or a homeserver)")
		socket    = fs.String("socket", "", "send every request to this unix socket instead of -url")
		data      = fs.String("data", "", "outpostd data directory: create users via its admin socket, sample outpostd and dendrite")
		secret    = fs.String("shared-secret", "", "create users with this registration shared secret (/_synapse/admin/v1/register)")
		pids      = fs.String("pid", "", "processes to sample, name=PID[,name=PID...] (added to those -data finds)")
		start     = fs.String("start", "", "start a throwaway server first: outpost or stock")
		binDir    = fs.String("bin", "bin", "with -start: directory holding outpostd and dendrite")
		genConfig = fs.String("generate-config", "", "with -start stock: Dendrite's generate-config binary (default BIN/dendrite-generate-config)")
		workDir   = fs.String("workdir", "", "with -start: where the server's state goes (default: a temporary directory, removed)")
		jsonOut   = fs.String("json", "", "write the JSON result to this file ('-' for stdout)")
		quiet     = fs.Bool("q", false, "no progress lines")
		profile   = fs.String("cpuprofile", "", "with -start: write a CPU profile of dendrite over the measurement window here")
		o         Options
	)
	fs.IntVar(&o.Users, "users", 2, "simulated users")
	fs.IntVar(&o.Rooms, "rooms", 0, "rooms; user i joins room i mod rooms (default: one per 10 users)")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "load before measuring")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "measurement window")
	fs.DurationVar(&o.Drain, "drain", 10*time.Second, "wait this long at most for the window's messages to arrive")
	fs.Float64Var(&o.Rate, "rate", 0, "total messages per second (0: closed loop, each user sends as soon as its last send returned)")
	fs.DurationVar(&o.Think, "think", 0, "closed loop: pause between a user's sends")
	fs.IntVar(&o.MediaEvery, "media-every", 0, "every n-th message of a user uploads a file first (0: none)")
	fs.IntVar(&o.MediaBytes, "media-bytes", 64<<10, "size of each upload")
	fs.DurationVar(&o.SyncTimeout, "sync-timeout", 30*time.Second, "/sync long-poll timeout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if !*quiet {
		o.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "outpost-load: %v\n", err); return 1 }

	var t Target
	switch *start {
	case "":
		var err error
		t, err = targetFromFlags(ctx, *baseURL, *socket, *data, *secret)
		if err != nil {
			return fail(err)
		}
	case "outpost", "stock":
		dir := *workDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "outpost-load-")
			if err != nil {
				return fail(err)
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		bins := Binaries{Outpostd: filepath.Join(*binDir, "outpostd"), Dendrite: filepath.Join(*binDir, "dendrite"), GenerateConfig: *genConfig}
		if bins.GenerateConfig == "" {
			bins.GenerateConfig = filepath.Join(*binDir, "dendrite-generate-config")
		}
		var srv *Server
		var err error
		so := ServerOptions{Pprof: *profile != ""}
		if *start == "outpost" {
			srv, err = StartOutpost(ctx, bins, dir, so)
		} else {
			srv, err = StartStock(ctx, bins, dir, so)
		}
		if err != nil {
			return fail(err)
		}
		defer srv.Stop() //nolint:errcheck
		t = srv.Target
		if *socket != "" && srv.Direct != nil {
			t = *srv.Direct
		}
		if *profile != "" {
			win := o.Duration
			done := make(chan struct{})
			o.OnWindow = func(context.Context) {
				defer close(done)
				if err := CaptureCPUProfile(ctx, srv.PprofAddr, win, *profile); err != nil {
					fmt.Fprintf(stderr, "outpost-load: %v\n", err)
				}
			}
			defer func() { <-done }()
		}
	default:
		return fail(fmt.Errorf("-start %q: want outpost or stock", *start))
	}
	extra, err := parsePIDs(*pids)
	if err != nil {
		return fail(err)
	}
	t.Procs = append(t.Procs, extra...)

	res, err := Run(ctx, t, o)
	if err != nil {
		return fail(err)
	}
	fmt.Fprint(stdout, Table([]*Result{res}))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		b = append(b, '\n')
		if *jsonOut == "-" {
			stdout.Write(b) //nolint:errcheck
		} else if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fail(err)
		}
	}
	return 0
}

// targetFromFlags describes an already running server.
func targetFromFlags(ctx context.Context, baseURL, socket, data, secret string) (Target, error) {
	t := Target{Name: "server", BaseURL: baseURL, Socket: socket}
	if baseURL == "" && socket == "" {
		return t, errors.New("give -url or -socket (or -start)")
	}
	if socket != "" {
		t.Name = "socket"
	}
	switch {
	case data != "":
		admin := adminapi.NewClient(data)
		st, err := admin.Status(ctx)
		if err != nil {
			return t, err
		}
		if st.Homeserver.PID == 0 {
			return t, fmt.Errorf("the homeserver of %s is %s", data, st.Homeserver.State)
		}
		t.Name = "outpost"
		if socket != "" {
			t.Name = "outpost-direct"
		}
		t.Registrar = RegistrarFunc(func(ctx context.Context, localpart, password string) error {
			_, err := admin.AddUser(ctx, adminapi.AddUserRequest{Username: localpart, Password: password})
			return err
		})
		if ppid, err := parentPID(st.Homeserver.PID); err == nil {
			t.Procs = append(t.Procs, Proc{Name: "outpostd", PID: ppid})
		}
		t.Procs = append(t.Procs, Proc{Name: "dendrite", PID: st.Homeserver.PID})
	case secret != "":
		t.Registrar = SharedSecretRegistrar(t, secret)
	default:
		return t, errors.New("give -data (Outpost) or -shared-secret so users can be created")
	}
	return t, nil
}

// parentPID reads the parent of pid from /proc/PID/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}

func parsePIDs(s string) ([]Proc, error) {
	var out []Proc
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, p, ok := strings.Cut(part, "=")
		pid, err := strconv.Atoi(p)
		if !ok || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pid %q: want name=PID", part)
		}
		out = append(out, Proc{Name: name, PID: pid})
	}
	return out, nil
}
