// SPDX-License-Identifier: MIT OR Apache-2.0

//! The module's KUnit suites: the shared suites of `vmspace_ktest` on the
//! module-safe backends: VMs on committed vmalloc reservations, metadata
//! stores on the page allocator. Reservations here are committed memory, so
//! the big cases reserve 128 MiB (all of it backed) and touch 64 MiB.

use crate::committed::Committed;

/// The backend of the module's VM suites.
pub(crate) static OPS: Committed = Committed::vmalloc();
/// The backend for metadata stores (arena boundary tags and hashes).
pub(crate) static META: Committed = Committed::page_allocator();

vmspace_ktest::backend_suite!(vmspace_mod_vmalloc_backend, crate::suites::OPS);
vmspace_ktest::backend_suite!(vmspace_mod_page_backend, crate::suites::META);
vmspace_ktest::vm_suite!(vmspace_mod_vm, crate::suites::OPS, 128 << 20, 64 << 20);
vmspace_ktest::workload_suite!(vmspace_mod_vm_workload, crate::suites::OPS);
vmspace_ktest::fault_suite!(vmspace_mod_vm_faults, crate::suites::OPS);
vmspace_ktest::arena_suite!(vmspace_mod_arena, crate::suites::META, crate::suites::OPS);
vmspace_ktest::vmarena_suite!(vmspace_mod_vmarena, crate::suites::OPS, crate::suites::META, protect_refused);
vmspace_ktest::sync_suite!(vmspace_mod_sync, crate::suites::META, crate::suites::OPS);
vmspace_ktest::chunkmap_suite!(vmspace_mod_chunkmap, crate::suites::OPS, 128 << 20, protect_refused);
