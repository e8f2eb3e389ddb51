#!/bin/bash
# Interleaved CPU times of the arena churn (userspace/examples/arena_churn.rs):
# every allocator (or every build of it) runs once per round, in turn, pinned
# to one CPU, so that a shared machine's slow spells fall on all of them
# alike; prints the minimum, first quartile and median per pair.
#
# Usage: churn-times.sh LIVE ROUNDS SPEC...
#   SPEC is WHO (an allocator of arena_churn: vmspace, vmspace-handle,
#   offset-allocator, vmem, none) or BINARY:WHO, to compare builds (copy
#   target/release/examples/arena_churn of each commit aside first).
# Environment: STEPS (default 2000000), CPU (default 1), FRAGMENTED (set:
#   the fragmented allocation-only workload, LIVE blocks and STEPS
#   allocations, instead of the churn).
#
# Example (BENCHMARKS.md, the interleaved table):
#   cp target/release/examples/arena_churn /tmp/churn-old   # in the old checkout
#   userspace/scripts/churn-times.sh 100 15 /tmp/churn-old:vmspace-handle \
#       vmspace-handle vmem offset-allocator
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,19p' "$0" >&2; exit 2; }
live=$1 rounds=$2
shift 2
steps=${STEPS:-2000000}
cpu=${CPU:-1}
mode=()
[ -n "${FRAGMENTED:-}" ] && mode=(--fragmented)
default=${ARENA_CHURN:-target/release/examples/arena_churn}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for _ in $(seq "$rounds"); do
    for spec in "$@"; do
        bin=$default who=$spec
        if [[ $spec == *:* ]]; then bin=${spec%%:*} who=${spec#*:}; fi
        # "WHO LIVE live: NS ns CPU time a pair over STEPS steps"
        ns=$(taskset -c "$cpu" "$bin" "${mode[@]}" "$who" "$live" "$steps" | awk '{print $4}')
        echo "$spec $ns" >>"$raw"
    done
done
printf '| %s at %s live, %s rounds | min | p25 | median |\n|---|---|---|---|\n' "run" "$live" "$rounds"
# Sorted by spec, then time: each spec's values arrive in order.
sort -k1,1 -k2,2n "$raw" | awk '
    function emit() {
        if (c == 0) return
        med = c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
        printf "| %s | %.1f | %.1f | %.1f |\n", key, v[1], v[int((c + 3) / 4)], med
    }
    $1 != key { emit(); key = $1; c = 0 }
    { v[++c] = $2 }
    END { emit() }'
