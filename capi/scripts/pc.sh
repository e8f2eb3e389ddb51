#!/usr/bin/env bash
# Write vmspace.pc: capi/scripts/pc.sh TEMPLATE OUT, with PC_PREFIX,
# PC_LIBDIR, PC_INCLUDEDIR and PC_VERSION from the environment (capi.mk
# exports them), so that a directory may hold any character a file name
# can: nothing here goes through sed or make patterns.
#
# A directory under the prefix is written relative to ${prefix} (a packager
# may move the tree), else whole. Values are escaped as pkg-config reads
# them: a backslash before a space, tab, quote, backslash or # (which
# pkg-config otherwise reads as the start of a comment; pkgconf then prints
# them escaped for the shell). A newline or carriage return cannot be
# written in a .pc file (pkg-config ends the line there), nor can ${
# (a variable to pkg-config): refused.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
template=$1 out=$2

escape() {
    local s=$1 r='' c i
    case $s in
    *'${'*)
        echo "pc.sh: a directory holds \${, which pkg-config reads as a variable: $s" >&2
        exit 1
        ;;
    esac
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        ' ' | $'\t' | "'" | '"' | '\' | '#') r+="\\$c" ;;
        $'\n' | $'\r')
            echo "pc.sh: a directory holds a newline or carriage return, which vmspace.pc cannot express: $s" >&2
            exit 1
            ;;
        *) r+=$c ;;
        esac
    done
    printf '%s' "$r"
}

# The prefix without its trailing slashes (PREFIX=/usr/ LIBDIR=/usr/lib is
# under it too).
bare=$PC_PREFIX
while [ "${#bare}" -gt 1 ] && [ "${bare%/}" != "$bare" ]; do bare=${bare%/}; done

# $(under DIR): DIR relative to ${prefix} when it is under the prefix.
under() {
    case $1 in
    "$bare"/*)
        local rel
        rel=$(escape "${1#"$bare"/}") || exit
        printf '${prefix}/%s' "$rel"
        ;;
    *) escape "$1" ;;
    esac
}

prefix=$(escape "$PC_PREFIX")
libdir=$(under "$PC_LIBDIR")
includedir=$(under "$PC_INCLUDEDIR")
while IFS= read -r line || [ -n "$line" ]; do
    line=${line//@PREFIX@/"$prefix"}
    line=${line//@LIBDIR@/"$libdir"}
    line=${line//@INCLUDEDIR@/"$includedir"}
    line=${line//@VERSION@/"$PC_VERSION"}
    printf '%s\n' "$line"
done <"$template" >"$out"
