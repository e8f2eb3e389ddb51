#!/usr/bin/env bash
# userspace/scripts/readme-commands.sh: run the README's shell samples that
# run the vmspace program (each ```sh block with a `cargo run` line), as
# written, from the repository's root; fail if any command in one fails
# (pipefail: a trace | replay pipeline fails when either side does). The
# README's Rust samples are doctests (make test) and its C samples are
# built in make capi-install-check; these are the rest. `make
# readme-commands` runs this; CI runs it after `make run`.
set -euo pipefail
cd "$(dirname "$0")/../.."

blocks=$(mktemp -d)
trap 'rm -rf "$blocks"' EXIT
awk -v dir="$blocks" '
	/^```sh$/ { inblock = 1; n++; file = sprintf("%s/%03d.sh", dir, n); next }
	/^```/ { inblock = 0; next }
	inblock { print > file }
' README.md

ran=0
for f in "$blocks"/*.sh; do
	grep -q 'cargo run' "$f" || continue
	ran=$((ran + 1))
	echo "== README sample $ran:"
	sed 's/^/   /' "$f"
	t0=$SECONDS
	# The last lines of what it printed (a replay's report ends with its
	# verdict); the whole output would be thousands of lines.
	bash -euo pipefail "$f" | tail -n 4
	echo "== README sample $ran: ok in $((SECONDS - t0))s"
done
if [ "$ran" -eq 0 ]; then
	echo "readme-commands: no sample with a cargo run line in README.md" >&2
	exit 1
fi
