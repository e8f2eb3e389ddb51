#!/bin/bash
# kunit-kcsan.sh [kunit.py args...]: the built-in KUnit suites on x86_64
# under qemu (TCG, two virtual CPUs) with KCSAN, the kernel's data-race
# detector, in $VMK_CACHE/build-x86_64-kcsan. With CONFIG_KCSAN the built-in
# build adds the vmspace_stress suite, which runs the multi-threaded cases
# (SyncArena, per-CPU caches and pin, chunk map races) many rounds, so that
# KCSAN's sampled watchpoints have time to catch a race. Fails on any failed
# case, a kunitconfig option missing from the .config, or any checker report
# (KCSAN: ..., BUG:, WARNING:) in the kernel log. Cold: an x86_64 kernel
# build (20-30 minutes on 2 busy cores); warm: a few minutes of TCG.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock x86_64-kcsan

if [ ! -e "$VMK_CACHE/stamp-qemu" ]; then
	vmk_log "installing qemu-system-x86 into the chroot"
	vmk_chroot /bin/sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends qemu-system-x86 qemu-system-data'
	touch "$VMK_CACHE/stamp-qemu"
fi

build=$VMK_CACHE/build-x86_64-kcsan
label=kunit-kcsan
json=$VMK_CACHE/results/$label.json
log=$VMK_CACHE/results/$label.log
mkdir -p "$VMK_CACHE/results"
rm -f "$json" "$log" "$build/test.log"
start=$(date +%s)
status=0
vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 /bin/sh -c \
	'cd "$1" && shift && exec python3 tools/testing/kunit/kunit.py "$@"' sh \
	"$VMK_CACHE/linux" run --arch=x86_64 --build_dir="$build" \
	--kunitconfig="$VMK_SRC/kernel/.kunitconfig" --kunitconfig="$VMK_SRC/kernel/kunitconfig.kcsan" \
	--qemu_args='-smp 2' --jobs="$VMK_JOBS" --timeout=3600 --json="$json" "$@" || status=$?
vmk_log "kunit.py (x86_64, qemu, KCSAN) finished with status $status in $(($(date +%s) - start)) s"

verdict=0
vmk_kunit_verdict "$label" "$build" "$status" .kunitconfig kunitconfig.kcsan || verdict=$?
exit $verdict
