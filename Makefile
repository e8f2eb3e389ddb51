# vmspace top-level targets. `make run` and `make test` need nothing but a Rust
# toolchain; everything else they need (crates) they fetch themselves.
#
#   make run         the vmspace program's built-in demo (release build)
#   make test        build everything and run every user-space test
#   make lint        cargo fmt --check and clippy -D warnings
#   make bench       criterion benchmarks (see BENCHMARKS.md)
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

lint: toolchain
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: toolchain
	$(CARGO) bench -p vmspace-user

-include kernel/kernel.mk
