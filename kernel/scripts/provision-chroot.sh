#!/bin/bash
# Provision the Debian sid build chroot in $VMK_CACHE/chroot. Idempotent:
# each step is behind a stamp file and is skipped when already done.
# Records the versions used in $VMK_CACHE/versions and prints them.
. "$(dirname "$0")/common.sh"
vmk_need_root
vmk_lock provision

# 1. debootstrap on the host.
if ! command -v debootstrap >/dev/null; then
	vmk_log "installing debootstrap on the host"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
fi

# 2. The base system.
if [ ! -e "$VMK_CHROOT/.vmk-debootstrap-done" ]; then
	if [ -d "$VMK_CHROOT" ]; then
		# A half-made chroot from an interrupted run. Never delete it while
		# anything is mounted inside it (our mounts live in private
		# namespaces, but be sure).
		if grep -q " $VMK_CHROOT/" /proc/mounts; then
			vmk_die "something is mounted under $VMK_CHROOT; unmount it first"
		fi
		vmk_log "removing incomplete chroot $VMK_CHROOT"
		rm -rf --one-file-system "$VMK_CHROOT"
	fi
	vmk_log "debootstrap --variant=minbase $VMK_SUITE into $VMK_CHROOT (a few minutes)"
	mkdir -p "$VMK_CACHE"
	debootstrap --variant=minbase "$VMK_SUITE" "$VMK_CHROOT" "$VMK_MIRROR"
	touch "$VMK_CHROOT/.vmk-debootstrap-done"
fi

# The mirror may serve a sid Release file past its Valid-Until date (a
# frozen mirror); its signature is still checked.
mkdir -p "$VMK_CHROOT/etc/apt/apt.conf.d"
printf 'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n' \
	>"$VMK_CHROOT/etc/apt/apt.conf.d/99vmspace"

# 3. The toolchain and the kernel source package.
want_key="$VMK_SUITE $VMK_PACKAGES $VMK_WANT_RUSTC $VMK_WANT_LINUX"
stamp=$VMK_CACHE/stamp-packages
if [ ! -e "$stamp" ] || [ "$(cat "$stamp")" != "$want_key" ] || [ ! -s "$VMK_CACHE/versions" ]; then
	vmk_log "installing the toolchain into the chroot"
	# shellcheck disable=SC2086
	vmk_chroot /bin/bash -c "$(cat "$(dirname "$0")/chroot-packages.sh")" chroot-packages \
		"$VMK_WANT_RUSTC" "$VMK_WANT_LINUX" "$VMK_CACHE/versions" $VMK_PACKAGES
	printf '%s' "$want_key" >"$stamp"
fi

vmk_log "toolchain and kernel versions ($VMK_CACHE/versions):"
sed 's/^/    /' "$VMK_CACHE/versions" >&2
