// Package web holds the browser-facing files the gateway serves: the chat client at /, and
// Outpost's own pages: the setup wizard, the admin console and the invitation page. All of
// it is embedded in outpostd; nothing is fetched from anywhere else.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static setup admin invite
var files embed.FS

func sub(dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the directories are embedded at build time
	}
	return s
}

// Static is the tree served at / (with the shared stylesheet and script).
func Static() fs.FS { return sub("static") }

// Setup is the setup wizard, served at /setup/.
func Setup() fs.FS { return sub("setup") }

// Admin is the admin console, served at /admin/.
func Admin() fs.FS { return sub("admin") }

// Invite is the invitation page, served at /invite/.
func Invite() fs.FS { return sub("invite") }
