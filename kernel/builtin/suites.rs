// SPDX-License-Identifier: MIT OR Apache-2.0

//! The built-in build's KUnit suites: the shared suites of `vmspace_ktest` on
//! the sparse vmalloc backend (metadata and VMs alike), including a 1 GiB
//! sparse reservation with 64 MiB mapped and touched (`vmspace_vm`,
//! `big_reservation_touch`) and a 1 GiB chunk-map space; with lockdep, a
//! check that it is still on (`vmspace_checkers`); with KCSAN, the
//! multi-threaded cases again, many rounds (`vmspace_stress`).

use crate::sparse::SparseVmalloc;

/// The backend every built-in suite runs on.
pub(crate) static OPS: SparseVmalloc = SparseVmalloc::new();

vmspace_ktest::backend_suite!(vmspace_sparse_backend, crate::suites::OPS);
vmspace_ktest::vm_suite!(vmspace_vm, crate::suites::OPS, 1 << 30, 64 << 20);
vmspace_ktest::workload_suite!(vmspace_vm_workload, crate::suites::OPS);
vmspace_ktest::fault_suite!(vmspace_vm_faults, crate::suites::OPS);
vmspace_ktest::arena_suite!(vmspace_arena, crate::suites::OPS, crate::suites::OPS);
vmspace_ktest::vmarena_suite!(vmspace_vmarena, crate::suites::OPS, crate::suites::OPS);
vmspace_ktest::sync_suite!(vmspace_sync, crate::suites::OPS, crate::suites::OPS);
vmspace_ktest::chunkmap_suite!(vmspace_chunkmap, crate::suites::OPS, 1 << 30);
vmspace_ktest::batched_suite!(vmspace_batched_model, crate::suites::OPS, crate::suites::OPS);
vmspace_ktest::outside_suite!(vmspace_outside, crate::suites::OPS, crate::suites::OPS);
#[cfg(CONFIG_PROVE_LOCKING)]
vmspace_ktest::checkers_suite!(vmspace_checkers);
#[cfg(CONFIG_KCSAN)]
vmspace_ktest::stress_suite!(vmspace_stress, crate::suites::OPS, crate::suites::OPS, 50);
