# moip: the two commands are `make run` and `make test`. Both install what is missing first.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build: cmake, a C++ compiler and Boost headers for libbitcoinkernel; clang for RocksDB's
# bindgen. Tests: python3-venv for ElectrumX, PostgreSQL's server for the ledger's PostgreSQL
# store (tests start their own throwaway clusters; nothing is configured system-wide), and
# Chromium with its WebDriver for the dashboard's browser test, Node.js and npm for the NWC test
# with Alby's JS SDK. Benchmarks: wrk for the dashboard under load.
APT_PACKAGES := cmake g++ libboost-dev clang libclang-dev pkg-config python3-venv
TEST_PACKAGES := postgresql chromium chromium-driver nodejs npm
# The Node project of the NWC test with Alby's JS SDK (crates/nwc/tests/alby.rs).
ALBY := crates/nwc/tests/alby
BENCH_PACKAGES := wrk
VENV := .venv
ELECTRUMX := $(VENV)/bin/electrumx_server
CARGO ?= cargo

.PHONY: help deps test-deps venv alby build run test check bench bench-electrum bench-wallet bench-up fuzz clean-venv

help:
	@echo "make run    install missing packages, build, run moip"
	@echo "make test   install missing packages and test tools, run the whole test suite"
	@echo "make check  fmt and clippy, as CI expects them"
	@echo "make bench  run the benchmarks recorded in docs/benchmarks.md"
	@echo "make fuzz   run every fuzz target for FUZZ_SECS seconds (docs/reliability.md)"

deps:
	@contrib/install-deps.sh $(APT_PACKAGES)

test-deps: deps
	@contrib/install-deps.sh $(TEST_PACKAGES)

venv: deps
	@contrib/electrumx-venv.sh $(VENV)

# `npm ci` of the lock, skipped while node_modules holds a copy of the lock it was installed from.
alby: test-deps
	@cd $(ALBY) && if ! cmp -s package-lock.json node_modules/.moip-installed-lock; then \
		npm ci --no-audit --no-fund && cp package-lock.json node_modules/.moip-installed-lock; \
	fi

build: deps
	$(CARGO) build --release --bin moip

# The whole community node (`moip up`): it asks for the password that seals its seeds, or
# reads MOIP_PASSWORD; settings in ~/.moip/moip.toml (see docs/up.md).
run: build
	target/release/moip up

# Builds every test and the binaries they use, the fuzz targets among them (fuzz/ is a member
# of the workspace; its replay test runs the committed fuzz inputs), then runs the test binaries
# three at a time (contrib/run-tests.py: most tests wait on Lightning and Nostr timers, not the
# CPU) and the doc tests. `cargo test --workspace` runs the same tests one binary at a time.
# Benchmarks: `make bench`.
test: venv test-deps alby
	$(CARGO) build --workspace --tests
	MOIP_ELECTRUMX=$(abspath $(ELECTRUMX)) CARGO=$(CARGO) contrib/run-tests.py

check: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: deps
	$(CARGO) bench -p moip-chain --bench chain

# Electrum server against ElectrumX 2.0 on a two-million-transaction chain (the first run builds
# the chain, about half an hour; later runs reuse it and take about eight minutes).
bench-electrum: venv
	MOIP_ELECTRUMX=$(abspath $(ELECTRUMX)) $(CARGO) bench -p moip-electrum --bench electrum

# Wallet full scan (1,000 addresses, 10,000 transactions) through moip's server and ElectrumX.
bench-wallet: venv
	MOIP_ELECTRUMX=$(abspath $(ELECTRUMX)) $(CARGO) bench -p moip-wallet --bench full_scan

# moip up: time to ready, and the dashboard under 100 concurrent users (wrk, from Debian).
bench-up: deps
	@contrib/install-deps.sh $(BENCH_PACKAGES)
	$(CARGO) bench -p moip --bench up

# Fuzzing (docs/reliability.md): each target of fuzz/ for FUZZ_SECS seconds, on the stable
# toolchain without a sanitizer (moip forbids unsafe code; see the doc for why). With
# FUZZ_SANITIZER=address the stable compiler is unlocked for -Zsanitizer (RUSTC_BOOTSTRAP=1),
# which works here but rebuilds everything. New inputs go to fuzz/target/corpus, the committed
# seeds in fuzz/corpus stay as they are; a crash stops the run and leaves its input in
# fuzz/artifacts/<target>/. Fuzzing is not part of `make test`, but replaying is: each crash
# found is kept in fuzz/regressions/<target>/, which `make test` runs with fuzz/corpus
# (fuzz/tests/replay.rs), and becomes a regression test in the crate that owns the decoder.
FUZZ_SECS ?= 60
FUZZ_SANITIZER ?= none
FUZZ_TARGETS ?= electrum_request chain_rpc moneysocket_v0 moneysocket_v1 moneysocket_secure \
	nwc_request work_event mssmt_proof api_bodies
FUZZ_CARGO := $(if $(filter none,$(FUZZ_SANITIZER)),,RUSTC_BOOTSTRAP=1) $(CARGO) fuzz
FUZZ_FLAGS := --sanitizer $(FUZZ_SANITIZER)

fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(FUZZ_CARGO) build $(FUZZ_FLAGS)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p target/corpus/$$t && \
		$(FUZZ_CARGO) run $(FUZZ_FLAGS) $$t target/corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			|| exit 1; \
	done

clean-venv:
	rm -rf $(VENV)
