# rarp-replay. `make demo` runs the demo, `make test` the tests, as root;
# both install what a fresh Debian machine lacks first.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
DEBS = libpcap-dev tcpdump iproute2 frr jq iputils-ping util-linux systemd user-mode-linux kmod lintian dpkg-dev

# Inputs per fuzz target (a count, not a duration: Go 1.26's fuzz
# coordinator can fail a duration-bounded run at its deadline with "context
# deadline exceeded" and no crasher, golang/go#75804, fixed in Go 1.27).
# 30,000 inputs take 1 to 6 s per target here.
FUZZTIME ?= 30000x
FUZZ = FuzzDecode:./internal/packet FuzzRoundTrip:./internal/packet FuzzDecodeBridgePort:./internal/link FuzzIPRoute2:./internal/link FuzzReplyMatching:./internal/engine \
	FuzzReplayCapture:./replay FuzzLoadNeighbors:./replay FuzzLoadDumps:./replay \
	FuzzStateLoad:./neigh

VERSION ?= $(shell git describe --tags --always 2>/dev/null | sed 's/^v//; s/^\([0-9a-f]\{7,\}\)$$/0.0.0+g\1/' || echo 0.0.0)
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)

.PHONY: all build deps test test-unit test-uml test-layouts test-evpn-vlan compat-table promtool docs fuzz soak pcaps demo demo-local deb bench bench-fabric clean

all: build

build:
	$(GO) build -o bin/rarp-replay -ldflags "-X github.com/rarp-replay/rarp-replay/internal/version.version=$(VERSION) \
		-X github.com/rarp-replay/rarp-replay/internal/version.commit=$$(git rev-parse HEAD 2>/dev/null)" ./cmd/rarp-replay

# Installs the Debian packages the build and the tests need, if missing.
deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Every test, as root: unit, golden and namespace tests, the layout matrix
# and the kernel model in user-mode Linux, the FRR EVPN end-to-end tests
# (ordinary bridges on this kernel, a VLAN-aware bridge with symmetric IRB in
# UML), README's compatibility table regenerated from this run, the .deb
# (lintian, install, upgrade, remove, purge with and without systemd,
# systemd-analyze verify), then each fuzz target briefly.
# RARP_REPLAY_REQUIRE_ROOT makes a namespace test fail, not skip, when it
# cannot run.
COMPAT = $(CURDIR)/build/compat
test: deps build promtool
	rm -rf $(COMPAT) && mkdir -p $(COMPAT)
	PATH=$(PROMTOOL_DIR):$$PATH RARP_REPLAY_COMPAT_DIR=$(COMPAT) RARP_REPLAY_REQUIRE_ROOT=1 $(GO) test -race -count=1 ./...
	$(MAKE) test-uml
	RARP_REPLAY_COMPAT_DIR=$(COMPAT) RARP_REPLAY=bin/rarp-replay scripts/lab/e2e.sh
	$(MAKE) test-evpn-vlan
	$(MAKE) compat-table
	$(MAKE) deb
	GO=$(GO) packaging/test-deb.sh
	$(MAKE) fuzz

# promtool, for the alert rules' test (internal/metrics), taken out of
# Debian's prometheus package without installing it (installing would start
# a Prometheus server).
PROMTOOL_DIR = $(CURDIR)/build/tools/usr/bin
promtool: $(PROMTOOL_DIR)/promtool
$(PROMTOOL_DIR)/promtool:
	rm -rf build/tools && mkdir -p build/tools
	cd build/tools && apt-get download -q prometheus 2>&1 | tail -n 1 && dpkg-deb -x prometheus_*.deb . && rm prometheus_*.deb
	test -x $@

# Runs every fuzz target for FUZZTIME. A finding is written under the
# package's testdata/fuzz and fails the run; commit it as a corpus entry.
# The minimizer is capped: it spends up to 60 s per new input by default,
# which on FuzzIPRoute2's 4 KB seeds looked like a stall.
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $${t#*:}; \
	done

# The tests that need kernel features the host may lack, inside user-mode
# Linux (Debian's kernel 6.1: vlan devices, bridge VLAN filtering, VRF,
# bond, dummy, VXLAN vnifilter): the kernel model and overflow tests again,
# the ordinary-bridge namespace tests, and the live layout matrix
# (TestLayouts: Cumulus- and SONiC-style VLAN-aware leaves, a bond trunk, a
# port created 10 ms before its RARP, a single VXLAN device). Without
# linux.uml it fails with one line naming the package (scripts/uml/run.sh).
# Then the live capture handles (capture/pcapio) on that kernel too: the
# any-device handle's filter switch reads libpcap's programs back from the
# kernel (SO_GET_FILTER).
UML_TESTS ?= ^(TestKernelModel|TestNetlinkOverflow|TestListen|TestListenAnycastMacvlan|TestListenReassert|TestLayouts)$$
MODEL_STEPS ?= 300
test-uml: build
	mkdir -p build $(COMPAT)
	$(GO) test -c -o build/rr-cmd.test ./cmd/rarp-replay
	scripts/uml/run.sh -q --rw $(COMPAT) -e RARP_REPLAY_UML=1 -e RARP_REPLAY_BIN=$(CURDIR)/bin/rarp-replay \
		-e RARP_REPLAY_COMPAT_DIR=$(COMPAT) -e RARP_REPLAY_REQUIRE_ROOT=1 -- \
		sh -c 'cd cmd/rarp-replay && ../../build/rr-cmd.test -test.v -model.steps $(MODEL_STEPS) -test.run "$(UML_TESTS)"'
	$(GO) test -c -o build/rr-pcapio.test ./capture/pcapio
	scripts/uml/run.sh -q -e RARP_REPLAY_REQUIRE_ROOT=1 -- \
		sh -c 'cd capture/pcapio && ../../build/rr-pcapio.test -test.v'

# FRR EVPN end to end on a Cumulus-style VLAN-aware bridge with symmetric
# IRB, both migration orders, without and with the daemon, in user-mode Linux
# (scripts/lab/e2e-vlan.sh; about 2 minutes). UML runs at a raised priority:
# the 10 ms check is sensitive to the guest's single CPU being starved.
test-evpn-vlan: build
	mkdir -p $(COMPAT)
	nice -n -10 scripts/uml/run.sh -q --timeout 500 --rw $(COMPAT) -e RARP_REPLAY_UML=1 -e RARP_REPLAY=$(CURDIR)/bin/rarp-replay \
		-e RARP_REPLAY_COMPAT_DIR=$(COMPAT) -- scripts/lab/e2e-vlan.sh

# The live layout matrix alone (UML), the FRR EVPN test on the VLAN-aware
# bridge, then README's compatibility table from what they recorded.
test-layouts: build
	$(MAKE) test-uml UML_TESTS='^(TestListen|TestListenAnycastMacvlan|TestLayouts)$$$$'
	$(MAKE) test-evpn-vlan
	$(MAKE) compat-table

# README's compatibility table, from the results the last test run recorded
# in build/compat (each cell: live or fixture, passed or failed).
compat-table:
	$(GO) run ./scripts/gen-compat -results $(COMPAT) -readme README.md

# The kernel model test for as long as asked (SOAK, a Go duration): random
# leaf operations in a namespace, the daemon's tables compared with the
# kernel's after each; a failure prints the seed to replay it with.
SOAK ?= 10m
soak: deps
	RARP_REPLAY_REQUIRE_ROOT=1 $(GO) test -count=1 -timeout 0 -v -run '^TestKernelModel$$' ./cmd/rarp-replay -model.duration $(SOAK)

# Regenerates what is generated from the code: docs/CONFIG.md and README's
# listen flags (from the commands), docs/METRICS.md and README's metrics
# table (from the registry). Tests fail while they are stale.
docs:
	$(GO) run ./scripts/gen-docs -config docs/CONFIG.md -readme README.md
	$(GO) test ./internal/metrics -run TestMetricsDoc -update

# Regenerates the replay corpus and its golden files.
pcaps:
	$(GO) run ./scripts/gen-pcaps -out pcaps/corpus
	$(GO) test ./replay -run TestCorpus -update

# The tests that need neither root nor libpcap at run time.
test-unit:
	$(GO) test ./...

# Two FRR EVPN leaves, a VM migrating without and with rarp-replay.
demo: deps build
	RARP_REPLAY=bin/rarp-replay scripts/demo.sh

# One switch, no routing suite: the neighbor table before and after.
demo-local: deps build
	scripts/demo-local.sh bin/rarp-replay

# The .deb (packaging/build-deb.sh): binary, systemd unit, default
# environment file, man pages, shell completions. nfpm runs as a Go tool
# pinned in packaging/tools/go.mod (no prebuilt download).
deb:
	VERSION=$(VERSION) DEB_ARCH=$(DEB_ARCH) GO=$(GO) packaging/build-deb.sh

# Benchmarks, as root; not part of `make test`. `make bench` rewrites the
# tables in docs/PERFORMANCE.md; `make bench-fabric` runs the two-leaf FRR
# fabric at scale (200 VMs by default).
bench: deps build
	scripts/bench/run.sh bin/rarp-replay

bench-fabric: deps build
	scripts/bench/fabric.sh bin/rarp-replay

clean:
	rm -rf bin build
