#!/usr/bin/env bash
# The C tests and the vmem(9) example as one program (capi/ctest/c/main.c)
# built with -fsanitize=address,undefined and linked with libvmspace.a: the
# C side is instrumented, and the library's memory (arena objects come from
# malloc through Rust's global allocator) is checked by ASan's allocator.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p vmspace-capi-user
out=target/capi-asan
mkdir -p "$out"
cc=${CC:-cc}
san=(-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -pthread)
$cc -std=gnu11 "${san[@]}" -Icapi/include -Dmain=vmem_example_main \
    -c examples/c/vmem_example.c -o "$out/vmem_example.o"
$cc -std=gnu11 "${san[@]}" -Icapi/include -Icapi/ctest/c capi/ctest/c/*.c "$out/vmem_example.o" \
    "${CARGO_TARGET_DIR:-target}/debug/libvmspace_capi_user.a" -lpthread -ldl -lm -o "$out/ctests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$out/ctests"
