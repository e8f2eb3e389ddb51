# vmspace top-level targets. `make run` and `make test` need nothing but a Rust
# toolchain; everything else they need (crates) they fetch themselves.
#
#   make run         the vmspace program's built-in demo (release build)
#   make test        build everything, run every user-space test and the examples
#   make msrv        build and test with the minimum supported Rust (rust-version)
#   make lint        cargo fmt --check, clippy -D warnings, cargo doc -D warnings
#   make bench       criterion benchmarks (see BENCHMARKS.md)
#   make bench-counts  instruction and cache-miss counts of the arena churn
#   make capi, make install PREFIX=..., make capi-install-check, make capi-asan:
#                    the C library (see capi/capi.mk)
#   make kunit, make module, make module-test: see kernel/kernel.mk

CARGO ?= cargo

.PHONY: run test lint bench toolchain

# A fresh machine may lack the Rust toolchain's components; install them.
toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

run: toolchain
	$(CARGO) run --release -q -p vmspace-user --bin vmspace

test: toolchain
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace
	@$(MAKE) --no-print-directory examples

# The programs in examples/ (built by `make test`'s --all-targets), each run.
EXAMPLES = reserve_and_map id_allocator shared_qcache vmarena_zones
.PHONY: examples
examples: toolchain
	@set -e; for e in $(EXAMPLES); do \
		echo "== example $$e"; $(CARGO) run -q --example $$e; \
	done

# Build and test with the minimum supported Rust (the workspace's
# rust-version), installed with rustup when missing, in its own target dir.
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
.PHONY: msrv
msrv:
	@command -v rustup >/dev/null || { echo "make msrv needs rustup" >&2; exit 1; }
	@rustup run $(MSRV) rustc --version >/dev/null 2>&1 || rustup toolchain install $(MSRV) --profile minimal
	CARGO_TARGET_DIR=target/msrv rustup run $(MSRV) cargo build --workspace --all-targets
	CARGO_TARGET_DIR=target/msrv rustup run $(MSRV) cargo test --workspace

lint: toolchain
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

bench: toolchain
	$(CARGO) bench -p vmspace-user

# Instructions and cache misses per free+alloc pair of the arena churn under
# cachegrind, beside the peer allocators (BENCHMARKS.md).
.PHONY: bench-counts
bench-counts: toolchain
	@command -v valgrind >/dev/null || { apt-get update -q && apt-get install -y -q valgrind; }
	$(CARGO) build --release -q -p vmspace-user --example arena_churn
	userspace/scripts/bench-counts.sh

-include kernel/kernel.mk

# Run each cargo-fuzz target in fuzz/ for a bounded time (FUZZ_SECONDS each).
# Needs the nightly toolchain; installs cargo-fuzz when it is missing.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= arena_ops vmarena chunkmap
.PHONY: fuzz-smoke
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	set -e; for t in $(FUZZ_TARGETS); do \
		$(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096; \
	done

-include capi/capi.mk
