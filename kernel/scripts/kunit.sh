#!/bin/bash
# kunit.sh [kunit.py args...]: provision the chroot and the tree if needed,
# then build a UML kernel with Rust, KUnit and the built-in vmspace component
# and run its KUnit suites. VMK_FLAVOUR picks the build (common.sh:
# vmk_flavour; `debug` is the kernel of `make kunit-debug`). Exits non-zero
# on any failure: a failed or missing case, a kunitconfig option that did
# not make it into the generated .config, a symbol too long for the kernel
# (vmk_long_symbols) or a call to a compiler helper x86_64 lacks
# (vmk_missing_helpers), or a checker's report (BUG:,
# WARNING:, lockdep, KASAN, ...: VMK_SPLATS) in the kernel log, even when
# every case passed.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock "$VMK_UM_LOCK"

label=kunit$VMK_UM_SUFFIX
json=$VMK_CACHE/results/$label.json
log=$VMK_CACHE/results/$label.log
mkdir -p "$VMK_CACHE/results"
rm -f "$json" "$log" "$VMK_UM_BUILD/test.log"
vmk_log "kunit.py run --arch=um in $VMK_UM_BUILD ${VMK_UM_MAKE[*]:+(${VMK_UM_MAKE[*]}) }(cold build 6-13 minutes on 2 cores, warm about 15 s)"
start=$(date +%s)
status=0
# Two virtual CPUs (CONFIG_SMP in kunitconfig.uml); UML runs SMP guests
# only with its seccomp userspace.
vmk_kunit_py run --kernel_args=ncpus=2 --kernel_args=seccomp=on --json="$json" "$@" || status=$?
vmk_log "kunit.py finished with status $status in $(($(date +%s) - start)) s; results in $json"

# The closing checks and the count line (vmk_kunit_verdict, common.sh).
verdict=0
vmk_kunit_verdict "$label" "$VMK_UM_BUILD" "$status" \
	$(for f in $VMK_UM_KUNITCONFIGS; do echo "${f##*/}"; done) || verdict=$?
exit $verdict
