#!/usr/bin/env bash
# Builds the ready-to-flash Outpost image for one architecture (called by `make image`).
#
#   firmware/build-image.sh ARCH OUTDIR VERSION
#
# 1. Assembles a gokrazy instance under OUTDIR/instance/ARCH from firmware/ARCH (config.json
#    and the pinned builddir go.mod files), plus two generated builddirs: outpostd from this
#    working tree (a replace directive, the appliance's own go.sum) and dendrite from the pin
#    in firmware/dendrite/go.mod (so that pin stays the only one).
# 2. Runs the pinned gok (firmware/tools/go.mod) to write OUTDIR/outpost-ARCH.img.
# 3. Formats the /perm partition as ext4 inside the image: gokrazy mounts /perm but never
#    creates a file system on it, and without one the box would have no writable state.
# 4. Checks the image (firmware/cmd/outpost-imagecheck): the root file system must fit its
#    partition (gokrazy writes past a 500 MiB partition without a word) and /perm must be ext4.
set -euo pipefail

arch=${1:?usage: build-image.sh ARCH OUTDIR VERSION}
out=${2:?usage: build-image.sh ARCH OUTDIR VERSION}
version=${3:-dev}
root=$(cd "$(dirname "$0")/.." && pwd)
case "$arch" in amd64|arm64) ;; *) echo "build-image.sh: ARCH must be amd64 or arm64, not $arch" >&2; exit 2 ;; esac

# The image file is 1280 MiB: gokrazy's fixed layout (100 MiB boot, 2 x 500 MiB root) plus a
# small /perm that outpostd grows to the whole device on first boot (appliance/permgrow).
image_bytes=${OUTPOST_IMAGE_BYTES:-1342177280}

mkdir -p "$out"
out=$(cd "$out" && pwd)
parent="$out/instance"
inst="$parent/$arch"
img="$out/outpost-$arch.img"

command -v mkfs.ext4 >/dev/null || { echo "build-image.sh: mkfs.ext4 missing: apt-get install e2fsprogs" >&2; exit 1; }

rm -rf "$inst"
mkdir -p "$inst"
cp -r "$root/firmware/$arch/builddir" "$inst/builddir"
sed "s/@VERSION@/$version/g" "$root/firmware/$arch/config.json" > "$inst/config.json"
# A company provisioning key pinned in the image (make image PROVISION_KEY=company.key.pub):
# outpostd then refuses unsigned manifests. The key is one line of base64, safe in JSON.
if [ -n "${OUTPOST_PROVISION_KEY:-}" ]; then
	key=$(tr -d '\r\n' < "$OUTPOST_PROVISION_KEY")
	case "$key" in "outpost-provisioning-ed25519 "*) ;; *) echo "build-image.sh: $OUTPOST_PROVISION_KEY is not an Outpost provisioning public key (outpost provision keygen)" >&2; exit 1 ;; esac
	sed -i "s|\"ExtraFileContents\": {}|\"ExtraFileContents\": {\"/etc/outpost/provisioning.pub\": \"$key\"}|" "$inst/config.json"
	grep -q provisioning.pub "$inst/config.json" || { echo "build-image.sh: could not pin the provisioning key" >&2; exit 1; }
	echo "build-image.sh: provisioning key $OUTPOST_PROVISION_KEY pinned in the image"
fi

# outpostd: this working tree, with the appliance's own module graph.
ob="$inst/builddir/github.com/outpost-im/outpost"
mkdir -p "$ob"
cat > "$ob/go.mod" <<EOF
module gokrazy/build/outpost

go 1.26

require github.com/outpost-im/outpost v0.0.0-00010101000000-000000000000

replace github.com/outpost-im/outpost => $root
EOF
cp "$root/go.sum" "$ob/go.sum"

# dendrite: exactly the pinned module graph of firmware/dendrite, with our patches
# (firmware/dendrite/patches/MODULE) applied to copies of those modules, as `make dendrite` builds it.
db="$inst/builddir/github.com/element-hq/dendrite"
mkdir -p "$db"
replace=$("$root/firmware/dendrite/patched-source.sh" "$root/build")
{ sed 's#^module .*#module gokrazy/build/dendrite#' "$root/firmware/dendrite/go.mod"; echo; echo "$replace"; } > "$db/go.mod"
cp "$root/firmware/dendrite/go.sum" "$db/go.sum"


gok() { (cd "$root/firmware/tools" && go tool gok "$@"); }

rm -f "$img"
echo "build-image.sh: building $img ($arch, version $version)"
start=$(date +%s)
# gok builds from the instance directory; GOARCH comes from config.json's Environment.
(cd "$inst" && gok --parent_dir "$parent" -i "$arch" overwrite --full "$img" --target_storage_bytes "$image_bytes")

# /perm starts 1100 MiB after the first partition (gokrazy's layout); the offset and size
# come from the partition table gok just wrote, not from assumptions.
read -r perm_off perm_bytes < <(cd "$root" && go run ./firmware/cmd/outpost-imagecheck -perm-extent "$img")
# 4 KiB blocks (the default for a 180 MiB file system would be 1 KiB, which online growth to
# a large disk handles badly); no reserved blocks (everything on the box runs as root anyway).
# Zero-touch provisioning (make image PROVISION=manifest.json): the manifest and its
# signature are written into /perm as the file system is made (mkfs.ext4 -d), where outpostd
# looks at first boot (docs/provisioning.md). Not the FAT boot partition: gokrazy sizes that
# file system to its content (0 bytes free, 16 root directory slots).
seed=()
if [ -n "${OUTPOST_PROVISION:-}" ]; then
	(cd "$root" && go run ./cmd/outpost provision check "$OUTPOST_PROVISION") || { echo "build-image.sh: $OUTPOST_PROVISION is not a valid manifest" >&2; exit 1; }
	permseed="$out/permseed-$arch"
	rm -rf "$permseed"
	mkdir -p "$permseed"
	install -m 0600 "$OUTPOST_PROVISION" "$permseed/outpost-provision.json"
	if [ -f "$OUTPOST_PROVISION.sig" ]; then
		install -m 0600 "$OUTPOST_PROVISION.sig" "$permseed/outpost-provision.json.sig"
	fi
	seed=(-d "$permseed")
	echo "build-image.sh: provisioning manifest $OUTPOST_PROVISION goes into /perm"
fi
mkfs.ext4 -q -F -L outpost-perm -b 4096 -m 0 -E "offset=$perm_off" "${seed[@]}" "$img" "$((perm_bytes / 1024))k"
if [ -n "${permseed:-}" ]; then rm -rf "$permseed"; fi

(cd "$root" && go run ./firmware/cmd/outpost-imagecheck "$img")
echo "build-image.sh: $img ready in $(( $(date +%s) - start ))s"
