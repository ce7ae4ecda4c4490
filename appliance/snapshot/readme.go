package snapshot

import (
	"crypto/ed25519"
	"strings"
)

// Readme is README-RESTORE.txt: the recipe for restoring a snapshot by hand, with nothing but
// Debian's age, zstd, tar and sha256sum. It is plaintext at the target root on purpose — the
// person who needs it may have nothing else. The recipe is executed literally by the tests.
func Readme(keys Keys) string {
	return strings.ReplaceAll(readmeText, "{{FINGERPRINT}}", Fingerprint(keys.Signing.Public().(ed25519.PublicKey)))
}

const readmeText = `OUTPOST SNAPSHOTS - HOW TO RESTORE BY HAND
==========================================

This directory holds encrypted snapshots of an Outpost messaging box: its chat
history, accounts, settings, keys and media. Everything except this file, the
checksum lists and the public signing key is encrypted with age
(https://age-encryption.org) to the box's own key and to the operator's
recovery key.

The easy way: on a new Outpost box choose "Restore from a snapshot" in the setup
page, or run "outpost restore". This file is for when no Outpost is at hand.

You need
--------
- a Linux machine with the stock tools:   apt-get install age zstd tar coreutils
- the recovery key from the recovery sheet (the line AGE-SECRET-KEY-1...),
  saved in a file, here called recovery.txt (keep it secret, delete it after)

Run every command below from this directory (the one holding this file).

1. Check the files on this target (no key needed)
   Snapshot IDs sort by time (UTC); the newest is the last one listed:

     ls snapshots/
     ID=<the snapshot ID you want>
     sha256sum -c snapshots/$ID/SHA256SUMS

   Every line must say OK. A snapshot without manifest.json.age is incomplete:
   pick an older one.

2. Unpack the databases, keys and settings

     mkdir restored
     age -d -i recovery.txt snapshots/$ID/state.tar.zst.age | zstd -d | tar -x -C restored

3. Decrypt the media files (pictures, files, voice messages)

     grep -v '^#' restored/outpost-restore/MEDIA-INDEX.txt | while read -r obj path; do
       mkdir -p "restored/$(dirname "$path")"
       age -d -i recovery.txt -o "restored/$path" "$obj"
     done

4. Check every restored file against the snapshot's own checksums

     (cd restored && sha256sum -c outpost-restore/SHA256SUMS)

   Every line must say OK.

5. Optional: check that the snapshot was written by the box
   The manifest is signed with the box's Ed25519 key, published in
   keys/manifest-signing.pub; its fingerprint is on the recovery sheet:
   {{FINGERPRINT}}

     age -d -i recovery.txt snapshots/$ID/manifest.json.age > manifest.json
     openssl pkeyutl -verify -pubin -inkey keys/manifest-signing.pub -rawin \
       -in manifest.json -sigfile snapshots/$ID/manifest.sig

What you get in restored/
-------------------------
  settings.db                Outpost's settings (SQLite)
  credentials.key            the key that protects stored target passwords
  tls/                       the box's certificate authority and certificates
  homeserver/matrix_key.pem  the Matrix homeserver's signing key
  homeserver/db/*.db         the homeserver's databases (SQLite, one per part)
  homeserver/jetstream/      its internal queue at the moment of the snapshot
  homeserver/media/          media files
  outpost-restore/           these instructions' lists and a homeserver config

To run it again: give restored/ to a new Outpost as its data directory
(outpostd -data restored), or start the bundled homeserver, Dendrite, directly:

     cd restored/homeserver && dendrite --config ../outpost-restore/dendrite.yaml \
       --http-bind-address 127.0.0.1:8008

(it then answers on http://127.0.0.1:8008 on that machine only).

Clients that used end-to-end encryption should sign in again if messages cannot
be decrypted; Outpost's own restore takes care of this automatically.
`
