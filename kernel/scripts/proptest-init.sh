#!/bin/sh
# PID 1 of the UML guest that `make kernel-proptest` boots (hostfs root = the
# chroot, the project at /src/vmspace). Runs the test binaries listed in
# VMK_PLAN (lines "BINARY FILTER", FILTER "-" for all of a binary's tests)
# against the built-in /dev/vmspace, then loads the module and runs them
# against /dev/vmspace_kmod, each between markers the host parses; then
# unloads the module and powers the guest off. Environment from the kernel
# command line: VMK_PLAN, VMK_MODULE.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
# A guest-only filesystem for the device nodes (no devtmpfs in this kernel).
mount -t ramfs ramfs /mnt
# Markers go to the kernel log, in order with the kernel's own messages
# (which reach the console, the host's log file, like the tests' output).
mark() { echo "kernel-proptest: $*" >/dev/kmsg; }

# node NAME: make /mnt/NAME for the misc device NAME; prints its path.
node() {
	[ -r "/sys/class/misc/$1/dev" ] || return 1
	dev=$(cat "/sys/class/misc/$1/dev")
	mknod "/mnt/$1" c "${dev%%:*}" "${dev##*:}" && echo "/mnt/$1"
}

# run LABEL DEVICE: every binary of the plan against DEVICE.
run() {
	label=$1 device=$2
	while read -r bin filter; do
		[ -n "$bin" ] || continue
		name=$(basename "$bin")
		mark "begin $label $name"
		if [ "$filter" = - ]; then set --; else set -- "$filter"; fi
		# Plain output, and the tests' own counts (stderr) in the log.
		set -- "$@" --color=never --nocapture
		(cd /src/vmspace && VMSPACE_DEVICE=$device VMSPACE_SRC=/src/vmspace RUST_BACKTRACE=1 \
			"$bin" "$@" </dev/null 2>&1)
		mark "status $label $name $?"
	done <"$VMK_PLAN"
}

mark begin
if path=$(node vmspace); then
	run builtin "$path"
else
	mark "no /dev/vmspace in this kernel"
fi
if insmod "$VMK_MODULE"; then
	mark insmod ok
	if path=$(node vmspace_kmod); then
		run module "$path"
	else
		mark "no /dev/vmspace_kmod"
	fi
	# An open file keeps the module loaded.
	if exec 3<>/mnt/vmspace_kmod; then
		if rmmod vmspace_kmod 2>/dev/null; then mark rmmod while open succeeded; else mark rmmod busy ok; fi
		exec 3>&-
	fi
	if rmmod vmspace_kmod; then mark rmmod ok; else mark rmmod failed; fi
else
	mark insmod failed
fi
mark end
echo o >/proc/sysrq-trigger
sleep 10
