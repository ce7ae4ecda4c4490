package homeserver

import (
	"slices"
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
