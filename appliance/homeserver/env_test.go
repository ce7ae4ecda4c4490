package homeserver

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestDendriteEnv(t *testing.T) {
	base := []string{"PATH=/usr/bin", "HOME=/root"}
	env := dendriteEnv(base, "/perm/outpost/homeserver")
	// The last HOME wins in exec; it must be the homeserver directory.
	if i := slices.Index(env, "HOME=/perm/outpost/homeserver"); i < slices.Index(env, "HOME=/root") {
		t.Errorf("HOME not overridden: %v", env)
	}
	if !slices.Contains(env, "GOGC=35") {
		t.Errorf("no GC default: %v", env)
	}
	if !slices.Contains(env, "DENDRITE_SYNC_MIN_INTERVAL=100ms") {
		t.Errorf("no /sync interval default: %v", env)
	}
	if !slices.Contains(env, "DENDRITE_JETSTREAM_BLOCK_SIZE=262144") || !slices.Contains(env, "DENDRITE_JETSTREAM_CACHE_EXPIRE=1s") {
		t.Errorf("no JetStream file store defaults: %v", env)
	}
	if len(base) != 2 || base[1] != "HOME=/root" {
		t.Errorf("base environment modified: %v", base)
	}
	// An operator's (or a benchmark's) setting wins.
	env = dendriteEnv([]string{"GOGC=200"}, "/d")
	if slices.Contains(env, "GOGC=35") || !slices.Contains(env, "GOGC=200") {
		t.Errorf("explicit GOGC overridden: %v", env)
	}
}

// The dendrite under test reads the JetStream file store settings (our nats-server patch):
// the values outpostd sets are accepted, and a value out of range is reported, not used.
func TestJetStreamSettingsReachDendrite(t *testing.T) {
	bin := dendriteBinary(t)
	run := func(env ...string) string {
		t.Helper()
		cmd := exec.Command(bin, "-version")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s -version: %v\n%s", bin, err, out)
		}
		return string(out)
	}
	var ours []string
	for _, kv := range dendriteDefaults {
		if strings.HasPrefix(kv, "DENDRITE_JETSTREAM_") {
			ours = append(ours, kv)
		}
	}
	if len(ours) != 2 {
		t.Fatalf("dendriteDefaults sets %v, want block size and cache expiry", ours)
	}
	if out := run(ours...); strings.Contains(out, "ignored") {
		t.Errorf("dendrite refused outpostd's settings:\n%s", out)
	}
	out := run("DENDRITE_JETSTREAM_BLOCK_SIZE=5", "DENDRITE_JETSTREAM_CACHE_EXPIRE=1h")
	for _, want := range []string{`DENDRITE_JETSTREAM_BLOCK_SIZE="5" ignored`, `DENDRITE_JETSTREAM_CACHE_EXPIRE="1h" ignored`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q from a dendrite without our nats-server patch? output:\n%s", want, out)
		}
	}
}
