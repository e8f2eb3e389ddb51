#!/bin/bash
# kernel-notest.sh: show that a kernel built without CONFIG_VMSPACE_KUNIT_TEST
# has no vmspace test code in it. The UML kernel of `make kunit` (build-um)
# is configured again without that one symbol in its own build directory,
# build-um-notest, and linked; then
#  - its .config differs from build-um's in CONFIG_VMSPACE_KUNIT_TEST only;
#  - vmspace's object list (vmspace/built-in.a) names no workload or KUnit
#    object, and vmlinux has no symbol of the workload or KUnit crates and
#    no KUnit case wrapper (VMK_TEST_SYMBOLS in common.sh);
#  - the same nm check finds such symbols in build-um's vmlinux (so the
#    pattern does match test code when there is some).
# The first run seeds build-um-notest with a copy of build-um, so only what
# depends on the symbol is rebuilt: about a minute, not a cold kernel build.
# It first builds the product module (module.sh: no test code in it either).
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/module.sh" product
vmk_lock um

src=$VMK_CACHE/build-um
build=$VMK_CACHE/build-um-notest
start=$(date +%s)
if [ ! -f "$src/.config" ]; then
	vmk_log "no $src/.config yet: configuring the kunit build first"
	vmk_kunit_py config
fi
if [ ! -f "$build/.config" ]; then
	vmk_log "seeding $build from $src"
	rm -rf "$build.tmp"
	cp -a "$src" "$build.tmp"
	mv "$build.tmp" "$build"
fi
# The kunit build's configuration without CONFIG_VMSPACE_KUNIT_TEST.
sed 's/^CONFIG_VMSPACE_KUNIT_TEST=y$/# CONFIG_VMSPACE_KUNIT_TEST is not set/' "$src/.config" >"$build/.config.want"
cmp -s "$build/.config.want" "$build/.config.seed" 2>/dev/null || cp "$build/.config.want" "$build/.config"
cp "$build/.config.want" "$build/.config.seed"
vmk_chroot make -s -C "$VMK_CACHE/linux" ARCH=um O="$build" olddefconfig
grep -qx 'CONFIG_VMSPACE=y' "$build/.config" || vmk_die "CONFIG_VMSPACE is not set in $build/.config"
if grep -q '^CONFIG_VMSPACE_KUNIT_TEST=' "$build/.config"; then
	vmk_die "CONFIG_VMSPACE_KUNIT_TEST is still set in $build/.config"
fi
changed=$(diff <(grep '^CONFIG_' "$src/.config") <(grep '^CONFIG_' "$build/.config") | grep '^[<>]' || true)
[ "$changed" = "< CONFIG_VMSPACE_KUNIT_TEST=y" ] ||
	vmk_die "the configurations differ in more than CONFIG_VMSPACE_KUNIT_TEST: $changed"

vmk_chroot make -s -C "$VMK_CACHE/linux" ARCH=um O="$build" -j"$VMK_JOBS" vmlinux

objs=$(vmk_chroot ar t "$build/vmspace/built-in.a")
printf '%s\n' "$objs" | grep -q 'src/lib.o' || vmk_die "no core crate in $build/vmspace/built-in.a"
if printf '%s\n' "$objs" | grep -E 'workload|ktest|suite'; then
	vmk_die "test objects in $build/vmspace/built-in.a"
fi
found=$(vmk_test_symbols "$build/vmlinux" | wc -l)
[ "$found" = 0 ] || { vmk_test_symbols "$build/vmlinux" | head >&2; vmk_die "test code in $build/vmlinux ($found symbols)"; }
control=$(vmk_test_symbols "$src/vmlinux" | wc -l)
[ "$control" -gt 0 ] || vmk_die "the check finds no test symbols in $src/vmlinux either: the pattern is wrong"
vmk_log "kernel-notest took $(($(date +%s) - start)) s"
echo "kernel-notest: vmspace objects $(printf '%s\n' "$objs" | wc -l), test symbols 0 (the kunit build has $control)"
