// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Export vmspace's native C API (<linux/vmspace.h>) from the built-in kernel
 * to GPL modules. The functions are Rust (#[no_mangle] extern "C", made by
 * vmspace_capi::export_native! in builtin/capi.rs), declared by the header
 * (installed in the tree as <linux/vmspace.h> for modules);
 * this is the pattern of the kernel's own rust/exports.c. The list is the
 * header's: capi/tests/header.rs checks there is one line per function there.
 */
#include <linux/export.h>
#include "../../capi/include/vmspace.h"

EXPORT_SYMBOL_GPL(vmspace_strerror);
EXPORT_SYMBOL_GPL(vmspace_version);
EXPORT_SYMBOL_GPL(vmspace_arena_create);
EXPORT_SYMBOL_GPL(vmspace_arena_create_ex);
EXPORT_SYMBOL_GPL(vmspace_arena_destroy);
EXPORT_SYMBOL_GPL(vmspace_arena_add);
EXPORT_SYMBOL_GPL(vmspace_arena_set_import);
EXPORT_SYMBOL_GPL(vmspace_arena_set_limit);
EXPORT_SYMBOL_GPL(vmspace_arena_set_mtbf);
EXPORT_SYMBOL_GPL(vmspace_arena_alloc);
EXPORT_SYMBOL_GPL(vmspace_arena_alloc_timed);
EXPORT_SYMBOL_GPL(vmspace_arena_xalloc);
EXPORT_SYMBOL_GPL(vmspace_arena_free);
EXPORT_SYMBOL_GPL(vmspace_arena_free_deferred);
EXPORT_SYMBOL_GPL(vmspace_arena_flushed);
EXPORT_SYMBOL_GPL(vmspace_arena_alloc_handle);
EXPORT_SYMBOL_GPL(vmspace_arena_xalloc_handle);
EXPORT_SYMBOL_GPL(vmspace_arena_free_handle);
EXPORT_SYMBOL_GPL(vmspace_arena_free_handle_deferred);
EXPORT_SYMBOL_GPL(vmspace_arena_reclaim);
EXPORT_SYMBOL_GPL(vmspace_arena_name);
EXPORT_SYMBOL_GPL(vmspace_arena_quantum);
EXPORT_SYMBOL_GPL(vmspace_arena_sizes);
EXPORT_SYMBOL_GPL(vmspace_arena_counters);
EXPORT_SYMBOL_GPL(vmspace_arena_histogram);
EXPORT_SYMBOL_GPL(vmspace_arena_walk);
EXPORT_SYMBOL_GPL(vmspace_arena_check);
EXPORT_SYMBOL_GPL(vmspace_arena_contains);
