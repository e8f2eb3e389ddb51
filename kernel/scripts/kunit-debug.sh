#!/bin/bash
# kunit-debug.sh: the built-in and module KUnit suites on a second UML
# kernel, build-um-debug (same chroot and tree as `make kunit`), built with
# clang and the kernel's own checkers (kernel/kunitconfig.debug: KASAN with
# vmalloc checking, lockdep, atomic-sleep and preemption debugging, full
# preemption, list and VM debugging, Rust overflow checks and debug
# assertions). Fails on any failed case, any option missing from the
# generated .config, or any checker report in either kernel log; each run
# ends with its count line (kunit-debug: ..., module-test-debug: ...).
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
export VMK_FLAVOUR=debug
start=$(date +%s)
status=0
bash "$here/kunit.sh" "$@" || status=$?
bash "$here/module-test.sh" || status=$?
vmk_log "kunit-debug took $(($(date +%s) - start)) s"
exit $status
