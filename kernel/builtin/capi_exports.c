// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Export vmspace's native C API (<linux/vmspace.h>) from the built-in kernel
 * to GPL modules, in the symbol namespace "VMSPACE" (a module that uses them
 * says MODULE_IMPORT_NS("VMSPACE"), as kernel/cmodule/idspace.c does; the
 * kernel's own subsystem APIs, such as CXL's or IIO's buffers, are exported
 * the same way, so that what uses them is explicit). The functions are Rust (#[no_mangle] extern "C", made by
 * vmspace_capi::export_native! in builtin/capi.rs), declared by the header
 * (installed in the tree as <linux/vmspace.h> for modules);
 * this is the pattern of the kernel's own rust/exports.c. The list is the
 * header's: capi/tests/header.rs checks there is one line per function there.
 */
#include <linux/export.h>
#include "../../capi/include/vmspace.h"

EXPORT_SYMBOL_NS_GPL(vmspace_strerror, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_version, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_create, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_create_ex, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_destroy, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_add, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_set_import, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_set_vm, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_vm_info, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_set_limit, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_set_mtbf, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_alloc, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_alloc_timed, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_xalloc, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_free, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_free_deferred, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_flushed, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_alloc_handle, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_xalloc_handle, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_free_handle, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_free_handle_deferred, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_reclaim, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_name, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_quantum, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_sizes, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_counters, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_histogram, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_walk, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_check, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_arena_contains, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_create, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_destroy, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_map, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_unmap, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_protect, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_mapped, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_info, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_trim, "VMSPACE");
EXPORT_SYMBOL_NS_GPL(vmspace_vm_check, "VMSPACE");
