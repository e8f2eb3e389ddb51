#!/usr/bin/env bash
# userspace/scripts/readme-commands.sh: run the README's shell samples that
# run the vmspace program (each fenced shell sample with a `cargo run`
# line), as written, from the repository's root; fail if any command in one
# fails. The README's Rust samples are doctests (make test) and its C
# samples are built in make capi-install-check; these are the rest. `make
# readme-commands` runs this; CI runs it after `make run`.
#
# A sample is a fenced block (``` or ~~~, indented or not, CRLF or not)
# tagged sh, bash or shell, or console (whose commands are the lines after
# a "$ " prompt, with their continuation lines). Each runs under
# `bash -euo pipefail`, which sees a failure in any command of a pipeline
# or a line, but not one before `&&` or `||` nor one inside `$(...)` or
# backquotes: a sample that uses those is refused rather than run with a
# failure it could miss.
set -euo pipefail
cd "$(dirname "$0")/../.."

blocks=$(mktemp -d)
trap 'rm -rf "$blocks"' EXIT
awk -v dir="$blocks" '
	{ sub(/\r$/, "") }
	!inblock {
		line = $0
		indent = match(line, /[^ ]/) - 1
		if (indent < 0) next
		rest = substr(line, indent + 1)
		fence = substr(rest, 1, 3)
		if (fence != "```" && fence != "~~~") next
		tag = substr(rest, 4)
		gsub(/[ \t]+$/, "", tag)
		if (tag != "sh" && tag != "bash" && tag != "shell" && tag != "console") {
			# Another language, or none: skip to its closing fence.
			skipping = fence
			inblock = 1
			next
		}
		skipping = ""
		inblock = 1
		console = (tag == "console")
		cont = 0
		n++
		file = sprintf("%s/%03d.sh", dir, n)
		printf "" > file
		next
	}
	{
		line = $0
		# The closing fence: the same marker, alone on its line.
		probe = line
		gsub(/^ +| +$/, "", probe)
		if (probe == fence) { inblock = 0; next }
		if (skipping != "") next
		# The fence'"'"'s indentation is not part of the sample.
		for (i = 0; i < indent && substr(line, 1, 1) == " "; i++) line = substr(line, 2)
		if (console) {
			if (substr(line, 1, 2) == "$ ") { line = substr(line, 3) }
			else if (!cont) next
			cont = (line ~ /\\$/)
		}
		print line >> file
	}
' README.md

ran=0
for f in "$blocks"/*.sh; do
	[ -e "$f" ] || continue
	grep -q 'cargo run' "$f" || continue
	ran=$((ran + 1))
	echo "== README sample $ran:"
	sed 's/^/   /' "$f"
	if grep -qE '&&|\|\||\$\(|`' "$f"; then
		echo "readme-commands: README sample $ran uses &&, ||, \$(...) or backquotes, where a" >&2
		echo "failing command would go unseen; write one command (or pipeline) a line" >&2
		exit 1
	fi
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
