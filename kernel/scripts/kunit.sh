#!/bin/bash
# kunit.sh [kunit.py args...]: provision the chroot and the tree if needed,
# then build a UML kernel with Rust, KUnit and the built-in vmspace component
# and run its KUnit suites. Exits non-zero on any failure.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock um

json=$VMK_CACHE/results/kunit.json
mkdir -p "$VMK_CACHE/results"
rm -f "$json"
vmk_log "kunit.py run --arch=um (cold build 6-13 minutes on 2 cores, warm about 15 s)"
start=$(date +%s)
status=0
# Two virtual CPUs (CONFIG_SMP in kunitconfig.uml); UML runs SMP guests
# only with its seccomp userspace.
vmk_kunit_py run --kernel_args=ncpus=2 --kernel_args=seccomp=on --json="$json" "$@" || status=$?
vmk_log "kunit.py finished with status $status in $(($(date +%s) - start)) s; results in $json"
if [ -f "$json" ]; then
	# One plain closing line for CI: "kunit: N passed, N failed, N skipped".
	vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" kunit "$json" || { [ "$status" != 0 ] || status=1; }
fi
exit $status
