# shellcheck shell=bash
# Common settings for the kernel build scripts. Sourced, never executed.
#
# Everything heavy lives in a cache outside the repository, at fixed absolute
# paths, so that a clone anywhere on the host builds the same tree:
#   $VMK_CACHE/chroot        Debian sid chroot (debootstrap --variant=minbase)
#   $VMK_CACHE/linux-<ver>   unpacked linux-source, with our in-tree hooks
#   $VMK_CACHE/build-um*     kunit.py build directories (UML; see vmk_flavour)
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

# Known-good versions (recorded at the end of README.md's kernel section).
# Preferred when the mirror still has them; otherwise we say so and use what
# is there.
VMK_WANT_RUSTC=${VMK_WANT_RUSTC:-1.97.1}
VMK_WANT_LINUX=${VMK_WANT_LINUX:-7.2}

VMK_PACKAGES="rustc rust-src rust-clippy bindgen libclang-dev clang lld llvm build-essential
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

# The UML kernel builds, each in its own build directory of the same tree
# and chroot, chosen by VMK_FLAVOUR:
#   (unset)  build-um: gcc, PREEMPT_VOLUNTARY; `make kunit`, `make module-test`
#   debug    build-um-debug: clang (LLVM=1), KASAN, lockdep, atomic-sleep and
#            preemption debugging, full preemption (kernel/kunitconfig.debug);
#            `make kunit-debug`
# vmk_flavour sets VMK_UM_BUILD (build directory), VMK_UM_LOCK (vmk_lock
# name), VMK_UM_MAKE (make variables, an array), VMK_UM_KUNITCONFIGS (kunit.py
# arguments) and VMK_UM_SUFFIX (for file names: "" or "-debug").
vmk_flavour() {
	VMK_UM_KUNITCONFIGS="--kunitconfig=$VMK_SRC/kernel/.kunitconfig --kunitconfig=$VMK_SRC/kernel/kunitconfig.uml"
	case "${VMK_FLAVOUR:-}" in
	"")
		VMK_UM_BUILD=$VMK_CACHE/build-um VMK_UM_LOCK=um VMK_UM_MAKE=() VMK_UM_SUFFIX=
		;;
	debug)
		# clang, and gcc's large-data threshold: with -mcmodel=large (UML)
		# clang puts every global into .ldata/.lbss, and UML's linker script
		# leaves .lbss past _end, where lockdep's static_obj() does not look:
		# it would reject the lock class keys there (rcu_read_lock's among
		# them), report a "bad unlock balance" at boot and turn itself off.
		# (The vDSO is built without -mcmodel=large, hence the second flag.)
		VMK_UM_BUILD=$VMK_CACHE/build-um-debug VMK_UM_LOCK=um-debug VMK_UM_SUFFIX=-debug
		VMK_UM_MAKE=(LLVM=1 "KCFLAGS=-mlarge-data-threshold=65536 -Wno-unused-command-line-argument")
		VMK_UM_KUNITCONFIGS="$VMK_UM_KUNITCONFIGS --kunitconfig=$VMK_SRC/kernel/kunitconfig.debug"
		;;
	*) vmk_die "unknown VMK_FLAVOUR=$VMK_FLAVOUR (known: debug)" ;;
	esac
}
vmk_flavour

# The sources a kernel build of this checkout compiles, as one hash of
# their paths and contents (what vmk_fresh_objects compares).
vmk_source_hash() {
	(cd "$VMK_REPO" && find src shim workload abi capi/src capi/include kernel Kbuild \
		-type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild \
		-o -name '*.kbuild' -o -name Makefile -o -name Kconfig \) -print0 |
		LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# vmk_fresh_objects DIR [SUB]: kbuild rebuilds what is older than its
# sources, and the cache's build directories serve every checkout on the
# host, so a checkout whose sources are older than another's objects would
# be tested on those objects. When this checkout's sources differ from
# those DIR was last built from (DIR/.vmspace-sources), drop vmspace's
# objects there: DIR/SUB for a kernel build, everything in DIR for a
# module's (no SUB), so that they are built again.
vmk_fresh_objects() {
	local dir=$1 sub=${2:-} hash
	hash=$(vmk_source_hash)
	if [ -d "$dir" ] && [ "$(cat "$dir/.vmspace-sources" 2>/dev/null)" != "$hash" ]; then
		vmk_log "$dir was last built from other sources: building vmspace's objects again"
		if [ -n "$sub" ]; then
			rm -rf "${dir:?}/$sub"
		else
			find "$dir" -mindepth 1 -delete
		fi
	fi
	mkdir -p "$dir"
	echo "$hash" >"$dir/.vmspace-sources"
}

# Run kunit.py (from the cached tree) inside the chroot for UML with the
# flavour's kunitconfigs, make variables and build directory:
# vmk_kunit_py SUBCOMMAND [ARGS...].
vmk_kunit_py() {
	local sub=$1
	shift
	vmk_fresh_objects "$VMK_UM_BUILD" vmspace
	local opt make_options=()
	for opt in "${VMK_UM_MAKE[@]}"; do make_options+=("--make_options=$opt"); done
	# shellcheck disable=SC2086
	vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 /bin/sh -c \
		'cd "$1" && shift && exec python3 tools/testing/kunit/kunit.py "$@"' sh \
		"$VMK_CACHE/linux" "$sub" --arch=um --build_dir="$VMK_UM_BUILD" \
		$VMK_UM_KUNITCONFIGS "${make_options[@]}" --jobs="$VMK_JOBS" "$@"
}

# Kernel log lines that mean a checker or the kernel itself found something
# wrong, whatever the tests said: BUG: (KASAN, KCSAN, atomic sleep, ...),
# WARNING: (lockdep, WARN_ON), and the splats that may come without either.
VMK_SPLATS='BUG:|WARNING:|KASAN:|KCSAN:|UBSAN:|possible circular locking|inconsistent lock state|possible recursive locking|sleeping function called from invalid context|scheduling while atomic|suspicious RCU usage|DEBUG_LOCKS_WARN_ON|Kernel panic|Oops'
# vmk_splats LOG: print the splat lines of LOG (on the host); the count is
# what `grep -c` would say.
vmk_splats() {
	grep -aE "$VMK_SPLATS" "$1" || true
}

# Symbols that only test code defines: the workload and KUnit crates
# (Rust v0 mangling spells crate names out) and the KUnit case wrappers of
# #[kunit_tests]. vmk_test_symbols FILE... prints those FILE's symbols hold.
VMK_TEST_SYMBOLS='vmspace_workload|vmspace_ktest|kunit_rust_wrapper'
vmk_test_symbols() {
	vmk_chroot /bin/sh -c 'nm -A "$@" 2>/dev/null | grep -E "$0" || true' \
		"$VMK_TEST_SYMBOLS" "$@"
}

# Symbols the kernel cannot carry: names of KSYM_NAME_LEN (512) characters
# or more, which kallsyms drops with a warning on UML and objtool refuses on
# x86_64 (generic Rust code instantiated with long type names).
# vmk_long_symbols FILE prints them.
vmk_long_symbols() {
	vmk_chroot /bin/sh -c 'nm "$1" 2>/dev/null | awk "length(\$3) >= 512 { print \$3 }"' sh "$1"
}

# Compiler helpers the x86_64 kernel does not provide (UML links them from
# the host's libgcc): 128-bit division and remainder. vmk_missing_helpers
# ARCHIVE prints those vmspace's objects in ARCHIVE call.
vmk_missing_helpers() {
	vmk_chroot /bin/sh -c 'nm -u "$1" 2>/dev/null | grep -oE "__u?(div|mod)ti3" | sort -u' sh "$1"
}

# vmk_kunit_verdict LABEL BUILD STATUS KUNITCONFIG...: the closing checks of
# a kunit.py run in BUILD that ended with STATUS, for results/LABEL.json:
# every option of the KUNITCONFIG files (names under kernel/) made it into
# the generated .config (kunit.py drops options whose dependencies fail with
# only a message); no symbol too long for the kernel and no call to a
# compiler helper x86_64 lacks; no checker's report in the kernel log
# (copied to results/LABEL.log); then count.py's closing line ("LABEL: N
# passed, N failed, N skipped, N checker reports"). Returns non-zero if
# STATUS was or any check fails.
vmk_kunit_verdict() {
	local label=$1 build=$2 status=$3
	shift 3
	local json=$VMK_CACHE/results/$label.json log=$VMK_CACHE/results/$label.log
	local missing long helpers reports=0 f
	missing=$(for f in "$@"; do sed -n 's/^\(CONFIG_[A-Z0-9_]*=.*\)$/\1/p' "$VMK_REPO/kernel/$f"; done |
		sort -u | while read -r opt; do grep -qxF "$opt" "$build/.config" || echo "$opt"; done)
	if [ -n "$missing" ]; then
		vmk_log "options missing from $build/.config (unmet dependencies?): $(echo $missing)"
		status=1
	fi
	if [ -f "$build/vmlinux" ]; then
		long=$(vmk_long_symbols "$build/vmlinux")
		if [ -n "$long" ]; then
			vmk_log "symbols of 512 characters or more in vmlinux (KSYM_NAME_LEN; objtool refuses them on x86_64):"
			echo "$long" | cut -c1-200 >&2
			status=1
		fi
	fi
	if [ -f "$build/vmspace/built-in.a" ]; then
		helpers=$(vmk_missing_helpers "$build/vmspace/built-in.a")
		if [ -n "$helpers" ]; then
			vmk_log "vmspace calls compiler helpers the x86_64 kernel lacks: $(echo $helpers)"
			status=1
		fi
	fi
	if [ -f "$build/test.log" ]; then
		cp "$build/test.log" "$log"
		reports=$(vmk_splats "$log" | wc -l)
		if [ "$reports" != 0 ]; then
			vmk_log "checker reports in the kernel log ($log):"
			vmk_splats "$log" | head -n 20 >&2
			status=1
		fi
	fi
	if [ -f "$json" ]; then
		vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" "$label" "$json" "$reports" || { [ "$status" != 0 ] || status=1; }
	else
		status=1
	fi
	return "$status"
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

# vmk_insmod_test LABEL BUILD KO GLOB: boot the UML kernel BUILD with the
# chroot as its hostfs root, insmod KO (its KUnit suites, those matching
# GLOB, run on load), rmmod it, cut the log to the module's KTAP block,
# parse it with `kunit.py parse` into results/LABEL.json and end with
# count.py's line ("LABEL: N passed, N failed, N skipped, N checker
# reports"). Returns non-zero if the module does not load or unload, any
# case fails, or the log, boot to power-off, holds a checker's report.
vmk_insmod_test() {
	local label=$1 build=$2 ko=$3 glob=$4
	local results=$VMK_CACHE/results
	local log=$results/$label.log ktap=$results/$label.ktap json=$results/$label.json
	local start status=0 reports
	mkdir -p "$results"
	rm -f "$log" "$ktap" "$json"
	vmk_log "booting UML and loading $(basename "$ko")"
	start=$(date +%s%N)
	# Inside the chroot, "/" is the chroot: the guest's hostfs root. Only the
	# module's own suites run (kunit.filter_glob).
	vmk_chroot /usr/bin/timeout 300 "$build/linux" mem=1G ncpus=2 seccomp=on console=tty \
		root=/dev/root rootfstype=hostfs rootflags=/ rw \
		init="$VMK_SRC/kernel/scripts/uml-init.sh" VMK_MODULE="$ko" \
		kunit.filter_glob="$glob" </dev/null >"$log" 2>&1 || status=$?
	vmk_log "UML exited with status $status after $((($(date +%s%N) - start) / 1000000)) ms; log in $log"

	grep -q 'vmspace-module-test: insmod ok' "$log" || { tail -n 40 "$log" >&2; vmk_die "insmod failed"; }
	grep -q 'vmspace-module-test: rmmod ok' "$log" || { tail -n 40 "$log" >&2; vmk_die "rmmod failed"; }
	grep -m1 "$(basename "$ko" .ko): loaded" "$log" >&2 || true
	sed -n '/vmspace-module-test: begin/,/vmspace-module-test: insmod ok/p' "$log" >"$ktap"
	grep -q 'KTAP version' "$ktap" || vmk_die "no KTAP output from the module in $log"

	status=0
	vmk_chroot /usr/bin/env PYTHONUNBUFFERED=1 python3 "$VMK_CACHE/linux/tools/testing/kunit/kunit.py" \
		parse --json="$json" "$ktap" || status=$?
	reports=$(vmk_splats "$log" | wc -l)
	if [ "$reports" != 0 ]; then
		vmk_log "checker reports in the kernel log ($log):"
		vmk_splats "$log" | head -n 20 >&2
		status=1
	fi
	vmk_chroot python3 "$VMK_SRC/kernel/scripts/count.py" "$label" "$json" "$reports" || { [ "$status" != 0 ] || status=1; }
	return $status
}
