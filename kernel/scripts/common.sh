# shellcheck shell=bash
# Common settings for the kernel build scripts. Sourced, never executed.
#
# Everything heavy lives in a cache outside the repository, at fixed absolute
# paths, so that a clone anywhere on the host builds the same tree:
#   $VMK_CACHE/chroot        Debian sid chroot (debootstrap --variant=minbase)
#   $VMK_CACHE/linux-<ver>   unpacked linux-source, with our in-tree hooks
#   $VMK_CACHE/build-um      kunit.py build directory (UML)
#   $VMK_CACHE/versions      toolchain and kernel versions the build used
# The cache itself is bind-mounted at the same path inside the chroot, and the
# project directory at $VMK_SRC (/src/vmspace), whatever its host path.

set -euo pipefail

VMK_CACHE=${VMK_CACHE:-/var/cache/vmspace-kernel}
VMK_CHROOT=$VMK_CACHE/chroot
VMK_SRC=/src/vmspace
VMK_MIRROR=${VMK_MIRROR:-http://deb.debian.org/debian}
VMK_SUITE=${VMK_SUITE:-sid}
VMK_JOBS=${VMK_JOBS:-2}

# Known-good versions (see DESIGN.md, "Kernel builds"). Preferred when the
# mirror still has them; otherwise we say so and use what is there.
VMK_WANT_RUSTC=${VMK_WANT_RUSTC:-1.97.1}
VMK_WANT_LINUX=${VMK_WANT_LINUX:-7.2}

VMK_PACKAGES="rustc rust-src bindgen libclang-dev clang lld llvm build-essential
flex bison bc libelf-dev libssl-dev python3 cpio kmod rsync xz-utils ca-certificates"

# The repository root on the host (the directory holding this kernel/ dir).
VMK_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

vmk_log() { printf '[vmspace-kernel] %s\n' "$*" >&2; }
vmk_die() { vmk_log "error: $*"; exit 1; }

vmk_need_root() {
	[ "$(id -u)" = 0 ] || vmk_die "must run as root (debootstrap, chroot, mounts)"
}

# Run "$@" inside the chroot, with /proc, /dev, /dev/pts, /dev/shm, the cache
# and the project bound in. The mounts are made in a private mount namespace
# (unshare), so they vanish when the command ends even if it is killed; an
# EXIT trap unmounts them explicitly as well. The chroot is never deleted by
# this function, and nothing outside the namespace ever sees /dev bound into it.
vmk_chroot() {
	[ -x "$VMK_CHROOT/usr/bin/env" ] || vmk_die "no chroot at $VMK_CHROOT (run provision first)"
	unshare --mount --propagation private -- \
		bash "$VMK_REPO/kernel/scripts/in-chroot.sh" "$VMK_CHROOT" "$VMK_CACHE" \
		"$VMK_REPO" "$VMK_SRC" "$@"
}

# Run kunit.py (from the cached tree) inside the chroot for UML with our
# kunitconfigs (common + UML-only) and build directory:
# vmk_kunit_py SUBCOMMAND [ARGS...].
vmk_kunit_py() {
	local sub=$1
	shift
	vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 /bin/sh -c \
		'cd "$1" && shift && exec python3 tools/testing/kunit/kunit.py "$@"' sh \
		"$VMK_CACHE/linux" "$sub" --arch=um --build_dir="$VMK_CACHE/build-um" \
		--kunitconfig="$VMK_SRC/kernel/.kunitconfig" \
		--kunitconfig="$VMK_SRC/kernel/kunitconfig.uml" --jobs="$VMK_JOBS" "$@"
}

# Serialise users of one part of the cache: vmk_lock NAME takes
# $VMK_CACHE/.lock-NAME for the rest of the script. "provision" guards the
# chroot and the tree; each build directory has its own ("um", "x86_64"),
# so a long qemu build does not hold up UML runs.
vmk_lock() {
	mkdir -p "$VMK_CACHE"
	exec 9>"$VMK_CACHE/.lock-${1:?vmk_lock NAME}"
	flock 9
}
