// Package web holds the browser-facing files the gateway serves: the chat client at / and,
// later, the setup wizard and admin console assets.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static is the tree served at /.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}
