// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite definitions shared by the built-in and module builds.
//!
//! Each macro expands to one `#[kunit_tests(<suite>)]` module whose cases run
//! the bodies in this crate on the backend named by a path to a `static`
//! (for example `crate::OPS`). The built-in build instantiates them on the
//! sparse vmalloc backend, the module on its module-safe backends, under
//! different suite names.

/// Cases on a page backend by itself: `backend_suite!(suite, path::TO_OPS)`.
#[macro_export]
macro_rules! backend_suite {
    ($suite:ident, $ops:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::backend_cases as cases;
            use $crate::{report, Outcome};
            use ::vmspace_shim::Size;

            #[test]
            fn reserve_release() -> Outcome {
                report("reserve_release", cases::reserve_release(&$ops))
            }

            #[test]
            fn reserve_aligned_2m() -> Outcome {
                report("reserve_aligned_2m", cases::reserve_aligned(&$ops, Size(2 << 20)))
            }

            #[test]
            fn reserve_aligned_64k() -> Outcome {
                report("reserve_aligned_64k", cases::reserve_aligned(&$ops, Size(64 << 10)))
            }

            #[test]
            fn reserve_bad_arguments() -> Outcome {
                report("reserve_bad_arguments", cases::reserve_bad_arguments(&$ops))
            }

            #[test]
            fn reserve_too_large() -> Outcome {
                report("reserve_too_large", cases::reserve_too_large(&$ops))
            }

            #[test]
            fn map_touch_unmap() -> Outcome {
                report("map_touch_unmap", cases::map_touch_unmap(&$ops))
            }

            #[test]
            fn release_with_mapped() -> Outcome {
                report("release_with_mapped", cases::release_with_mapped(&$ops))
            }

            #[test]
            fn many_reservations() -> Outcome {
                report("many_reservations", cases::many_reservations(&$ops))
            }
        }
    };
}

/// Cases on the core's `Vm`:
/// `vm_suite!(suite, path::TO_OPS, big_reserve_bytes, big_touch_bytes)`.
#[macro_export]
macro_rules! vm_suite {
    ($suite:ident, $ops:path, $big_reserve:expr, $big_touch:expr) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::vm_cases as cases;
            use $crate::{report, Outcome};
            use ::vmspace_shim::{PageOps, Size};

            #[test]
            fn reserve_basic() -> Outcome {
                report("reserve_basic", cases::reserve_basic(&$ops, Size(1 << 20), $ops.page_size()))
            }

            #[test]
            fn grains() -> Outcome {
                report("grains", cases::grains(&$ops))
            }

            #[test]
            fn reserve_bad_arguments() -> Outcome {
                report("reserve_bad_arguments", cases::reserve_bad_arguments(&$ops))
            }

            #[test]
            fn map_all_touch() -> Outcome {
                report("map_all_touch", cases::map_all_touch(&$ops, 512))
            }

            #[test]
            fn remap_reads_zero() -> Outcome {
                report("remap_reads_zero", cases::remap_reads_zero(&$ops))
            }

            #[test]
            fn bad_ranges() -> Outcome {
                report("bad_ranges", cases::bad_ranges(&$ops))
            }

            #[test]
            fn many_vms() -> Outcome {
                report("many_vms", cases::many_vms(&$ops))
            }

            #[test]
            fn trim() -> Outcome {
                report("trim", cases::trim(&$ops))
            }

            #[test]
            fn mapped_runs() -> Outcome {
                report("mapped_runs", cases::mapped_runs(&$ops))
            }

            #[test]
            fn release_and_drop() -> Outcome {
                report("release_and_drop", cases::release_and_drop(&$ops))
            }

            /// Map and touch a large range of a larger reservation, unmap it.
            #[test]
            fn big_reservation_touch() -> Outcome {
                report(
                    "big_reservation_touch",
                    cases::big_sparse(&$ops, Size($big_reserve), Size($big_touch)),
                )
            }
        }
    };
}

/// Seeded map/unmap sequences from the core's workload generator:
/// `workload_suite!(suite, path::TO_OPS)`.
#[macro_export]
macro_rules! workload_suite {
    ($suite:ident, $ops:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::vm_cases::workload;
            use $crate::{report, Outcome};

            const STEPS: usize = 400;

            #[test]
            fn seed_1() -> Outcome {
                report("seed_1", workload(&$ops, 1, STEPS))
            }

            #[test]
            fn seed_2() -> Outcome {
                report("seed_2", workload(&$ops, 2, STEPS))
            }

            #[test]
            fn seed_3() -> Outcome {
                report("seed_3", workload(&$ops, 3, STEPS))
            }

            #[test]
            fn seed_42() -> Outcome {
                report("seed_42", workload(&$ops, 42, STEPS))
            }

            #[test]
            fn seed_1234() -> Outcome {
                report("seed_1234", workload(&$ops, 1234, STEPS))
            }

            #[test]
            fn seed_0xdeadbeef() -> Outcome {
                report("seed_0xdeadbeef", workload(&$ops, 0xdead_beef, STEPS))
            }

            #[test]
            fn seed_long_run() -> Outcome {
                report("seed_long_run", workload(&$ops, 0x5eed, 4 * STEPS))
            }
        }
    };
}

/// The shim's fault injector around a backend, under the core's `Vm`:
/// `fault_suite!(suite, path::TO_OPS)`.
#[macro_export]
macro_rules! fault_suite {
    ($suite:ident, $ops:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::fault_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn reserve_fails() -> Outcome {
                report("reserve_fails", cases::reserve_fails(&$ops))
            }

            #[test]
            fn metadata_map_fails() -> Outcome {
                report("metadata_map_fails", cases::metadata_map_fails(&$ops))
            }

            #[test]
            fn map_fails_at_each_step() -> Outcome {
                report("map_fails_at_each_step", cases::map_fails_at_each_step(&$ops))
            }

            #[test]
            fn unmap_fails() -> Outcome {
                report("unmap_fails", cases::unmap_fails(&$ops))
            }

            #[test]
            fn release_fails() -> Outcome {
                report("release_fails", cases::release_fails(&$ops))
            }

            #[test]
            fn random_faults_seed_1() -> Outcome {
                report("random_faults_seed_1", cases::random_faults(&$ops, 1, 400))
            }

            #[test]
            fn random_faults_seed_77() -> Outcome {
                report("random_faults_seed_77", cases::random_faults(&$ops, 77, 400))
            }

            #[test]
            fn random_faults_seed_9001() -> Outcome {
                report("random_faults_seed_9001", cases::random_faults(&$ops, 9001, 400))
            }
        }
    };
}

/// The core's arena with its metadata on one backend and imports from a
/// `Vm` on another: `arena_suite!(suite, path::TO_META_OPS, path::TO_VM_OPS)`.
#[macro_export]
macro_rules! arena_suite {
    ($suite:ident, $meta:path, $vm:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::arena_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn policies() -> Outcome {
                report("policies", cases::policies(&$meta))
            }

            #[test]
            fn constraints() -> Outcome {
                report("constraints", cases::constraints(&$meta))
            }

            #[test]
            fn bad_frees() -> Outcome {
                report("bad_frees", cases::bad_frees(&$meta))
            }

            #[test]
            fn workload_quantum_1() -> Outcome {
                report("workload_quantum_1", cases::workload(&$meta, 1, 1, 500))
            }

            #[test]
            fn workload_quantum_16() -> Outcome {
                report("workload_quantum_16", cases::workload(&$meta, 16, 16, 500))
            }

            #[test]
            fn workload_quantum_4096() -> Outcome {
                report("workload_quantum_4096", cases::workload(&$meta, 4096, 4096, 500))
            }

            #[test]
            fn workload_seed_0x5eed() -> Outcome {
                report("workload_seed_0x5eed", cases::workload(&$meta, 64, 0x5eed, 2000))
            }

            #[test]
            fn mtbf_faults() -> Outcome {
                report("mtbf_faults", cases::mtbf(&$meta, 7, 500))
            }

            #[test]
            fn tag_store_faults() -> Outcome {
                report("tag_store_faults", cases::tag_store_faults(&$meta, 0xfeed, 8))
            }

            #[test]
            fn import_chain_seed_1() -> Outcome {
                report("import_chain_seed_1", cases::import_chain(&$vm, &$meta, 1, 300))
            }

            #[test]
            fn import_chain_seed_2() -> Outcome {
                report("import_chain_seed_2", cases::import_chain(&$vm, &$meta, 2, 300))
            }

            #[test]
            fn import_chain_seed_0xc0ffee() -> Outcome {
                report("import_chain_seed_0xc0ffee", cases::import_chain(&$vm, &$meta, 0xc0ffee, 300))
            }
        }
    };
}

/// The core's VM arena on a backend, and a vmem arena importing from it:
/// `vmarena_suite!(suite, path::TO_OPS, path::TO_META_OPS)`, its shared
/// sequences strict as in user space; with a fourth argument
/// `protect_refused`, for a backend that cannot change protection, a
/// refused protect must change nothing instead.
#[macro_export]
macro_rules! vmarena_suite {
    ($suite:ident, $ops:path, $meta:path) => {
        $crate::vmarena_suite!(@ $suite, $ops, $meta, true);
    };
    ($suite:ident, $ops:path, $meta:path, protect_refused) => {
        $crate::vmarena_suite!(@ $suite, $ops, $meta, false);
    };
    (@ $suite:ident, $ops:path, $meta:path, $strict:expr) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::vmarena_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn basic() -> Outcome {
                report("basic", cases::basic(&$ops))
            }

            #[test]
            fn zones() -> Outcome {
                report("zones", cases::zones(&$ops))
            }

            #[test]
            fn commit_limit() -> Outcome {
                report("commit_limit", cases::commit_limit(&$ops))
            }

            #[test]
            fn workload_seed_1() -> Outcome {
                report("workload_seed_1", cases::workload(&$ops, 1, 600))
            }

            #[test]
            fn workload_seed_0xabc() -> Outcome {
                report("workload_seed_0xabc", cases::workload(&$ops, 0xabc, 600))
            }

            #[test]
            fn workload_with_faults() -> Outcome {
                report("workload_with_faults", cases::workload_with_faults(&$ops, 5, 600))
            }

            #[test]
            fn shared_sequence_seed_1() -> Outcome {
                report("shared_sequence_seed_1", cases::shared_sequence(&$ops, 1, 600, $strict))
            }

            #[test]
            fn shared_sequence_seed_0x5eed() -> Outcome {
                report("shared_sequence_seed_0x5eed", cases::shared_sequence(&$ops, 0x5eed, 600, $strict))
            }

            #[test]
            fn as_arena_source() -> Outcome {
                report("as_arena_source", cases::as_source(&$ops, &$meta))
            }
        }
    };
}

/// The core's thread-safe arena with the kernel mutex and waiter, and its
/// quantum caches per thread and per CPU, on kernel threads:
/// `sync_suite!(suite, path::TO_META_OPS, path::TO_VM_OPS)`.
#[macro_export]
macro_rules! sync_suite {
    ($suite:ident, $meta:path, $vm:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::sync_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn basic() -> Outcome {
                report("basic", cases::basic(&$meta))
            }

            #[test]
            fn four_threads() -> Outcome {
                report("four_threads", cases::threads(&$meta, &$vm, 3000, false))
            }

            #[test]
            fn waiting_for_space() -> Outcome {
                report("waiting_for_space", cases::waiting(&$meta))
            }

            #[test]
            fn per_cpu_basic() -> Outcome {
                report("per_cpu_basic", cases::per_cpu_basic(&$meta))
            }

            #[test]
            fn per_cpu_four_threads() -> Outcome {
                report("per_cpu_four_threads", cases::threads(&$meta, &$vm, 20000, true))
            }

            #[test]
            fn per_cpu_pin() -> Outcome {
                report("per_cpu_pin", cases::per_cpu_pin())
            }
        }
    };
}

/// The core's chunk map on a backend:
/// `chunkmap_suite!(suite, path::TO_OPS, sparse_space_bytes)`, protect
/// expected to work and the shared sequences strict as in user space; with a
/// fourth argument `protect_refused`, for a backend that cannot change
/// protection, protect must be refused and change nothing instead.
#[macro_export]
macro_rules! chunkmap_suite {
    ($suite:ident, $ops:path, $space:expr) => {
        $crate::chunkmap_suite!(@ $suite, $ops, $space, true);
    };
    ($suite:ident, $ops:path, $space:expr, protect_refused) => {
        $crate::chunkmap_suite!(@ $suite, $ops, $space, false);
    };
    (@ $suite:ident, $ops:path, $space:expr, $strict:expr) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::chunkmap_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn ensure_mapped() -> Outcome {
                report("ensure_mapped", cases::ensure_mapped(&$ops))
            }

            #[test]
            fn quarantine_unmap_trim() -> Outcome {
                report("quarantine_unmap_trim", cases::quarantine_unmap_trim(&$ops))
            }

            #[test]
            fn sparse_space() -> Outcome {
                report("sparse_space", cases::sparse_space(&$ops, $space))
            }

            #[test]
            fn faults() -> Outcome {
                report("faults", cases::faults(&$ops, $strict))
            }

            #[test]
            fn shared_sequence_seed_1() -> Outcome {
                report("shared_sequence_seed_1", cases::shared_sequence(&$ops, 1, 600, $strict))
            }

            #[test]
            fn shared_sequence_seed_0xc4c4() -> Outcome {
                report("shared_sequence_seed_0xc4c4", cases::shared_sequence(&$ops, 0xc4c4, 600, $strict))
            }

            #[test]
            fn racing_threads() -> Outcome {
                report("racing_threads", cases::racing_threads(&$ops))
            }
        }
    };
}
