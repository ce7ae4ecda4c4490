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

.PHONY: all build run test test-go test-browser lint dendrite clean bench-turn

all: build

build: $(BIN)/outpostd $(BIN)/outpost $(BIN)/dendrite

# Our binaries are cheap to rebuild (Go's cache decides), so always ask go.
$(BIN)/outpostd $(BIN)/outpost: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$(notdir $@)

# Dendrite is pinned in firmware/dendrite/go.mod (its own module and go.sum) and takes
# minutes to build, so rebuild only when the pin changes.
$(BIN)/dendrite: firmware/dendrite/go.mod firmware/dendrite/go.sum
	cd firmware/dendrite && $(GO) build -trimpath -ldflags '-s -w' -o $@ github.com/element-hq/dendrite/cmd/dendrite

dendrite: $(BIN)/dendrite

# Run Outpost on this machine: no root, state in ./var, gateway on 127.0.0.1:8080.
run: build
	$(BIN)/outpostd -data $(DATA) -http $(HTTP) -dendrite $(BIN)/dendrite

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every test tier. Integration tests get the real dendrite and must not skip.
test: lint test-go test-browser

test-go: $(BIN)/dendrite
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

# TURN relay vs coturn, same client and load, alternating rounds (needs root and coturn).
bench-turn:
	$(GO) build -o $(BIN)/outpost-turnbench ./cmd/outpost-turnbench
	$(BIN)/outpost-turnbench -sessions 40 -messages 1000 -size 1000 -rounds 3 -doc docs/turn-bench.md

clean:
	rm -rf $(BIN)

FORCE:
