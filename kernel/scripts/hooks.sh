#!/bin/bash
# hooks.sh TREE: wire vmspace into a kernel tree as a built-in component, the
# way OpenZFS's copy-builtin does: a symlink to the project plus one obj- line
# in the tree's top-level Kbuild and one source line in its top-level Kconfig.
# Idempotent. The symlink points at the fixed in-chroot project path
# (/src/vmspace), so the tree builds inside the chroot whatever the host path.
. "$(dirname "$0")/common.sh"
tree=${1:?usage: hooks.sh TREE}

obj_line='obj-$(CONFIG_VMSPACE)	+= vmspace/'
src_line='source "vmspace/kernel/Kconfig"'

if [ "$(readlink "$tree/vmspace" 2>/dev/null)" != "$VMK_SRC" ]; then
	rm -f "$tree/vmspace"
	ln -s "$VMK_SRC" "$tree/vmspace"
fi
# vmspace's C API header, where modules include it: <linux/vmspace.h>.
ln -sfn ../../vmspace/capi/include/vmspace.h "$tree/include/linux/vmspace.h"
grep -qxF "$obj_line" "$tree/Kbuild" || printf '%s\n' "$obj_line" >>"$tree/Kbuild"
grep -qxF "$src_line" "$tree/Kconfig" || printf '\n%s\n' "$src_line" >>"$tree/Kconfig"
