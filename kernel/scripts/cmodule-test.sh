#!/bin/bash
# cmodule-test.sh: build the kernel and the sample C module (cmodule.sh),
# boot UML with the chroot as its hostfs root, insmod vmspace_cmod.ko (its
# C KUnit suite runs on load, calling the built-in C API), rmmod it, and
# parse the suite's KTAP with `kunit.py parse`. Exits non-zero if the module
# does not load or unload, or any case fails.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/cmodule.sh"
vmk_lock um

build=$VMK_CACHE/build-um
ko=$VMK_CACHE/cmodule-build/vmspace_cmod.ko
results=$VMK_CACHE/results
mkdir -p "$results"
log=$results/cmodule-test.log
ktap=$results/cmodule-test.ktap
rm -f "$log" "$ktap" "$results/cmodule-test.json"

vmk_log "booting UML and loading $(basename "$ko")"
start=$(date +%s%N)
status=0
vmk_chroot /usr/bin/timeout 300 "$build/linux" mem=1G ncpus=2 seccomp=on console=tty \
	root=/dev/root rootfstype=hostfs rootflags=/ rw \
	init="$VMK_SRC/kernel/scripts/uml-init.sh" VMK_MODULE="$ko" \
	kunit.filter_glob='vmspace_cmod*' </dev/null >"$log" 2>&1 || status=$?
vmk_log "UML exited with status $status after $((($(date +%s%N) - start) / 1000000)) ms; log in $log"

grep -q 'vmspace-module-test: insmod ok' "$log" || { tail -n 40 "$log" >&2; vmk_die "insmod failed"; }
grep -q 'vmspace-module-test: rmmod ok' "$log" || { tail -n 40 "$log" >&2; vmk_die "rmmod failed"; }
grep -m1 'vmspace_cmod: loaded' "$log" >&2 || true
sed -n '/vmspace-module-test: begin/,/vmspace-module-test: insmod ok/p' "$log" >"$ktap"
grep -q 'KTAP version' "$ktap" || vmk_die "no KTAP output from the module in $log"

status=0
vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 python3 "$VMK_CACHE/linux/tools/testing/kunit/kunit.py" \
	parse --json="$results/cmodule-test.json" "$ktap" || status=$?
# The whole log, boot to power-off: any checker's report fails the run.
reports=$(vmk_splats "$log" | wc -l)
if [ "$reports" != 0 ]; then
	vmk_log "checker reports in the kernel log ($log):"
	vmk_splats "$log" | head -n 20 >&2
	status=1
fi
# One plain closing line for CI: "cmodule-test: N passed, N failed, N skipped, N checker reports".
vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" cmodule-test "$results/cmodule-test.json" "$reports" || { [ "$status" != 0 ] || status=1; }
exit $status
