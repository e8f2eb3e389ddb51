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
make --no-print-directory install PREFIX="$prefix" >/dev/null
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
