#!/bin/bash
# kunit-qemu.sh [kunit.py args...]: the cross-check of `make kunit` on
# x86_64 under qemu (TCG; /dev/kvm is hidden, see in-chroot.sh). Installs
# qemu into the chroot once, builds an x86_64 kernel with the built-in
# component in $VMK_CACHE/build-x86_64 and runs the same KUnit suites.
# Cold: about as long as the UML build, plus a minute of qemu boot and tests.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock x86_64

if [ ! -e "$VMK_CACHE/stamp-qemu" ]; then
	vmk_log "installing qemu-system-x86 into the chroot"
	vmk_chroot /bin/sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends qemu-system-x86 qemu-system-data'
	touch "$VMK_CACHE/stamp-qemu"
fi

json=$VMK_CACHE/results/kunit-x86_64.json
mkdir -p "$VMK_CACHE/results"
rm -f "$json"
start=$(date +%s)
status=0
vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 /bin/sh -c \
	'cd "$1" && shift && exec python3 tools/testing/kunit/kunit.py "$@"' sh \
	"$VMK_CACHE/linux" run --arch=x86_64 --build_dir="$VMK_CACHE/build-x86_64" \
	--kunitconfig="$VMK_SRC/kernel/.kunitconfig" --jobs="$VMK_JOBS" --timeout=900 \
	--json="$json" "$@" || status=$?
vmk_log "kunit.py (x86_64, qemu) finished with status $status in $(($(date +%s) - start)) s"
if [ -f "$json" ]; then
	vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" kunit-x86_64 "$json" || { [ "$status" != 0 ] || status=1; }
fi
exit $status
