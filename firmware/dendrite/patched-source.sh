#!/usr/bin/env bash
# patched-source.sh OUTDIR: prints a directory with the pinned Dendrite source (the version
# firmware/dendrite/go.mod requires, from the module cache) and firmware/dendrite/patches/*
# applied. The directory is named after the patches' hash, so a changed patch makes a new
# one; an interrupted run leaves only a .tmp directory that the next run replaces.
# `make dendrite` and firmware/build-image.sh build through it (a replace directive).
# GO names the go command (default: go).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: patched-source.sh OUTDIR}
command -v patch >/dev/null || { echo "patched-source.sh: 'patch' is missing (apt-get install patch)" >&2; exit 1; }
src=$(cd "$here" && "${GO:-go}" mod download -json github.com/element-hq/dendrite | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
[ -d "$src" ] || { echo "patched-source.sh: no module source for github.com/element-hq/dendrite" >&2; exit 1; }
stamp=$(cat "$here"/patches/*.patch | sha256sum | cut -c1-12)
dst="$out/dendrite-src-$(basename "$src")-$stamp"
if [ ! -f "$dst/.outpost-patched" ]; then
	rm -rf "$dst" "$dst.tmp"
	mkdir -p "$out"
	cp -r "$src" "$dst.tmp"
	chmod -R u+w "$dst.tmp"
	for p in "$here"/patches/*.patch; do
		patch -d "$dst.tmp" -p1 --forward --silent < "$p" >&2
	done
	touch "$dst.tmp/.outpost-patched"
	mv "$dst.tmp" "$dst"
	# Copies made for earlier versions of the patches are of no further use.
	find "$out" -maxdepth 1 -name 'dendrite-src-*' ! -name "$(basename "$dst")" -exec rm -rf {} +
fi
echo "$dst"
