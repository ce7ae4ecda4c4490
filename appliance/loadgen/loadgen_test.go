package loadgen

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift the fields.
	line := "1234 (dend rite) x) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 130 0 0 20 0 12 0 100 1000000 5000 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3800 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v (utime 250 + stime 130 ticks)", got, want)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Error("malformed stat accepted")
	}
}

func TestParseStatmRSS(t *testing.T) {
	got, err := parseStatmRSS([]byte("300000 25000 3000 100 0 40000 0\n"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got != 25000*4096 {
		t.Errorf("rss = %d", got)
	}
}

func TestParseStatBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	got, err := parseStatBusy("cpu  100 5 50 9000 300 2 3 7 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if want := 1670 * time.Millisecond; got != want {
		t.Errorf("busy = %v, want %v (idle and iowait excluded)", got, want)
	}
}

func TestReadProcSelf(t *testing.T) {
	ps, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ps.RSS <= 0 {
		t.Errorf("own RSS = %d", ps.RSS)
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.N != 100 || s.P50 != 50 || s.P95 != 95 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 {
		t.Errorf("summary = %+v", s)
	}
	if (summarize(nil) != Dist{}) {
		t.Error("empty summary not zero")
	}
	if one := summarize([]time.Duration{7 * time.Millisecond}); one.P50 != 7 || one.P99 != 7 {
		t.Errorf("single sample: %+v", one)
	}
}

func TestParseLevels(t *testing.T) {
	lv, err := parseLevels("2:30s, 20, 100:20s, 20:10s@8.5")
	if err != nil {
		t.Fatal(err)
	}
	if len(lv) != 4 || lv[0].Users != 2 || lv[1].Duration != 30*time.Second || lv[2].Duration != 20*time.Second || lv[2].Rate != 0 {
		t.Errorf("levels = %+v", lv)
	}
	if l := lv[3]; l.Users != 20 || l.Duration != 10*time.Second || l.Rate != 8.5 || l.Load() != "8.5 msg/s" {
		t.Errorf("rate level = %+v (%s)", l, l.Load())
	}
	for _, bad := range []string{"", "1", "x:10s", "5:soon", "20@", "20:10s@-1"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseVariant(t *testing.T) {
	v, err := ParseVariant("lowgc=outpost,outpostd=/tmp/o,dendrite=/tmp/d,env=GOGC=50 GOMEMLIMIT=200MiB")
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "lowgc" || v.Kind != VariantOutpost || v.Outpostd != "/tmp/o" || v.Dendrite != "/tmp/d" || len(v.Env) != 2 || v.Env[1] != "GOMEMLIMIT=200MiB" {
		t.Errorf("variant = %+v", v)
	}
	if v, err := ParseVariant("stock"); err != nil || v.Name != "stock" || v.Kind != VariantStock {
		t.Errorf("bare kind: %+v, %v", v, err)
	}
	for _, bad := range []string{"x=postgres", "x=outpost,bogus=1"} {
		if _, err := ParseVariant(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPatchStockConfig(t *testing.T) {
	in := "client_api:\n  registration_disabled: true\n  registration_shared_secret: \"\"\n  guests_disabled: false\n"
	out, err := patchStockConfig(in, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `registration_shared_secret: "s3cret"`) || !strings.Contains(out, "guests_disabled: false") {
		t.Errorf("patched:\n%s", out)
	}
	if _, err := patchStockConfig("nothing here", "x"); err == nil {
		t.Error("a config without the line was accepted")
	}
}

func TestJournalModes(t *testing.T) {
	dir := t.TempDir()
	for name, pragma := range map[string]string{"wal.db": "journal_mode(WAL)", "rollback.db": "journal_mode(DELETE)"} {
		dsn := (&url.URL{Scheme: "file", Path: filepath.Join(dir, name)}).String() + "?_pragma=" + pragma
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("CREATE TABLE t (x)"); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := JournalModes(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"wal.db": "wal", "rollback.db": "rollback", "empty.db": "empty"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestUpdateDocKeepsHandWrittenParts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	r := &BenchResult{Command: "make bench", Rounds: 1}
	if err := UpdateDoc(path, r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	doc := "# Benchmarks\n\nIntro by hand.\n\n" + string(b[strings.Index(string(b), BeginMarker):]) + "\n## Notes by hand\n\nKeep me.\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Command = "make bench again"
	if err := UpdateDoc(path, r); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	s := string(b)
	for _, want := range []string{"Intro by hand.", "## Notes by hand", "Keep me.", "`make bench again`"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
	if strings.Count(s, BeginMarker) != 1 || strings.Count(s, EndMarker) != 1 || strings.Contains(s, "`make bench`.") {
		t.Errorf("generated section not replaced exactly once:\n%s", s)
	}
}

func TestTable(t *testing.T) {
	r := &Result{Target: "outpost", Users: 20, Rooms: 2, Throughput: 25.5, Errors: map[string]int64{"send: HTTP 500 M_UNKNOWN": 2}, ErrorCount: 2}
	s := Table([]*Result{r})
	for _, want := range []string{"outpost", "25.5", "send: HTTP 500 M_UNKNOWN"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
}

func TestErrKind(t *testing.T) {
	if got := errKind("send", &MatrixError{Status: 429, ErrCode: "M_LIMIT_EXCEEDED"}); got != "send: HTTP 429 M_LIMIT_EXCEEDED" {
		t.Errorf("errKind = %q", got)
	}
}

func TestOverheadMedians(t *testing.T) {
	probe := func(variant string, pct float64) *OverheadResult {
		return &OverheadResult{Variant: variant, Requests: []OverheadEntry{{Request: "send", OverheadPct: pct, AddedMs: pct / 10}}}
	}
	// An unnamed probe comes from a result written before probes were named: the first variant.
	all := []*OverheadResult{probe("", 4), probe("b", 20), probe("a", 6), probe("b", 30), probe("a", 8)}
	if got := overheadMedians(all, "a", "a"); len(got) != 1 || got[0].OverheadPct != 6 {
		t.Errorf("a: %+v", got)
	}
	if got := overheadMedians(all, "b", "a"); len(got) != 1 || got[0].OverheadPct != 25 || got[0].AddedMs != 2.5 {
		t.Errorf("b: %+v", got)
	}
	if got := overheadMedians(all, "c", "a"); got != nil {
		t.Errorf("c was never probed: %+v", got)
	}
}

// A rate-limited upload is retried after the wait the server asks for, as apps do, and
// counted; other failures are not retried.
func TestWaitOutLimits(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch n := calls.Add(1); {
		case r.URL.Query().Get("filename") == "bad":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errcode":"M_FORBIDDEN","error":"no"}`)) //nolint:errcheck
		case n <= 2:
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":60}`)) //nolint:errcheck
		default:
			w.Write([]byte(`{"content_uri":"mxc://box.lan/abc"}`)) //nolint:errcheck
		}
	}))
	defer srv.Close()
	c := &client{base: srv.URL, hc: srv.Client()}
	r := &runner{}
	ctx := context.Background()
	var mxc string
	start := time.Now()
	err := r.waitOutLimits(ctx, true, func() (err error) { mxc, err = c.upload(ctx, "x.bin", []byte("x")); return err })
	if err != nil || mxc != "mxc://box.lan/abc" || calls.Load() != 3 || r.rateLimited.Load() != 2 {
		t.Fatalf("err %v mxc %q calls %d limited %d", err, mxc, calls.Load(), r.rateLimited.Load())
	}
	if waited := time.Since(start); waited < 120*time.Millisecond {
		t.Errorf("retried after %v, before the 2 x 60 ms the server asked for", waited)
	}
	calls.Store(10)
	err = r.waitOutLimits(ctx, true, func() error { _, err := c.upload(ctx, "bad", []byte("x")); return err })
	var me *MatrixError
	if !errors.As(err, &me) || me.Status != http.StatusForbidden || calls.Load() != 11 {
		t.Fatalf("a refusal: err %v, %d calls", err, calls.Load()-10)
	}
}
