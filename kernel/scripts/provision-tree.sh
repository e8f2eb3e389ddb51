#!/bin/bash
# Unpack the chroot's linux-source tarball into $VMK_CACHE/linux (a fixed
# path) once, behind a stamp keyed on the kernel and toolchain versions, then
# apply our in-tree hooks (idempotent, see hooks.sh).
. "$(dirname "$0")/common.sh"
vmk_need_root
vmk_lock provision

versions=$VMK_CACHE/versions
[ -s "$versions" ] || vmk_die "no $versions: run provision-chroot.sh first"
tree=$VMK_CACHE/linux
stamp=$VMK_CACHE/stamp-tree
key=$(grep -E '^(rustc|rust_src_pkg|bindgen|linux_source_version)=' "$versions")

if [ ! -e "$stamp" ] || [ "$(cat "$stamp")" != "$key" ] || [ ! -f "$tree/Makefile" ]; then
	tarball=$VMK_CHROOT$(sed -n 's/^linux_source_tarball=//p' "$versions")
	[ -f "$tarball" ] || vmk_die "missing $tarball"
	vmk_log "unpacking $(basename "$tarball") into $tree"
	# A new kernel or toolchain invalidates the tree and every build made from it.
	rm -rf "$tree" "$tree.tmp" "$VMK_CACHE"/build-* "$VMK_CACHE"/module-build* \
		"$VMK_CACHE/stamp-tree"
	mkdir -p "$tree.tmp"
	tar -xf "$tarball" -C "$tree.tmp" --strip-components=1
	mv "$tree.tmp" "$tree"
	printf '%s' "$key" >"$stamp"
fi

bash "$(dirname "$0")/hooks.sh" "$tree"
vmk_log "kernel tree: $tree ($(make -s -C "$tree" kernelversion 2>/dev/null || echo unknown))"
