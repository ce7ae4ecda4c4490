#!/usr/bin/env bash
# patched-source.sh OUTDIR: prepares patched copies of the modules in Dendrite's build that
# we patch, and prints one go.mod replace directive per module ("replace MOD => DIR").
# firmware/dendrite/patches/MODULE/*.patch are applied, in name order, to a copy of the
# version of MODULE that firmware/dendrite/go.mod pins (from the module cache). A copy is
# named after its patches' hash, so a changed patch makes a new one; an interrupted run
# leaves only a .tmp directory that the next run replaces.
# `make dendrite` and firmware/build-image.sh build through it.
# GO names the go command (default: go).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: patched-source.sh OUTDIR}
command -v patch >/dev/null || { echo "patched-source.sh: 'patch' is missing (apt-get install patch)" >&2; exit 1; }
mkdir -p "$out"
keep=()
for mod in $(cd "$here/patches" && find . -name '*.patch' -printf '%h\n' | sed 's#^\./##' | sort -u); do
	src=$(cd "$here" && "${GO:-go}" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -d "$src" ] || { echo "patched-source.sh: no module source for $mod" >&2; exit 1; }
	stamp=$(cat "$here/patches/$mod"/*.patch | sha256sum | cut -c1-12)
	dst="$out/patched-$(basename "$src")-$stamp" # basename: NAME@VERSION
	keep+=("$(basename "$dst")")
	if [ ! -f "$dst/.outpost-patched" ]; then
		rm -rf "$dst" "$dst.tmp"
		cp -r "$src" "$dst.tmp"
		chmod -R u+w "$dst.tmp"
		for p in "$here/patches/$mod"/*.patch; do
			patch -d "$dst.tmp" -p1 --forward --silent < "$p" >&2
		done
		touch "$dst.tmp/.outpost-patched"
		mv "$dst.tmp" "$dst"
	fi
	echo "replace $mod => $dst"
done
# Copies made for earlier versions of the patches are of no further use.
for old in "$out"/patched-* "$out"/dendrite-src-*; do
	[ -e "$old" ] || continue
	case " ${keep[*]} " in *" $(basename "$old") "*) ;; *) rm -rf "$old" ;; esac
done
