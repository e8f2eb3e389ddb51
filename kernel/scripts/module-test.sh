#!/bin/bash
# module-test.sh: build the module with its suites, boot the UML kernel with
# the chroot as its hostfs root, insmod the module (its KUnit suites run on
# load), rmmod it and parse its KTAP (vmk_insmod_test in common.sh). Exits
# non-zero if the module does not load or unload, any case fails, or the
# kernel log holds a checker's report (VMK_SPLATS). The kernel is the
# flavour's (VMK_FLAVOUR; `debug` for make kunit-debug).
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/module.sh" kunit
vmk_lock "$VMK_UM_LOCK"

# Only the module's own suites run; the built-in ones ran in `make kunit`.
status=0
vmk_insmod_test "module-test$VMK_UM_SUFFIX" "$VMK_UM_BUILD" \
	"$VMK_CACHE/module-build$VMK_UM_SUFFIX-kunit/vmspace_kmod.ko" 'vmspace_mod*' || status=$?
exit $status
