#!/usr/bin/env bash
# Install libvmspace into a temporary prefix, then build the vmem(9) example
# against the installed copy with nothing but pkg-config's flags, linked
# shared (found through LD_LIBRARY_PATH, then through an rpath) and static,
# and run each.
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
