#!/usr/bin/env bash
# fuzz/run.sh build|run|cmin [TARGET...]: the cargo-fuzz targets of fuzz/,
# built with the flags cargo-fuzz uses (libFuzzer coverage, AddressSanitizer,
# debug assertions) by plain `cargo +nightly`, so nothing else needs
# installing; each target runs from its committed corpus fuzz/corpus/TARGET.
#
#   build          build every target (release, instrumented)
#   run SECONDS    run each target for SECONDS, as many at once as there are
#                  cores (FUZZ_JOBS); new inputs join its corpus
#   cmin           minimise each corpus in place (libFuzzer's -merge)
#
# TARGETS (environment) picks targets; default: all of them. FUZZ_SEED
# (environment) fixes libFuzzer's seed for `run` (printed either way), so a
# failing run can be repeated with the same mutations; unset, a new seed.
set -euo pipefail
cd "$(dirname "$0")"
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/../target/fuzz}
TARGETS=${TARGETS:-"arena_ops vm vmarena chunkmap sync_qcache trace_parser batched_source keep_free capi capi_vm"}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address \
 -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"

build() {
	cargo +nightly build --release --target "$TRIPLE" --target-dir "$TARGET_DIR" \
		$(for t in $TARGETS; do printf -- '--bin %s ' "$t"; done)
}

bin() { echo "$TARGET_DIR/$TRIPLE/release/$1"; }

case ${1:-} in
build) build ;;
run)
	secs=${2:?seconds}
	build
	mkdir -p "$TARGET_DIR/logs"
	# One target a core at a time (libFuzzer runs one process a target);
	# their summaries are printed in order once each group is done.
	jobs=${FUZZ_JOBS:-$(nproc)}
	set -- $TARGETS
	while [ $# -gt 0 ]; do
		group=("${@:1:$jobs}")
		shift $((${#group[@]}))
		pids=()
		for t in "${group[@]}"; do
			mkdir -p "corpus/$t"
			seed=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
			echo "== fuzz $t: $secs s from $(ls "corpus/$t" | wc -l) corpus inputs, seed $seed (log: $TARGET_DIR/logs/$t.log)"
			"$(bin "$t")" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=4096 -seed="$seed" \
				-print_final_stats=1 >"$TARGET_DIR/logs/$t.log" 2>&1 &
			pids+=($!)
		done
		failed=
		for i in "${!group[@]}"; do
			t=${group[$i]}
			log=$TARGET_DIR/logs/$t.log
			if ! wait "${pids[$i]}"; then
				tail -n 60 "$log"
				echo "== fuzz $t: FAILED (the crashing input is in fuzz/, named crash-*)" >&2
				failed=1
				continue
			fi
			echo "== fuzz $t:"
			grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" || tail -n 3 "$log"
		done
		[ -z "$failed" ] || exit 1
	done
	;;
cmin)
	build
	for t in $TARGETS; do
		tmp=$(mktemp -d)
		"$(bin "$t")" -merge=1 "$tmp" "corpus/$t" >/dev/null 2>&1
		rm -rf "corpus/$t" && mv "$tmp" "corpus/$t"
		echo "== $t: $(ls "corpus/$t" | wc -l) inputs"
	done
	;;
*)
	sed -n '2,12p' "$0"
	exit 2
	;;
esac
