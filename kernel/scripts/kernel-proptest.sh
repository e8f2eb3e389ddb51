#!/bin/bash
# kernel-proptest.sh: the user-space property tests, fuzz replay and ioctl
# fuzzing against the kernel build, through /dev/vmspace. Builds the test
# binaries on the host (cargo; the guest's root is the chroot, whose libc is
# newer than the host's, so they run there unchanged), rebuilds the UML
# kernel and the module from this repository (the build directory is shared
# with `make kunit`), boots UML with the chroot as its root and runs the
# binaries inside it (kernel/scripts/proptest-init.sh): against the built-in
# /dev/vmspace, then, after insmod, against the module's /dev/vmspace_kmod.
# Fails on any failed test, a missing device, or a checker's report
# (VMK_SPLATS: BUG:/WARNING:/KASAN:/lockdep/Oops, ...) or Call Trace in the
# kernel log; ends with one plain count line.
. "$(dirname "$0")/common.sh"
vmk_need_root
here=$(dirname "$0")
bash "$here/provision-chroot.sh"
bash "$here/provision-tree.sh"

results=$VMK_CACHE/results
mkdir -p "$results"
log=$results/kernel-proptest.log
plan=$results/kernel-proptest.plan
rm -f "$log" "$plan"

# 1. The test binaries, built on the host (the same profile as `make test`).
start=$(date +%s)
# The binaries with device tests; the filter that picks those tests is in
# the plan below (- for all of a binary's tests).
cargo=${CARGO:-cargo}
(cd "$VMK_REPO" && "$cargo" test --no-run --message-format=json -p vmspace \
	--test arena_model --test vm_model --test kdev_device --test kdev_fuzz \
	--test outside_kdev --test outside_kdev_arena --test outside_kdev_io --test outside_kdev_more \
	--test outside_kdev_leak --test kdev_destroy --test outside_r54_kdev) >"$results/kernel-proptest.cargo.json" ||
	vmk_die "building the test binaries failed"
python3 - "$results/kernel-proptest.cargo.json" "$VMK_REPO" "$VMK_SRC" >"$plan" <<'PY' || vmk_die "no test binaries"
import json, sys
path, repo, src = sys.argv[1:4]
filters = {"arena_model": "device", "vm_model": "device", "kdev_device": "-", "kdev_fuzz": "-",
           "outside_kdev": "-", "outside_kdev_arena": "-", "outside_kdev_io": "-", "outside_kdev_more": "-",
           "outside_kdev_leak": "-", "kdev_destroy": "-", "outside_r54_kdev": "-"}
seen = set()
for line in open(path):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe, name = m.get("executable"), m.get("target", {}).get("name")
    if m.get("reason") == "compiler-artifact" and exe and name in filters and name not in seen:
        seen.add(name)
        print(src + exe[len(repo):] if exe.startswith(repo) else exe, filters[name])
if seen != set(filters):
    sys.exit("missing test binaries: %s" % sorted(set(filters) - seen))
PY
vmk_log "test binaries built in $(($(date +%s) - start)) s: $(wc -l <"$plan") binaries"

# 2. The kernel and the module from this repository, under the build lock.
vmk_lock um
build=$VMK_CACHE/build-um
out=$VMK_CACHE/module-build
start=$(date +%s)
vmk_kunit_py build
mkdir -p "$out"
vmk_chroot make -s -C "$build" ARCH=um M="$VMK_SRC" MO="$out" -j"$VMK_JOBS" modules
vmk_log "kernel and module built in $(($(date +%s) - start)) s"

# 3. Boot, run, power off. No KUnit suite runs (kunit.filter_glob matches none).
start=$(date +%s)
status=0
vmk_chroot /usr/bin/timeout 1800 "$build/linux" mem=1G ncpus=2 seccomp=on console=tty \
	root=/dev/root rootfstype=hostfs rootflags=/ rw \
	init="$VMK_SRC/kernel/scripts/proptest-init.sh" VMK_PLAN="$plan" VMK_MODULE="$out/vmspace_kmod.ko" \
	kunit.filter_glob=none-of-them </dev/null >"$log" 2>&1 || status=$?
vmk_log "UML exited with status $status after $(($(date +%s) - start)) s; log in $log"

# 4. Counts and verdict.
python3 - "$log" "$(wc -l <"$plan")" "$VMK_SPLATS|Call Trace" <<'PY'
import re, sys
log, nbins, splats = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = re.sub(r"\x1b\[[0-9;]*m", "", open(log, errors="replace").read())
bad = [l for l in text.splitlines() if re.search(splats, l)]
total = {"passed": 0, "failed": 0, "skipped": 0}
ok = True
for label in ("builtin", "module"):
    runs = re.findall(r"kernel-proptest: status %s (\S+) (\d+)" % label, text)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    # Each binary's "test result" lines lie between its begin and status markers.
    for name, rc in runs:
        block = re.search(r"kernel-proptest: begin %s %s\n(.*?)kernel-proptest: status %s %s" %
                          (label, re.escape(name), label, re.escape(name)), text, re.S)
        for p, f, i in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored",
                                  block.group(1) if block else ""):
            counts["passed"] += int(p); counts["failed"] += int(f); counts["skipped"] += int(i)
        if rc != "0":
            ok = False
            print("kernel-proptest: %s %s exited with %s" % (label, name, rc), file=sys.stderr)
    if len(runs) != nbins:
        ok = False
        print("kernel-proptest: %s: %d of %d binaries ran" % (label, len(runs), nbins), file=sys.stderr)
    device = {"builtin": "vmspace", "module": "vmspace_kmod"}[label]
    leaks = len(re.findall(r"/dev/%s: file closed with" % device, text))
    if leaks == 0:
        ok = False
        print("kernel-proptest: no leak report from /dev/%s in the log" % device, file=sys.stderr)
    print("kernel-proptest %s: %d passed, %d failed, %d skipped (%d binaries; %d leak reports)"
          % (label, counts["passed"], counts["failed"], counts["skipped"], len(runs), leaks))
    for k in total:
        total[k] += counts[k]
if bad:
    ok = False
    print("kernel-proptest: the kernel log has warnings or oopses:", file=sys.stderr)
    for l in bad[:20]:
        print("    " + l, file=sys.stderr)
if "kernel-proptest: rmmod ok" not in text or "kernel-proptest: rmmod busy ok" not in text:
    ok = False
    print("kernel-proptest: the module did not load, stay while open, and unload cleanly", file=sys.stderr)
print("kernel-proptest: %d passed, %d failed, %d skipped" % (total["passed"], total["failed"], total["skipped"]))
sys.exit(0 if ok and total["failed"] == 0 and total["passed"] > 0 else 1)
PY
