//go:build tools

// Package dendrite records the Dendrite version Outpost builds (see go.mod); the Makefile runs
// `go build github.com/element-hq/dendrite/cmd/dendrite` from this directory.
package dendrite

import _ "github.com/element-hq/dendrite/cmd/dendrite"
