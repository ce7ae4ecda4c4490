// Package version names this build of Outpost.
package version

import "runtime/debug"

// Version is set at link time by the Makefile (-X .../version.Version=...).
var Version = ""

// String returns the build's version: the linker-set value, else the module version, else
// the VCS revision, else "dev".
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}
