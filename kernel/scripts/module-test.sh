#!/bin/bash
# module-test.sh: build the module, boot the UML kernel with the chroot as its
# hostfs root, insmod the module (its KUnit suites run on load), rmmod it,
# cut the log to the module's KTAP block and parse it with `kunit.py parse`.
# Exits non-zero if the module does not load or unload, or any case fails.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/module.sh"
vmk_lock um

build=$VMK_CACHE/build-um
ko=$VMK_CACHE/module-build/vmspace_kmod.ko
results=$VMK_CACHE/results
mkdir -p "$results"
log=$results/module-test.log
ktap=$results/module-test.ktap
rm -f "$log" "$ktap" "$results/module-test.json"

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
	parse --json="$results/module-test.json" "$ktap" || status=$?
# One plain closing line for CI: "module-test: N passed, N failed, N skipped".
vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" module-test "$results/module-test.json" || { [ "$status" != 0 ] || status=1; }
exit $status
