#!/usr/bin/env bash
# Instructions per allocate+free pair through the C API and through the Rust
# API of the same arena, under cachegrind (capi/ctest/examples/capi_pairs.rs):
# a run of N pairs minus a run of 0, divided by N, so setup does not count.
# Unlike times on a shared machine, these reproduce exactly. The vmem(9)
# rows (vmem_alloc and vmem_free of a cached size) stand beside the Rust
# API's per-CPU cache pair, which they go through.
# Usage: pair-counts.sh [N] (default 100000); needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-100000}
command -v valgrind >/dev/null || { apt-get update -q && apt-get install -y -q valgrind; }
cargo build -q --release -p vmspace-capi-ctest --example capi_pairs
bin=target/release/examples/capi_pairs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ir() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$tmp/out" \
        "$bin" "$1" "$2" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    grep '^summary:' "$tmp/out" | cut -d' ' -f2
}
printf '| pair | Rust API | C API | C - Rust |\n|---|---|---|---|\n'
declare -A rust
for row in addr:rust-addr:c-addr qcache:rust-qcache:c-qcache handle:rust-handle:c-handle \
    "vmem M_NOWAIT:rust-qcache:vmem-nowait" "vmem M_WAITOK:rust-qcache:vmem-waitok"; do
    IFS=: read -r what rk ck <<<"$row"
    if [[ -z ${rust[$rk]:-} ]]; then
        r0=$(ir "$rk" 0); r1=$(ir "$rk" "$n"); rust[$rk]=$(((r1 - r0) / n))
    fi
    c0=$(ir "$ck" 0); c1=$(ir "$ck" "$n")
    r=${rust[$rk]}; c=$(((c1 - c0) / n))
    printf '| %s | %d | %d | %+d |\n' "$what" "$r" "$c" $((c - r))
done
