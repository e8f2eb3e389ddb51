#!/bin/bash
# cmodule-test.sh: build the kernel and the sample C module (cmodule.sh),
# boot UML with the chroot as its hostfs root, insmod vmspace_cmod.ko (its
# C KUnit suite runs on load, calling the built-in C API), rmmod it and
# parse the suite's KTAP (vmk_insmod_test in common.sh). Exits non-zero if
# the module does not load or unload, any case fails, or the kernel log
# holds a checker's report.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/cmodule.sh"
vmk_lock um

status=0
vmk_insmod_test cmodule-test "$VMK_CACHE/build-um" "$VMK_CACHE/cmodule-build/vmspace_cmod.ko" \
	'vmspace_cmod*' || status=$?
exit $status
