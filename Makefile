# vmspace top-level targets. `make run` and `make test` need nothing but a Rust
# toolchain; everything else they need (crates) they fetch themselves.
#
#   make run         the vmspace program's built-in demo (release build)
#   make test        build everything, run every user-space test and the examples
#   make msrv        check everything with the minimum supported Rust (rust-version),
#                    build and run its unit and doc tests
#   make lint        cargo fmt --check, clippy -D warnings, cargo doc -D warnings
#   make readme-commands  the README's shell samples that run the vmspace program
#   make bench       criterion benchmarks (see BENCHMARKS.md)
#   make bench-counts  instruction and cache-miss counts of the arena churn
#   make loom        concurrency models under loom
#   make sanitize    the test suite under AddressSanitizer and ThreadSanitizer
#   make miri        the unit tests of the raw memory views under Miri
#   make fuzz-smoke  every fuzz target for a short while, from its corpus
#   make capi, make install PREFIX=... (LIBDIR, INCLUDEDIR, DESTDIR), make install-strip,
#   make uninstall, make capi-install-check, make capi-asan:
#                    the C library (see capi/capi.mk)
#   make kunit, make module, make module-test: see kernel/kernel.mk

CARGO ?= cargo

.PHONY: run test lint bench toolchain cargo-present

# A fresh machine may lack the Rust toolchain's components; install them.
# (`cargo-present` alone for what only builds: `make install` must not need
# rustfmt, clippy or rustup.)
cargo-present:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

toolchain: cargo-present
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

run: toolchain
	$(CARGO) run --release -q -p vmspace-user --bin vmspace

test: toolchain
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace
	@$(MAKE) --no-print-directory examples

# The README's shell samples that run the vmspace program, as written
# (release builds; about a minute: the trace replayed with --check).
.PHONY: readme-commands
readme-commands: toolchain
	userspace/scripts/readme-commands.sh

# The programs in examples/ (built by `make test`'s --all-targets), each run.
EXAMPLES = reserve_and_map id_allocator shared_qcache vmarena_zones
.PHONY: examples
examples: toolchain
	@set -e; for e in $(EXAMPLES); do \
		echo "== example $$e"; $(CARGO) run -q --example $$e; \
	done

# Check and test with the minimum supported Rust (the workspace's
# rust-version), installed with rustup when missing, in its own target dir:
# every target is checked (type- and borrow-checked: what an older toolchain
# refuses, a newer language feature or library item, fails here), and the
# unit, binary and doc tests are built and run. The integration tests run in
# `make test` only, on the current toolchain: building their two hundred
# binaries again here took 5.5 GB of disk and a CI run once ran out of it;
# running them took five of CI's minutes and checked no more of the claim.
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
.PHONY: msrv
msrv:
	@command -v rustup >/dev/null || { echo "make msrv needs rustup" >&2; exit 1; }
	@rustup run $(MSRV) rustc --version >/dev/null 2>&1 || rustup toolchain install $(MSRV) --profile minimal
	CARGO_TARGET_DIR=target/msrv rustup run $(MSRV) cargo check --workspace --all-targets
	CARGO_TARGET_DIR=target/msrv rustup run $(MSRV) cargo test --workspace --lib --bins
	CARGO_TARGET_DIR=target/msrv rustup run $(MSRV) cargo test --workspace --doc

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

# Each fuzz target in fuzz/ for FUZZ_SECONDS, starting from its corpus in
# fuzz/corpus/TARGET (committed, minimised: what earlier runs found; new
# inputs join it, and `make fuzz-cmin` shrinks it again before a commit).
# Built by fuzz/run.sh with the flags cargo-fuzz uses; needs only nightly.
# FUZZ_SEED fixes libFuzzer's seed (CI's smoke: the same mutations of the
# same corpus in every run, so a red smoke is reproducible and a clean
# clone's run predicts CI's); unset, each run explores anew.
FUZZ_SECONDS ?= 30
FUZZ_SEED ?=
export FUZZ_SEED
.PHONY: fuzz-smoke fuzz-cmin nightly
nightly:
	@rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
fuzz-smoke: nightly
	bash fuzz/run.sh run $(FUZZ_SECONDS)
fuzz-cmin: nightly
	bash fuzz/run.sh cmin

# Concurrency models under loom (tests/loom_*.rs): the quantum caches'
# claim/unclaim, depot exchange and per-CPU handoff, the chunk map's
# claim/publish, the waiter's epochs. Built with --cfg loom in a target
# directory of their own.
LOOM_TESTS = loom_qcache loom_chunkmap loom_wait
.PHONY: loom
loom: toolchain
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(CARGO) test --release -p vmspace \
		$(addprefix --test ,$(LOOM_TESTS))

# The user-space test suite under AddressSanitizer, and the multi-threaded
# tests under ThreadSanitizer (std rebuilt instrumented), with the nightly
# toolchain, each in a target directory of its own.
SAN_TARGET = x86_64-unknown-linux-gnu
TSAN_TESTS = sync_stress sync_deferred qcache_frees qcache_waiters chunkmap_concurrency outside_sync
.PHONY: sanitize asan tsan
sanitize: asan tsan
# The tests that fill the process's VMAs to vm.max_map_count, or run under
# an address-space, data-size or locked-memory limit, are skipped:
# AddressSanitizer maps its shadow as it goes and cannot run there.
# VMSPACE_ASAN tells tests that count the whole process's VMAs that the
# sanitizer's own mappings come and go meanwhile.
asan: nightly
	VMSPACE_ASAN=1 RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
		$(CARGO) +nightly test --workspace --target $(SAN_TARGET) --lib --tests -- \
		--skip at_the_vma_limit --skip under_rlimit
tsan: nightly
	@rustup component list --toolchain nightly --installed | grep -q rust-src || rustup component add rust-src --toolchain nightly
	RUSTFLAGS="-Zsanitizer=thread --cfg vmspace_tsan" CARGO_TARGET_DIR=target/tsan \
		$(CARGO) +nightly test -Zbuild-std --target $(SAN_TARGET) -p vmspace \
		$(addprefix --test ,$(TSAN_TESTS)) --lib

# Miri over the unit tests of the code that views raw memory as tables
# (the shim and simulated backend, the arena's store and boundary-tag
# table, the bit tables, `KeepFree`'s move of its source out in
# `into_inner`): undefined behaviour in their unsafe code fails
# the run. A subset: the interpreter is some thousand times slower than a
# build, and the rest (threads, the hash's and the VM's fault sweeps, the
# quantum caches) takes minutes to hours a module: `make miri
# MIRI_TESTS='arena::hash vm::'` runs those two (about 2 and 3 minutes).
MIRI_TESTS = arena::store arena::tag arena::teardown bits:: sources::keep_tests
.PHONY: miri
miri: nightly
	@rustup component list --toolchain nightly --installed | grep -q '^miri' || rustup component add miri rust-src --toolchain nightly
	MIRIFLAGS=-Zmiri-disable-isolation $(CARGO) +nightly miri test -p vmspace-shim --lib
	MIRIFLAGS=-Zmiri-disable-isolation $(CARGO) +nightly miri test -p vmspace --lib -- $(MIRI_TESTS)

-include capi/capi.mk
