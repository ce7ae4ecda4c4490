package snapshot

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Format is the manifest's format tag. A reader refuses formats it does not know.
const Format = "outpost-snapshot/1"

// Layout of a target root (see docs/snapshot-format.md):
//
//	README-RESTORE.txt                   the recipe for a restore by hand (plaintext)
//	keys/manifest-signing.pub            public key the manifests are signed with (PEM)
//	snapshots/<id>/state.tar.zst.age     databases, keys and settings
//	snapshots/<id>/SHA256SUMS            ciphertext checksums of everything the snapshot uses
//	snapshots/<id>/manifest.sig          Ed25519 signature of the decrypted manifest
//	snapshots/<id>/manifest.json.age     the manifest; written last, so it marks completion
//	objects/<xx>/<hmac>.age              media files, one age file each, write-once
const (
	ReadmeName     = "README-RESTORE.txt"
	SigningKeyName = "keys/manifest-signing.pub"
	snapshotsDir   = "snapshots"
	objectsDir     = "objects"
)

func statePath(id string) string    { return snapshotsDir + "/" + id + "/state.tar.zst.age" }
func sumsPath(id string) string     { return snapshotsDir + "/" + id + "/SHA256SUMS" }
func sigPath(id string) string      { return snapshotsDir + "/" + id + "/manifest.sig" }
func manifestPath(id string) string { return snapshotsDir + "/" + id + "/manifest.json.age" }

// Manifest describes one snapshot. It is encrypted like everything else (media paths and
// sizes say something about a conversation) and signed with the box's key.
type Manifest struct {
	Format     string    `json:"format"`
	ID         string    `json:"id"`
	Created    time.Time `json:"created"`
	ServerName string    `json:"server_name"`
	Outpost    string    `json:"outpost_version"`
	// Reason says why it was taken: "scheduled", "manual", "before-restore", "before-update".
	Reason string `json:"reason"`
	// PauseMillis is how long the homeserver was frozen for the consistent cut.
	PauseMillis float64 `json:"pause_ms"`
	State       State   `json:"state"`
	Media       []Media `json:"media"`
}

// State is the encrypted state archive.
type State struct {
	Object string `json:"object"` // path on the target
	Size   int64  `json:"size"`   // ciphertext size
	SHA256 string `json:"sha256"` // ciphertext SHA-256
	Files  []File `json:"files"`  // what the archive holds (plaintext)
}

// File is one file inside the state archive, relative to the data directory.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Media is one media file and the object that holds it.
type Media struct {
	Path         string `json:"path"` // relative to the data directory
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"` // plaintext
	Object       string `json:"object"`
	ObjectSize   int64  `json:"object_size"`
	ObjectSHA256 string `json:"object_sha256"` // ciphertext
	// ModTime (ns) lets the next snapshot skip re-reading an unchanged file.
	ModTime int64 `json:"mtime_ns"`
}

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

// newID names a snapshot: sortable by time, unique even for two in the same second.
func newID(t time.Time) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// ParseID checks a snapshot ID and returns the time it encodes.
func ParseID(id string) (time.Time, error) {
	if !idPattern.MatchString(id) {
		return time.Time{}, fmt.Errorf("%q is not a snapshot ID (expected e.g. 20261123T021500Z-a1b2c3; see `outpost snapshot list`)", id)
	}
	return time.Parse("20060102T150405Z", strings.SplitN(id, "-", 2)[0])
}

func (m *Manifest) check(id string) error {
	if m.Format != Format {
		return fmt.Errorf("snapshot %s has format %q; this Outpost reads %q (use a newer Outpost to restore it)", id, m.Format, Format)
	}
	if m.ID != id {
		return fmt.Errorf("snapshot %s: its manifest names snapshot %q (a manifest was copied or renamed)", id, m.ID)
	}
	if m.State.Object != statePath(id) {
		return fmt.Errorf("snapshot %s: manifest points at %q", id, m.State.Object)
	}
	for _, f := range m.State.Files {
		if err := checkRelPath(f.Path); err != nil {
			return fmt.Errorf("snapshot %s: %w", id, err)
		}
	}
	for _, md := range m.Media {
		if err := checkRelPath(md.Path); err != nil {
			return fmt.Errorf("snapshot %s: %w", id, err)
		}
		if !strings.HasPrefix(md.Object, objectsDir+"/") || strings.Contains(md.Object, "..") {
			return fmt.Errorf("snapshot %s: bad object name %q", id, md.Object)
		}
	}
	return nil
}

// checkRelPath refuses paths that would escape the directory a restore writes into.
func checkRelPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return fmt.Errorf("unsafe path %q in manifest", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("unsafe path %q in manifest", p)
		}
	}
	return nil
}
