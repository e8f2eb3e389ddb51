#!/bin/bash
# cmodule.sh: build the UML kernel from this checkout (the built-in component
# exports the C API to modules; an incremental build when the tree was last
# built from other sources), then the sample C module vmspace_cmod.ko
# (kernel/cmodule) against it, which includes <linux/vmspace.h> from the
# tree and links against the exports through Module.symvers. Output in
# $VMK_CACHE/cmodule-build.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock um

build=$VMK_CACHE/build-um
vmk_log "building the UML kernel from this checkout (warm: seconds to minutes)"
vmk_kunit_py build
grep -q 'vmspace_arena_create' "$build/Module.symvers" ||
	vmk_die "the kernel in $build does not export the C API (vmspace_arena_create)"
out=$VMK_CACHE/cmodule-build
vmk_fresh_objects "$out"
start=$(date +%s%N)
vmk_chroot make -s -C "$build" ARCH=um M="$VMK_SRC/kernel/cmodule" MO="$out" -j"$VMK_JOBS" \
	KCFLAGS=-Werror modules
vmk_log "built $out/vmspace_cmod.ko in $((($(date +%s%N) - start) / 1000000)) ms"

# The exports are in the symbol namespace "VMSPACE": a module that uses them
# without MODULE_IMPORT_NS("VMSPACE") must be refused by modpost.
noimport=$VMK_CACHE/cmodule-noimport
rm -rf "$noimport" && mkdir -p "$noimport"
if vmk_chroot make -s -C "$build" ARCH=um M="$VMK_SRC/kernel/cmodule/no_import" MO="$noimport" \
	-j"$VMK_JOBS" KCFLAGS=-Werror modules >"$noimport/log" 2>&1; then
	vmk_die "a module using vmspace's exports without MODULE_IMPORT_NS(\"VMSPACE\") was built"
fi
grep -q 'uses symbol vmspace_version from namespace VMSPACE, but does not import it' "$noimport/log" ||
	{ cat "$noimport/log" >&2; vmk_die "the module without the import failed for another reason"; }
vmk_log "a module without MODULE_IMPORT_NS(\"VMSPACE\") is refused by modpost: ok"
