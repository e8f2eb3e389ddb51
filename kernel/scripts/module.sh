#!/bin/bash
# module.sh: build the out-of-tree module vmspace_kmod.ko against the cached
# UML tree (building that tree first if needed), with the output kept out of
# the repository in $VMK_CACHE/module-build. VMK_MAKE_ARGS=CLIPPY=1 make module
# lints the shared crates as the kernel does.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock um

build=$VMK_CACHE/build-um
if [ ! -x "$build/linux" ] || [ ! -f "$build/Module.symvers" ]; then
	vmk_log "no built UML tree yet: building it (cold: about 6 minutes on 2 cores)"
	vmk_kunit_py build
fi
out=$VMK_CACHE/module-build
mkdir -p "$out"
start=$(date +%s%N)
# VMK_MAKE_ARGS passes Kbuild variables through, e.g. CLIPPY=1 to lint the
# Rust crates with the kernel's clippy settings.
# shellcheck disable=SC2086
vmk_chroot make -s -C "$build" ARCH=um M="$VMK_SRC" MO="$out" -j"$VMK_JOBS" ${VMK_MAKE_ARGS:-} modules
vmk_log "built $out/vmspace_kmod.ko in $((($(date +%s%N) - start) / 1000000)) ms"
