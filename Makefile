# Outpost build and test entry points. `make run` and `make test` are the README's two
# commands; everything they need is built here from pinned sources.

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/outpost-im/outpost/appliance/version.Version=$(VERSION)
# Pure Go everywhere: the image has no C library, and the laptop build should match it.
export CGO_ENABLED := 0

DATA      ?= $(CURDIR)/var
HTTP      ?= 127.0.0.1:8080

WEBTESTS  := web/tests
ELEMENT   := web/element
# Element is rebuilt only when its sources, pins or patches change (a build takes ~1 minute).
ELEMENT_SRC := $(shell find $(ELEMENT)/src $(ELEMENT)/patches -type f 2>/dev/null) \
	$(ELEMENT)/index.html $(ELEMENT)/build.mjs $(ELEMENT)/svg.mjs $(ELEMENT)/package.json $(ELEMENT)/package-lock.json

.PHONY: bench load bench-snapshot
.PHONY: all build run test test-go test-browser test-element-cves web lint dendrite clean bench-turn

all: build

build: $(BIN)/outpostd $(BIN)/outpost $(BIN)/dendrite

# Element Web from the npm registry, compiled by our shell (web/element/build.mjs) into
# web/element/dist, which outpostd embeds. Without it, / explains how to build Element.
$(ELEMENT)/node_modules/.installed: $(ELEMENT)/package.json $(ELEMENT)/package-lock.json $(wildcard $(ELEMENT)/patches/*.patch)
	cd $(ELEMENT) && npm ci --no-audit --no-fund
	touch $@

$(ELEMENT)/dist/.built: $(ELEMENT)/node_modules/.installed $(ELEMENT_SRC)
	cd $(ELEMENT) && node build.mjs
	touch $@

web: $(ELEMENT)/dist/.built

# Tests of the security patches applied to the Element SDKs and of our build shell.
test-element-cves: $(ELEMENT)/node_modules/.installed
	cd $(ELEMENT) && node --test test/

# Our binaries are cheap to rebuild (Go's cache decides), so always ask go. outpostd embeds
# the Element build.
$(BIN)/outpostd: $(ELEMENT)/dist/.built
$(BIN)/outpostd $(BIN)/outpost: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$(notdir $@)

# Dendrite is pinned in firmware/dendrite/go.mod (its own module and go.sum), built with our
# patches (firmware/dendrite/patches/MODULE, each module applied to a copy under build/) through
# a generated modfile with one replace directive per patched module. It takes minutes, so rebuild only when pin or patches change.
BUILD        := $(CURDIR)/build
DENDRITE_SRC := firmware/dendrite/go.mod firmware/dendrite/go.sum firmware/dendrite/patched-source.sh $(shell find firmware/dendrite/patches -name '*.patch')
$(BIN)/dendrite: $(DENDRITE_SRC)
	replace=$$(GO=$(GO) firmware/dendrite/patched-source.sh $(BUILD)) && \
	{ cat firmware/dendrite/go.mod; echo; echo "$$replace"; } > $(BUILD)/dendrite.mod && \
	cp firmware/dendrite/go.sum $(BUILD)/dendrite.sum && \
	cd firmware/dendrite && $(GO) build -modfile=$(BUILD)/dendrite.mod -trimpath -ldflags '-s -w' -o $@ github.com/element-hq/dendrite/cmd/dendrite

dendrite: $(BIN)/dendrite

# Run Outpost on this machine: no root, state in ./var, gateway on 127.0.0.1:8080.
run: build
	$(BIN)/outpostd -data $(DATA) -http $(HTTP) -dendrite $(BIN)/dendrite

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every test tier. Integration tests get the real dendrite and must not skip.
test: lint test-element-cves test-go test-browser test-image

test-go: $(BIN)/dendrite $(ELEMENT)/dist/.built
	OUTPOST_DENDRITE=$(BIN)/dendrite OUTPOST_REQUIRE_DENDRITE=1 \
		$(GO) test -count=1 -timeout 40m ./...

# Browser tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core, against a
# real outpostd and dendrite. Screenshots land in test-artifacts/browser/.
$(WEBTESTS)/node_modules/.installed: $(WEBTESTS)/package.json $(WEBTESTS)/package-lock.json
	cd $(WEBTESTS) && npm ci --no-audit --no-fund
	touch $@

test-browser: build $(WEBTESTS)/node_modules/.installed
	@test -x /usr/bin/chromium || { echo "browser tests need Debian's chromium: apt-get install chromium"; exit 1; }
	cd $(WEBTESTS) && OUTPOST_BIN=$(BIN) node --test --test-concurrency=1 --test-timeout=600000

# Load benchmarks are not part of make test (they take ~15 min and measure wall-clock time);
# test-go smoke-tests the harness. Report: docs/benchmarks.md (between its markers); full
# JSON and CPU profile: test-artifacts/bench/.
BENCH_LEVELS ?= 2:30s,20:30s,100:20s,20:30s@8
BENCH_ROUNDS ?= 2

$(BIN)/dendrite-generate-config: firmware/dendrite/go.mod firmware/dendrite/go.sum
	cd firmware/dendrite && $(GO) build -trimpath -ldflags '-s -w' -o $@ github.com/element-hq/dendrite/cmd/generate-config

$(BIN)/outpost-load $(BIN)/outpost-bench: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$(notdir $@)

bench: build $(BIN)/dendrite-generate-config $(BIN)/outpost-bench
	$(BIN)/outpost-bench -bin $(BIN) -go $(GO) -levels $(BENCH_LEVELS) -rounds $(BENCH_ROUNDS) \
		-direct-users 20 -out docs/benchmarks.md -json test-artifacts/bench/bench.json \
		-profile-dir test-artifacts/bench -command "make bench"

# Snapshot pause at ~1 GB of homeserver state under a sending client (docs/snapshot-bench.md).
SNAP_RUNS ?= 12
SNAP_STATE_MB ?= 1024
bench-snapshot: $(BIN)/dendrite
	OUTPOST_DENDRITE=$(BIN)/dendrite OUTPOST_BENCH_SNAPSHOT=$(SNAP_RUNS) OUTPOST_BENCH_STATE_MB=$(SNAP_STATE_MB) \
		OUTPOST_BENCH_OUT=$(CURDIR)/docs/snapshot-bench.md \
		$(GO) test -count=1 -timeout 60m -v -run TestSnapshotPauseBench ./appliance/e2e/

load: build $(BIN)/outpost-load
	$(BIN)/outpost-load -start outpost -bin $(BIN) -users $(or $(USERS),20)

# TURN relay vs coturn, same client and load, alternating rounds (needs root and coturn).
bench-turn:
	$(GO) build -o $(BIN)/outpost-turnbench ./cmd/outpost-turnbench
	$(BIN)/outpost-turnbench -sessions 40 -messages 1000 -size 1000 -rounds 3 -doc docs/turn-bench.md

clean:
	rm -rf $(BIN)

FORCE:

# ---- appliance image (issue #8): image, test-image, flash ---------------------------------
# `make image ARCH=amd64|arm64` builds out/image/outpost-$(ARCH).img (gokrazy, pinned in
# firmware/), formats its /perm and fails when the root file system overflows its partition.
# `make test-image` builds both images and boots the amd64 one in QEMU (firmware/imagetest).
# `make flash DEVICE=/dev/sdX` writes the image to a removable disk after a confirmation.
ARCH      ?= amd64
IMAGE_DIR := $(CURDIR)/out/image
IMAGE     := $(IMAGE_DIR)/outpost-$(ARCH).img

.PHONY: image test-image flash

# PROVISION=manifest.json bakes a provisioning manifest (and its .sig) into the image;
# PROVISION_KEY=company.key.pub pins the company key, so only signed manifests are applied.
image: $(ELEMENT)/dist/.built
	OUTPOST_PROVISION=$(if $(PROVISION),$(abspath $(PROVISION))) OUTPOST_PROVISION_KEY=$(if $(PROVISION_KEY),$(abspath $(PROVISION_KEY))) \
		firmware/build-image.sh $(ARCH) $(IMAGE_DIR) $(VERSION)

test-image: $(ELEMENT)/dist/.built
	firmware/build-image.sh arm64 $(IMAGE_DIR) $(VERSION)
	firmware/build-image.sh amd64 $(IMAGE_DIR) $(VERSION)
	OUTPOST_IMAGE=$(IMAGE_DIR)/outpost-amd64.img OUTPOST_REQUIRE_IMAGE=1 \
		$(GO) test -count=1 -timeout 40m -v -run 'TestImageInQEMU|TestProvisionedImageInQEMU' ./firmware/imagetest

flash:
	@test -n "$(DEVICE)" || { echo "usage: make flash DEVICE=/dev/sdX [ARCH=amd64|arm64]"; exit 2; }
	@test -f $(IMAGE) || { echo "$(IMAGE) is missing: run make image ARCH=$(ARCH) first"; exit 2; }
	$(GO) run ./firmware/cmd/outpost-flash -image $(IMAGE) -device $(DEVICE)
