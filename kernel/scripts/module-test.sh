#!/bin/bash
# module-test.sh: build the module, boot the UML kernel with the chroot as its
# hostfs root, insmod the module (its KUnit suites run on load), rmmod it,
# cut the log to the module's KTAP block and parse it with `kunit.py parse`.
# Exits non-zero if the module does not load or unload, any case fails, or
# the kernel log holds a checker's report (VMK_SPLATS in common.sh). The
# kernel is the flavour's (VMK_FLAVOUR; `debug` for make kunit-debug).
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/module.sh" kunit
vmk_lock "$VMK_UM_LOCK"

build=$VMK_UM_BUILD
ko=$VMK_CACHE/module-build$VMK_UM_SUFFIX-kunit/vmspace_kmod.ko
results=$VMK_CACHE/results
label=module-test$VMK_UM_SUFFIX
mkdir -p "$results"
log=$results/$label.log
ktap=$results/$label.ktap
json=$results/$label.json
rm -f "$log" "$ktap" "$json"

vmk_log "booting UML and loading $(basename "$ko")"
start=$(date +%s%N)
# Inside the chroot, "/" is the chroot: the guest's hostfs root. Only the
# module's own suites run (kunit.filter_glob); built-in ones ran in `make kunit`.
status=0
vmk_chroot /usr/bin/timeout 300 "$build/linux" mem=1G ncpus=2 seccomp=on console=tty \
	root=/dev/root rootfstype=hostfs rootflags=/ rw \
	init="$VMK_SRC/kernel/scripts/uml-init.sh" VMK_MODULE="$ko" \
	kunit.filter_glob='vmspace_mod*' </dev/null >"$log" 2>&1 || status=$?
vmk_log "UML exited with status $status after $((($(date +%s%N) - start) / 1000000)) ms; log in $log"

grep -q 'vmspace-module-test: insmod ok' "$log" || { tail -n 40 "$log" >&2; vmk_die "insmod failed"; }
grep -q 'vmspace-module-test: rmmod ok' "$log" || { tail -n 40 "$log" >&2; vmk_die "rmmod failed"; }
grep -m1 'vmspace_kmod: loaded' "$log" >&2 || true
sed -n '/vmspace-module-test: begin/,/vmspace-module-test: insmod ok/p' "$log" >"$ktap"
grep -q 'KTAP version' "$ktap" || vmk_die "no KTAP output from the module in $log"

status=0
vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 python3 "$VMK_CACHE/linux/tools/testing/kunit/kunit.py" \
	parse --json="$json" "$ktap" || status=$?
# The whole log, boot to power-off: any checker's report fails the run.
reports=$(vmk_splats "$log" | wc -l)
if [ "$reports" != 0 ]; then
	vmk_log "checker reports in the kernel log ($log):"
	vmk_splats "$log" | head -n 20 >&2
	status=1
fi
# One plain closing line for CI: "module-test: N passed, N failed, N skipped, N checker reports".
vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" "$label" "$json" "$reports" || { [ "$status" != 0 ] || status=1; }
exit $status
