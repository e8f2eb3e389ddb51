#!/bin/bash
# Runs in a private mount namespace (see vmk_chroot in common.sh):
#   in-chroot.sh CHROOT CACHE REPO SRC CMD...
# binds the host directories into CHROOT, runs CMD there, unmounts on exit.
set -euo pipefail
chroot_dir=$1 cache=$2 repo=$3 src=$4
shift 4

mounted=()
cleanup() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
	done
}
trap cleanup EXIT

bind() { # bind HOSTDIR CHROOT-RELATIVE-DIR
	mkdir -p "$chroot_dir$2"
	mount --bind "$1" "$chroot_dir$2"
	mounted+=("$chroot_dir$2")
}

mkdir -p "$chroot_dir/proc"
mount -t proc proc "$chroot_dir/proc"
mounted+=("$chroot_dir/proc")
bind /dev /dev
bind /dev/pts /dev/pts
bind /dev/shm /dev/shm
# /dev/kvm hangs qemu guests on these machines: hide it (qemu falls back to TCG).
if [ -e "$chroot_dir/dev/kvm" ]; then
	mount --bind /dev/null "$chroot_dir/dev/kvm"
	mounted+=("$chroot_dir/dev/kvm")
fi
bind "$cache" "$cache"
bind "$repo" "$src"
cp -L /etc/resolv.conf "$chroot_dir/etc/resolv.conf" 2>/dev/null || true

status=0
chroot "$chroot_dir" /usr/bin/env -i \
	HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	DEBIAN_FRONTEND=noninteractive \
	"$@" || status=$?
exit $status
