#!/usr/bin/env bash
# Install libvmspace into a temporary prefix, then build the vmem(9) example
# against the installed copy with nothing but pkg-config's flags, linked
# shared (found through LD_LIBRARY_PATH, then through an rpath) and static,
# and run each. Then a packager's install (LIBDIR and INCLUDEDIR of their
# own, DESTDIR, install-strip) is built against and run the same way, and
# uninstall must leave nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v pkg-config >/dev/null || { apt-get update -q && apt-get install -y -q pkg-config; }
prefix=$(mktemp -d /tmp/vmspace-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
# Installed through a cargo that has neither fmt nor clippy, and no rustup:
# a packager's machine may have neither, and installing must not need them
# (round 71 found `make install` adding them first).
mkdir -p "$prefix/bare-toolchain"
real_cargo=$(command -v "${CARGO:-cargo}")
printf '#!/bin/sh\ncase "$1" in fmt|clippy) exit 1 ;; esac\nexec "%s" "$@"\n' "$real_cargo" \
    >"$prefix/bare-toolchain/cargo"
printf '#!/bin/sh\necho "rustup called: $*" >&2\nexit 127\n' >"$prefix/bare-toolchain/rustup"
chmod +x "$prefix/bare-toolchain/cargo" "$prefix/bare-toolchain/rustup"
PATH=$prefix/bare-toolchain:$PATH make --no-print-directory install PREFIX="$prefix" \
    CARGO="$prefix/bare-toolchain/cargo" >/dev/null
echo "installed with no rustfmt, clippy or rustup: ok"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
echo "pkg-config --cflags --libs vmspace: $(pkg-config --cflags --libs vmspace)"
cc=${CC:-cc}
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror examples/c/vmem_example.c $(pkg-config --cflags --libs vmspace) \
    -o "$prefix/vmem_example"
LD_LIBRARY_PATH=$prefix/lib "$prefix/vmem_example" >/dev/null
echo "shared: $(LD_LIBRARY_PATH=$prefix/lib ldd "$prefix/vmem_example" | grep -o 'libvmspace[^ ]*' | head -1): ok"
# With an rpath (as the README shows), found with no LD_LIBRARY_PATH.
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror examples/c/vmem_example.c $(pkg-config --cflags --libs vmspace) \
    -Wl,-rpath,"$prefix/lib" -o "$prefix/vmem_example_rpath"
env -u LD_LIBRARY_PATH "$prefix/vmem_example_rpath" >/dev/null
echo "shared with rpath: ok"
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror examples/c/vmem_example.c \
    $(pkg-config --cflags vmspace) "$prefix/lib/libvmspace.a" $(pkg-config --static --libs-only-l vmspace | sed 's/-lvmspace//') \
    -o "$prefix/vmem_example_static"
"$prefix/vmem_example_static" >/dev/null
echo "static: ok"
# A fully static program: -lgcc_eh where Libs.private has -lgcc_s (README).
# (glibc's linker warnings about getpwuid_r and getaddrinfo in std are kept
# out of the log unless the link fails.)
# shellcheck disable=SC2046
$cc -static -std=c11 -Wall -Wextra -Werror examples/c/vmem_example.c \
    $(pkg-config --cflags vmspace) "$prefix/lib/libvmspace.a" \
    $(pkg-config --static --libs-only-l vmspace | sed 's/-lvmspace//; s/-lgcc_s/-lgcc_eh/') \
    -o "$prefix/vmem_example_all_static" 2>"$prefix/all_static.log" || { cat "$prefix/all_static.log" >&2; exit 1; }
! readelf -l "$prefix/vmem_example_all_static" | grep -q 'program interpreter'
"$prefix/vmem_example_all_static" >/dev/null
echo "fully static (cc -static): ok"

# A packager's layout: libraries and headers in directories of their own,
# staged under DESTDIR, stripped. vmspace.pc must name those directories.
# Their names hold what a shell, sed, make's patterns or pkg-config would
# read as their own (a space, a quote, &, |, %): pkg-config's output is
# shell-quoted for them, so it is read back with eval, as a build would.
dest="$prefix/dest dir"
pkg_prefix="$prefix/pkg's dir &co|100%"
# $(pc_words OPTION...): pkg-config's words for vmspace, one a line.
pc_words() {
    local words
    eval "words=($(pkg-config "$@" vmspace))"
    printf '%s\n' "${words[@]}"
}
make --no-print-directory install-strip PREFIX="$pkg_prefix" LIBDIR="$pkg_prefix/lib64/multiarch" \
    INCLUDEDIR="$pkg_prefix/include/vmspace-0" DESTDIR="$dest" >/dev/null
staged=$dest$pkg_prefix
test -f "$staged/lib64/multiarch/libvmspace.a" -a -f "$staged/include/vmspace-0/vmspace/vmem.h" \
    -a ! -e "$staged/lib" -a ! -e "$pkg_prefix"
grep -qx 'libdir=${prefix}/lib64/multiarch' "$staged/lib64/multiarch/pkgconfig/vmspace.pc"
grep -qx 'includedir=${prefix}/include/vmspace-0' "$staged/lib64/multiarch/pkgconfig/vmspace.pc"
for lib in libvmspace.a libvmspace.so.0; do
    unstripped=$(stat -Lc %s "$prefix/lib/$lib")
    stripped=$(stat -Lc %s "$staged/lib64/multiarch/$lib")
    test "$stripped" -lt "$unstripped" || { echo "install-strip: $lib is $stripped bytes, unstripped $unstripped" >&2; exit 1; }
    ! readelf -S "$staged/lib64/multiarch/$lib" 2>/dev/null | grep -q '\.debug_info' \
        || { echo "install-strip: $lib keeps .debug_info" >&2; exit 1; }
    echo "install-strip: $lib $unstripped -> $stripped bytes"
done
# A PREFIX written with a trailing slash still holds LIBDIR (vmspace.pc
# relative to it); a directory outside it is written whole.
PC_PREFIX=/usr/ PC_LIBDIR=/usr/lib PC_INCLUDEDIR=/opt/include PC_VERSION=0 \
    bash capi/scripts/pc.sh capi/vmspace.pc.in "$prefix/slash.pc"
grep -qx 'libdir=${prefix}/lib' "$prefix/slash.pc" && grep -qx 'includedir=/opt/include' "$prefix/slash.pc" ||
    { echo "vmspace.pc for PREFIX=/usr/:" >&2; cat "$prefix/slash.pc" >&2; exit 1; }
# Directories holding what a shell, make or pkg-config reads as its own
# (round 78): vmspace.pc names them exactly, or pc.sh refuses them.
bash capi/scripts/outside_r78_pc_chars.sh >"$prefix/pc_chars.log" ||
    { cat "$prefix/pc_chars.log" >&2; exit 1; }
echo "vmspace.pc for $(grep -c ': ok$' "$prefix/pc_chars.log") directories of odd characters, $(grep -c 'refused' "$prefix/pc_chars.log") refused: ok"
# Built against the staged tree moved to its PREFIX, as a package manager
# would put it.
mv "$staged" "$pkg_prefix"
export PKG_CONFIG_PATH=$pkg_prefix/lib64/multiarch/pkgconfig
mapfile -t flags < <(pc_words --cflags --libs)
test "${flags[0]}" = "-I$pkg_prefix/include/vmspace-0" || { echo "pkg-config: ${flags[*]}" >&2; exit 1; }
$cc -std=c11 -Wall -Wextra -Werror examples/c/vmem_example.c "${flags[@]}" \
    -Wl,-rpath,"$pkg_prefix/lib64/multiarch" -o "$prefix/vmem_example_pkg"
env -u LD_LIBRARY_PATH "$prefix/vmem_example_pkg" >/dev/null
mapfile -t cflags < <(pc_words --cflags)
mapfile -t libs < <(pc_words --static --libs-only-l | grep -vx -- -lvmspace)
$cc -std=c11 -Wall -Wextra -Werror examples/c/vmem_example.c \
    "${cflags[@]}" "$pkg_prefix/lib64/multiarch/libvmspace.a" "${libs[@]}" -o "$prefix/vmem_example_pkg_static"
"$prefix/vmem_example_pkg_static" >/dev/null
echo "LIBDIR, INCLUDEDIR, DESTDIR, install-strip (under \"${pkg_prefix#"$prefix"/}\"): shared and static: ok"
# A second install replaces the shared library with a new file (a program
# running with the old one mapped keeps it), not writes into it.
# The old file is held open meanwhile, as a running program holds it, so
# that its inode number cannot be reused by the new file.
exec 9<"$pkg_prefix/lib64/multiarch/libvmspace.so.0"
make --no-print-directory install PREFIX="$pkg_prefix" LIBDIR="$pkg_prefix/lib64/multiarch" \
    INCLUDEDIR="$pkg_prefix/include/vmspace-0" >/dev/null
test "$(stat -Lc %i "$pkg_prefix/lib64/multiarch/libvmspace.so.0")" != "$(stat -Lc %i /proc/$$/fd/9)" ||
    { echo "install wrote over the installed libvmspace.so in place" >&2; exit 1; }
exec 9<&-
# uninstall removes every file install put down, and include/vmspace/ (the
# library's own) once empty; a file of someone else's stays, and so does a
# directory that may have been there before (pkgconfig/, as automake).
touch "$pkg_prefix/include/vmspace-0/other.h"
make --no-print-directory uninstall PREFIX="$pkg_prefix" LIBDIR="$pkg_prefix/lib64/multiarch" \
    INCLUDEDIR="$pkg_prefix/include/vmspace-0" CARGO=false >/dev/null
left=$(cd "$pkg_prefix" && find . -mindepth 1 ! -type d | sort | tr '\n' ' ')
test "$left" = "./include/vmspace-0/other.h " || { echo "uninstall left: $left" >&2; exit 1; }
test ! -e "$pkg_prefix/include/vmspace-0/vmspace" -a -d "$pkg_prefix/lib64/multiarch/pkgconfig"
make --no-print-directory uninstall PREFIX="$prefix" CARGO=false >/dev/null
left=$(cd "$prefix" && find lib include ! -type d 2>/dev/null | tr '\n' ' ')
test -z "$left" || { echo "uninstall left: $left" >&2; exit 1; }
# And with nothing installed: nothing to do, no error.
out=$(make --no-print-directory uninstall PREFIX="$prefix" CARGO=false 2>&1)
! grep -q -i error <<<"$out" || { echo "uninstall of nothing: $out" >&2; exit 1; }
echo "uninstall (builds nothing): ok"
