#!/usr/bin/env bash
# Round 78 (outside tester): vmspace.pc for directories holding characters
# a shell, make or pkg-config reads as its own. For each, pc.sh (PC_SH, by
# default this checkout's) writes vmspace.pc and pkg-config must give back
# exactly the directories (its output read with eval, as install-check.sh
# reads it), or pc.sh must refuse a directory it cannot express (a
# newline, a carriage return, "${"), never write one naming another.
# Not here: a lone $, ( or ), which pkgconf 1.8 reads back right but
# prints unquoted, so that eval (not a plain $(pkg-config ...)) misreads them.
#   bash capi/scripts/outside_r78_pc_chars.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
pc_sh=${PC_SH:-capi/scripts/pc.sh}
tmp=$(mktemp -d /tmp/vmspace-pc-chars.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
# try LABEL PREFIX [LIBDIR INCLUDEDIR]
try() {
    local label=$1 pfx=$2 lib=${3:-$2/lib} inc=${4:-$2/include} d out words
    d=$(mktemp -d "$tmp/pc.XXXX")
    PC_PREFIX=$pfx PC_LIBDIR=$lib PC_INCLUDEDIR=$inc PC_VERSION=0 \
        bash "$pc_sh" capi/vmspace.pc.in "$d/vmspace.pc" 2>/dev/null || {
        echo "$label: refused by pc.sh"
        return
    }
    out=$(PKG_CONFIG_PATH=$d pkg-config --cflags --libs vmspace 2>&1) || {
        echo "FAIL $label: pkg-config: $out"; fail=1; return
    }
    eval "words=($out)"
    if [ "${words[0]}" = "-I$inc" ] && [ "${words[1]}" = "-L$lib" ]; then
        echo "$label: ok"
    else
        printf 'FAIL %s: pkg-config gives %q %q for %q %q\n' "$label" "${words[0]}" "${words[1]}" "-I$inc" "-L$lib"
        fail=1
    fi
}
b=/opt/x
try space "$b/a b"
try backslash "$b/a\\b"
try backslash-last "$b/a\\" "$b/a\\/lib" "$b/a\\/include"
try tab "$b/a	b"
try quotes "$b/it's \"q\""
try '&|%;' "$b/a&b|c%d;e"
try hash "$b/v#1"
try space-hash "$b/a #b"
try hash-outside "$b/p" "/opt/lib#2" "/opt/inc #3"
try '*?[]' "$b/a*b?c[d]"
try tilde "$b/~a"
try backtick "$b/a\`b"
try dollar-brace "$b/a\${prefix}"
try newline "$b/a
b"
try cr "$b/a$(printf '\r')b"
try utf8 "$b/é ü"
try lib-outside "$b/p" /usr/lib64 "/usr/include/x y"
exit $fail
