// SPDX-License-Identifier: MIT OR Apache-2.0

//! The module's KUnit suites: the shared suites of `vmspace_ktest` on the
//! module-safe backends: VMs on committed vmalloc reservations, metadata
//! stores on the page allocator. Reservations here are committed memory, so
//! the big cases reserve 128 MiB (all of it backed) and touch 64 MiB. The
//! backends are the module's own (`crate::OPS`, `crate::META`).

vmspace_ktest::backend_suite!(vmspace_mod_vmalloc_backend, crate::OPS);
vmspace_ktest::backend_suite!(vmspace_mod_page_backend, crate::META);
vmspace_ktest::vm_suite!(vmspace_mod_vm, crate::OPS, 128 << 20, 64 << 20);
vmspace_ktest::workload_suite!(vmspace_mod_vm_workload, crate::OPS);
vmspace_ktest::fault_suite!(vmspace_mod_vm_faults, crate::OPS);
vmspace_ktest::arena_suite!(vmspace_mod_arena, crate::META, crate::OPS);
vmspace_ktest::vmarena_suite!(vmspace_mod_vmarena, crate::OPS, crate::META, protect_refused);
vmspace_ktest::sync_suite!(vmspace_mod_sync, crate::META, crate::OPS);
vmspace_ktest::chunkmap_suite!(vmspace_mod_chunkmap, crate::OPS, 128 << 20, protect_refused);
vmspace_ktest::batched_suite!(vmspace_mod_batched, crate::OPS, crate::META);
vmspace_ktest::outside_suite!(vmspace_mod_outside, crate::META, crate::OPS);
#[cfg(CONFIG_PROVE_LOCKING)]
vmspace_ktest::checkers_suite!(vmspace_mod_checkers);
