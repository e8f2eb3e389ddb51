#!/bin/bash
# cmodule-test.sh: build the kernel and the sample C module (cmodule.sh),
# boot UML with the chroot as its hostfs root, insmod vmspace_cmod.ko (its
# C KUnit suite runs on load, calling the built-in C API), rmmod it and
# parse the suite's KTAP (vmk_insmod_test in common.sh). Exits non-zero if
# the module does not load or unload, any case fails, or the kernel log
# holds a checker's report or vmalloc's warning of a failed reservation.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/cmodule.sh"
vmk_lock um

status=0
vmk_insmod_test cmodule-test "$VMK_CACHE/build-um" "$VMK_CACHE/cmodule-build/vmspace_cmod.ko" \
	'vmspace_cmod*' || status=$?
# vm_test.c asks for reservations no vmalloc area holds (-ENOMEM): refused
# before vmalloc is asked, which would print its failure (it cannot be told
# __GFP_NOWARN) for the caller's mistake.
if grep -m3 'vmalloc_node_range for size' "$VMK_CACHE/results/cmodule-test.log" >&2; then
	vmk_log "vmalloc warned of a reservation vmspace should have refused first"
	status=1
fi
exit $status
