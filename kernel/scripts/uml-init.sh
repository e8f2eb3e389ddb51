#!/bin/sh
# PID 1 of the UML guest that `make module-test` boots (hostfs root = the
# chroot). Loads and unloads the module between markers in the kernel log,
# then powers the guest off. Usage (kernel command line): init=<this> with
# VMK_MODULE=<path of the .ko> in the environment (set by kernel arguments).
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mark() { echo "vmspace-module-test: $*" >/dev/kmsg; }
mark begin
if insmod "$VMK_MODULE"; then
	mark insmod ok
	if rmmod "$(basename "$VMK_MODULE" .ko)"; then mark rmmod ok; else mark rmmod failed; fi
else
	mark insmod failed
fi
mark end
echo o >/proc/sysrq-trigger
sleep 10
