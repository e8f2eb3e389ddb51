#!/bin/bash
# kunit.sh [kunit.py args...]: provision the chroot and the tree if needed,
# then build a UML kernel with Rust, KUnit and the built-in vmspace component
# and run its KUnit suites. VMK_FLAVOUR picks the build (common.sh:
# vmk_flavour; `debug` is the kernel of `make kunit-debug`). Exits non-zero
# on any failure: a failed or missing case, a kunitconfig option that did
# not make it into the generated .config, a symbol too long for the kernel
# (vmk_long_symbols) or a call to a compiler helper x86_64 lacks
# (vmk_missing_helpers), or a checker's report (BUG:,
# WARNING:, lockdep, KASAN, ...: VMK_SPLATS) in the kernel log, even when
# every case passed.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"
vmk_lock "$VMK_UM_LOCK"

label=kunit$VMK_UM_SUFFIX
json=$VMK_CACHE/results/$label.json
log=$VMK_CACHE/results/$label.log
mkdir -p "$VMK_CACHE/results"
rm -f "$json" "$log" "$VMK_UM_BUILD/test.log"
vmk_log "kunit.py run --arch=um in $VMK_UM_BUILD ${VMK_UM_MAKE[*]:+(${VMK_UM_MAKE[*]}) }(cold build 6-13 minutes on 2 cores, warm about 15 s)"
start=$(date +%s)
status=0
# Two virtual CPUs (CONFIG_SMP in kunitconfig.uml); UML runs SMP guests
# only with its seccomp userspace.
vmk_kunit_py run --kernel_args=ncpus=2 --kernel_args=seccomp=on --json="$json" "$@" || status=$?
vmk_log "kunit.py finished with status $status in $(($(date +%s) - start)) s; results in $json"

# kunit.py drops options whose dependencies fail only with a message: every
# option our kunitconfigs set must be in the generated .config.
missing=$(for f in $VMK_UM_KUNITCONFIGS; do sed -n 's/^\(CONFIG_[A-Z0-9_]*=.*\)$/\1/p' "$VMK_REPO/kernel/${f##*/}"; done |
	sort -u | while read -r opt; do grep -qxF "$opt" "$VMK_UM_BUILD/.config" || echo "$opt"; done)
if [ -n "$missing" ]; then
	vmk_log "options missing from $VMK_UM_BUILD/.config (unmet dependencies?): $(echo $missing)"
	status=1
fi

# A symbol too long for the kernel links on UML but not on x86_64.
if [ -f "$VMK_UM_BUILD/vmlinux" ]; then
	long=$(vmk_long_symbols "$VMK_UM_BUILD/vmlinux")
	if [ -n "$long" ]; then
		vmk_log "symbols of 512 characters or more in vmlinux (KSYM_NAME_LEN; objtool refuses them on x86_64):"
		echo "$long" | cut -c1-200 >&2
		status=1
	fi
fi
if [ -f "$VMK_UM_BUILD/vmspace/built-in.a" ]; then
	helpers=$(vmk_missing_helpers "$VMK_UM_BUILD/vmspace/built-in.a")
	if [ -n "$helpers" ]; then
		vmk_log "vmspace calls compiler helpers the x86_64 kernel lacks: $(echo $helpers)"
		status=1
	fi
fi

reports=0
if [ -f "$VMK_UM_BUILD/test.log" ]; then
	cp "$VMK_UM_BUILD/test.log" "$log"
	reports=$(vmk_splats "$log" | wc -l)
	if [ "$reports" != 0 ]; then
		vmk_log "checker reports in the kernel log ($log):"
		vmk_splats "$log" | head -n 20 >&2
		status=1
	fi
fi
if [ -f "$json" ]; then
	# One plain closing line for CI: "kunit: N passed, N failed, N skipped, N checker reports".
	vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" "$label" "$json" "$reports" || { [ "$status" != 0 ] || status=1; }
else
	status=1
fi
exit $status
