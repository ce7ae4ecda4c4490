// Package web holds the browser-facing files the gateway serves: the chat client at /, and
// Outpost's own pages: the setup wizard, the admin console and the invitation page. All of
// it is embedded in outpostd; nothing is fetched from anywhere else.
package web

import (
	"embed"
	"errors"
	"io/fs"
)

//go:embed static setup admin invite
var files embed.FS

// element is Element Web as `make web` built it (web/element/build.mjs). Before that, the
// directory holds only its placeholder and / explains how to build Element.
//
//go:embed all:element/dist
var element embed.FS

func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the directories are embedded at build time
	}
	return s
}

// Static is the tree served at /: Element Web when it was built, laid over Outpost's own
// files (the shared stylesheet and script, and the page that explains how to build Element).
func Static() fs.FS {
	own := sub(files, "static")
	if !ElementBuilt() {
		return own
	}
	return overlay{sub(element, "element/dist"), own}
}

// ElementBuilt says whether this binary carries Element Web.
func ElementBuilt() bool {
	_, err := fs.Stat(element, "element/dist/index.html")
	if err != nil {
		_, err = fs.Stat(element, "element/dist/index.html.gz")
	}
	return err == nil
}

// Setup is the setup wizard, served at /setup/.
func Setup() fs.FS { return sub(files, "setup") }

// Admin is the admin console, served at /admin/.
func Admin() fs.FS { return sub(files, "admin") }

// Invite is the invitation page, served at /invite/.
func Invite() fs.FS { return sub(files, "invite") }

// overlay opens a name in top first, then in bottom. A file top keeps only compressed
// (name.gz) hides bottom's file of the same name: Element's index.html replaces ours.
type overlay struct{ top, bottom fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	f, err := o.top.Open(name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if _, zerr := fs.Stat(o.top, name+".gz"); zerr == nil {
		return nil, err
	}
	return o.bottom.Open(name)
}
