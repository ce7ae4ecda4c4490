// Package platform tells the gokrazy appliance from a laptop and supplies the defaults that
// differ between them.
package platform

import (
	"os"
	"os/exec"
	"path/filepath"
)

// OnGokrazy reports whether we run as a gokrazy appliance (its init lives at /gokrazy/init).
func OnGokrazy() bool {
	_, err := os.Stat("/gokrazy/init")
	return err == nil
}

// DefaultDataDir is where the appliance keeps its state: the persistent partition on the
// box, ./var in the working directory on a laptop.
func DefaultDataDir() string {
	if OnGokrazy() {
		return "/perm/outpost"
	}
	return "var"
}

// DefaultHTTPAddr is where the gateway listens.
func DefaultHTTPAddr() string {
	if OnGokrazy() {
		return ":80"
	}
	return "127.0.0.1:8080"
}

// DefaultDendrite finds the dendrite binary: beside our own executable (the image and
// `make run` put it there), else on PATH.
func DefaultDendrite() string {
	if OnGokrazy() {
		return "/user/dendrite"
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "dendrite")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("dendrite"); err == nil {
		return p
	}
	return "dendrite"
}
