#!/bin/bash
# module.sh [product|kunit]: build the out-of-tree module vmspace_kmod.ko
# against the cached UML tree of the flavour (VMK_FLAVOUR, see common.sh;
# building that tree first if needed), with the output kept out of the
# repository:
#   product (default): $VMK_CACHE/module-build, no test code in it (checked
#     with nm: no symbol of the workload or KUnit crates, no KUnit case);
#   kunit: $VMK_CACHE/module-build-kunit, built with VMSPACE_KUNIT=y, so its
#     KUnit suites run when it is loaded (make module-test).
# The debug flavour's outputs are module-build-debug and module-build-debug-kunit.
# VMK_MAKE_ARGS=CLIPPY=1 make module lints the shared crates as the kernel does.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
mode=${1:-product}
case "$mode" in
product) out=$VMK_CACHE/module-build$VMK_UM_SUFFIX kunit= ;;
kunit) out=$VMK_CACHE/module-build$VMK_UM_SUFFIX-kunit kunit=VMSPACE_KUNIT=y ;;
*) vmk_die "usage: module.sh [product|kunit]" ;;
esac
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock "$VMK_UM_LOCK"

build=$VMK_UM_BUILD
if [ ! -x "$build/linux" ] || [ ! -f "$build/Module.symvers" ]; then
	vmk_log "no built UML tree yet: building it (cold: about 6 minutes on 2 cores)"
	vmk_kunit_py build
fi
vmk_fresh_objects "$out"
start=$(date +%s%N)
# VMK_MAKE_ARGS passes Kbuild variables through, e.g. CLIPPY=1 to lint the
# Rust crates with the kernel's clippy settings.
# shellcheck disable=SC2086
vmk_chroot make -s -C "$build" ARCH=um "${VMK_UM_MAKE[@]}" M="$VMK_SRC" MO="$out" -j"$VMK_JOBS" $kunit ${VMK_MAKE_ARGS:-} modules
ko=$out/vmspace_kmod.ko
vmk_log "built $ko ($mode) in $((($(date +%s%N) - start) / 1000000)) ms"

found=$(vmk_test_symbols "$ko" | wc -l)
if [ "$mode" = product ]; then
	[ "$found" = 0 ] || { vmk_test_symbols "$ko" | head >&2; vmk_die "test code in the product module ($found symbols)"; }
	vmk_log "no test code in $(basename "$ko"): 0 symbols match /$VMK_TEST_SYMBOLS/"
else
	[ "$found" -gt 0 ] || vmk_die "no KUnit symbols in the test module: is KUnit built into $build?"
fi
