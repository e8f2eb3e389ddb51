# Kernel targets of vmspace. The root Makefile includes this fragment.
#
#   make kunit             provision the chroot and tree (cached), build a UML
#                          kernel with the built-in component, run its KUnit suites
#   make module            build the out-of-tree module vmspace_kmod.ko
#   make module-test       boot UML, insmod the module, parse its KTAP with kunit.py
#   make kunit-qemu        cross-check: the same suites on x86_64 under qemu (TCG)
#   make kernel-proptest   boot UML and run the property tests, the fuzz corpus
#                          and an ioctl fuzz through /dev/vmspace (built-in)
#                          and /dev/vmspace_kmod (module)
#   make kunit-debug       the built-in and module suites on a second UML kernel
#                          with KASAN, lockdep, atomic-sleep and preemption
#                          debugging, full preemption, Rust overflow checks
#   make kunit-kcsan       the built-in suites on x86_64 under qemu with KCSAN
#   make kernel-notest     a kernel without CONFIG_VMSPACE_KUNIT_TEST has no
#                          vmspace test code (object list and nm)
#   make kernel-provision  only provision (chroot, toolchain, tree, hooks)
#   make kernel-versions   print the toolchain and kernel versions the build uses
#
# Everything heavy is cached in /var/cache/vmspace-kernel (VMK_CACHE); see
# kernel/scripts/common.sh. All targets are idempotent.

VMK_SCRIPTS := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/scripts

.PHONY: kunit kunit-qemu kunit-debug kunit-kcsan kernel-notest module module-test \
	kernel-provision kernel-versions kernel-proptest

kunit:
	bash $(VMK_SCRIPTS)/kunit.sh

kunit-qemu:
	bash $(VMK_SCRIPTS)/kunit-qemu.sh

kunit-debug:
	bash $(VMK_SCRIPTS)/kunit-debug.sh

kunit-kcsan:
	bash $(VMK_SCRIPTS)/kunit-kcsan.sh

kernel-notest:
	bash $(VMK_SCRIPTS)/kernel-notest.sh

module:
	bash $(VMK_SCRIPTS)/module.sh

module-test:
	bash $(VMK_SCRIPTS)/module-test.sh

kernel-proptest:
	bash $(VMK_SCRIPTS)/kernel-proptest.sh

kernel-provision:
	bash $(VMK_SCRIPTS)/provision-chroot.sh
	bash $(VMK_SCRIPTS)/provision-tree.sh

kernel-versions:
	@cat $${VMK_CACHE:-/var/cache/vmspace-kernel}/versions
