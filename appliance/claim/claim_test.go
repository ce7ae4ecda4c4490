package claim

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	re := regexp.MustCompile(`^[` + Alphabet + `]{4}-[` + Alphabet + `]{4}-[` + Alphabet + `]{4}$`)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		c, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(c) {
			t.Fatalf("bad code %q", c)
		}
		if seen[c] {
			t.Fatalf("repeated code %q", c)
		}
		seen[c] = true
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		typed string
		ok    bool
	}{
		{"KCFM-9TQA-VX3R", true},
		{"kcfm 9tqa vx3r", true},
		{"KCFM9TQAVX3R", true},
		{"KCFM-9TQA-VX3", false},
		{"KCFM-9TQA-VX3RR", false},
		{"", false},
	} {
		if got := Matches(tc.typed, "KCFM-9TQA-VX3R"); got != tc.ok {
			t.Errorf("Matches(%q) = %v", tc.typed, got)
		}
	}
}

func TestEnsureStableUntilRetired(t *testing.T) {
	dir := t.TempDir()
	a, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Ensure(dir)
	if a != b {
		t.Fatal("code changed across calls")
	}
	fi, _ := os.Stat(filepath.Join(dir, FileName))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if got, _ := Read(dir); got != a {
		t.Fatalf("Read = %q", got)
	}
	if err := Retire(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(dir); got != "" {
		t.Fatalf("code survives retirement: %q", got)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(3, 5, time.Minute)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allowed("a"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		l.Fail("a")
	}
	if ok, wait := l.Allowed("a"); ok || wait <= 0 || wait > time.Minute {
		t.Fatalf("4th attempt: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allowed("b"); !ok {
		t.Fatal("other client blocked by a's failures")
	}
	l.Fail("b")
	l.Fail("c")
	if ok, _ := l.Allowed("d"); ok {
		t.Fatal("global budget not enforced")
	}
	now = now.Add(61 * time.Second)
	if ok, _ := l.Allowed("a"); !ok {
		t.Fatal("window did not slide")
	}
}
