#!/usr/bin/env bash
# Record a program's mmap/munmap/mremap calls with strace and convert them
# into a vmspace replay trace.
#
#   userspace/scripts/record-strace.sh OUT PROGRAM [ARGS...]
#
# writes OUT.strace (strace's output) and OUT.trace (the replay trace), then
# prints the replay's report. Installs strace with apt-get when it is missing.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUT PROGRAM [ARGS...]" >&2; exit 2; }
out=$1; shift
command -v strace >/dev/null || { apt-get update -q && apt-get install -y -q strace; }
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build -q --release -p vmspace-user --bin vmspace --manifest-path "$root/Cargo.toml"
# Where cargo put it: CARGO_TARGET_DIR when set (cargo takes a relative one
# from the current directory), else the workspace's target/.
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
vmspace=$target/release/vmspace
strace -f -e trace=mmap,munmap,mremap -o "$out.strace" "$@"
"$vmspace" import-strace "$out.strace" -o "$out.trace"
"$vmspace" replay "$out.trace"
