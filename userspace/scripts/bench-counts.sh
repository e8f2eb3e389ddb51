#!/bin/bash
# Instruction and cache-miss counts per free+alloc pair of the arena churn
# (userspace/examples/arena_churn.rs) under cachegrind, for vmspace beside
# its peers and the harness alone (`none`), then per allocation of the
# fragmented workload (`--fragmented`: a million one-unit blocks, every
# other one freed, then two-unit allocations, after one untimed round of
# them). Counts are the difference between a run of STEPS steps and a run
# of none, divided by STEPS, so filling the allocator does not count.
# Unlike times on a shared machine, these reproduce exactly.
#
# The simulated caches: D1 32 KiB 8-way; LL 1 MiB 16-way for 10^2 and 10^4
# live (this machine's L2) and 32 MiB 16-way for 10^6 (its L3). Cachegrind
# does not model the TLB or prefetchers, so misses are an upper bound on
# what the hardware pays in order, not a time. (Its branch simulator is left
# off: a small table indexed by address, it reports always-false branches
# as mispredicted whenever code moves, so its counts said more about layout
# than about the code.)
#
# Usage: bench-counts.sh [STEPS] (default 100000); needs valgrind.
set -euo pipefail
steps=${1:-100000}
bin=${ARENA_CHURN:-target/release/examples/arena_churn}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# summary WHO LIVE N LL [MODE]: cachegrind's event totals for N steps.
summary() {
    valgrind --tool=cachegrind --cache-sim=yes \
        --D1=32768,8,64 --LL="$4" --cachegrind-out-file="$tmp/out" \
        "$bin" ${5:+"$5"} "$1" "$2" "$3" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    grep '^summary:' "$tmp/out" | cut -d' ' -f2-
}

# row WHO LIVE LL [MODE]: one table row, per step.
row() {
    read -r -a zero <<<"$(summary "$1" "$2" 0 "$3" ${4:+"$4"})"
    read -r -a full <<<"$(summary "$1" "$2" "$steps" "$3" ${4:+"$4"})"
    # Events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
    # Per step: instructions, D1 read+write misses, LL read+write misses.
    awk -v who="$1" -v live="$2" -v n="$steps" -v z="${zero[*]}" -v f="${full[*]}" 'BEGIN {
        split(z, a, " "); split(f, b, " ");
        for (i in b) d[i] = (b[i] - a[i]) / n;
        printf "| %s | %s | %.0f | %.2f | %.2f |\n", who, live, d[1], d[5] + d[8], d[6] + d[9];
    }'
}

printf '| allocator | live | instructions | L1 data misses | LL misses |\n'
printf '|---|---|---|---|---|\n'
for live in 100 10000 1000000; do
    ll=1048576,16,64
    [ "$live" -ge 1000000 ] && ll=33554432,16,64
    for who in vmspace vmspace-handle offset-allocator vmem none; do
        # The vmem crate frees in time linear in its live count.
        [ "$who" = vmem ] && [ "$live" -ge 1000000 ] && continue
        row "$who" "$live" "$ll"
    done
done

printf '\nFragmented, per allocation:\n\n'
printf '| allocator | blocks | instructions | L1 data misses | LL misses |\n'
printf '|---|---|---|---|---|\n'
# (No vmem: it frees in time linear in its live count.)
for who in vmspace vmspace-handle offset-allocator none; do
    row "$who" 1000000 33554432,16,64 --fragmented
done
