// SPDX-License-Identifier: MIT OR Apache-2.0

//! Suites of the layers over pages: a page backend by itself, the `Vm`,
//! fault injection into it, the VM arena and the chunk map.

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
                report(cases::reserve_release(&$ops))
            }

            #[test]
            fn reserve_aligned_2m() -> Outcome {
                report(cases::reserve_aligned(&$ops, Size(2 << 20)))
            }

            #[test]
            fn reserve_aligned_64k() -> Outcome {
                report(cases::reserve_aligned(&$ops, Size(64 << 10)))
            }

            #[test]
            fn reserve_bad_arguments() -> Outcome {
                report(cases::reserve_bad_arguments(&$ops))
            }

            #[test]
            fn reserve_too_large() -> Outcome {
                report(cases::reserve_too_large(&$ops))
            }

            #[test]
            fn map_touch_unmap() -> Outcome {
                report(cases::map_touch_unmap(&$ops))
            }

            #[test]
            fn release_with_mapped() -> Outcome {
                report(cases::release_with_mapped(&$ops))
            }

            #[test]
            fn many_reservations() -> Outcome {
                report(cases::many_reservations(&$ops))
            }

            #[test]
            fn relax_lets_others_run() -> Outcome {
                report(cases::relax_lets_others_run(&$ops))
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
                report(cases::reserve_basic(&$ops, Size(1 << 20), $ops.page_size()))
            }

            #[test]
            fn grains() -> Outcome {
                report(cases::grains(&$ops))
            }

            #[test]
            fn reserve_bad_arguments() -> Outcome {
                report(cases::reserve_bad_arguments(&$ops))
            }

            #[test]
            fn map_all_touch() -> Outcome {
                report(cases::map_all_touch(&$ops, 512))
            }

            #[test]
            fn remap_reads_zero() -> Outcome {
                report(cases::remap_reads_zero(&$ops))
            }

            #[test]
            fn bad_ranges() -> Outcome {
                report(cases::bad_ranges(&$ops))
            }

            #[test]
            fn many_vms() -> Outcome {
                report(cases::many_vms(&$ops))
            }

            #[test]
            fn trim() -> Outcome {
                report(cases::trim(&$ops))
            }

            #[test]
            fn mapped_runs() -> Outcome {
                report(cases::mapped_runs(&$ops))
            }

            #[test]
            fn release_and_drop() -> Outcome {
                report(cases::release_and_drop(&$ops))
            }

            /// Map and touch a large range of a larger reservation, unmap it.
            #[test]
            fn big_reservation_touch() -> Outcome {
                report(cases::big_sparse(&$ops, Size($big_reserve), Size($big_touch)))
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
                report(cases::reserve_fails(&$ops))
            }

            #[test]
            fn metadata_map_fails() -> Outcome {
                report(cases::metadata_map_fails(&$ops))
            }

            #[test]
            fn map_fails_at_each_step() -> Outcome {
                report(cases::map_fails_at_each_step(&$ops))
            }

            #[test]
            fn unmap_fails() -> Outcome {
                report(cases::unmap_fails(&$ops))
            }

            #[test]
            fn release_fails() -> Outcome {
                report(cases::release_fails(&$ops))
            }

            #[test]
            fn random_faults_seed_1() -> Outcome {
                report(cases::random_faults(&$ops, 1, 400))
            }

            #[test]
            fn random_faults_seed_77() -> Outcome {
                report(cases::random_faults(&$ops, 77, 400))
            }

            #[test]
            fn random_faults_seed_9001() -> Outcome {
                report(cases::random_faults(&$ops, 9001, 400))
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
                report(cases::basic(&$ops))
            }

            #[test]
            fn zones() -> Outcome {
                report(cases::zones(&$ops))
            }

            #[test]
            fn commit_limit() -> Outcome {
                report(cases::commit_limit(&$ops))
            }

            #[test]
            fn workload_seed_1() -> Outcome {
                report(cases::workload(&$ops, 1, 600))
            }

            #[test]
            fn workload_seed_0xabc() -> Outcome {
                report(cases::workload(&$ops, 0xabc, 600))
            }

            #[test]
            fn workload_with_faults() -> Outcome {
                report(cases::workload_with_faults(&$ops, 5, 600))
            }

            #[test]
            fn failed_calls_put_back() -> Outcome {
                report(cases::failed_calls_put_back(&$ops, $strict))
            }

            #[test]
            fn shared_sequence_seed_1() -> Outcome {
                report(cases::shared_sequence(&$ops, 1, 600, $strict))
            }

            #[test]
            fn shared_sequence_seed_0x5eed() -> Outcome {
                report(cases::shared_sequence(&$ops, 0x5eed, 600, $strict))
            }

            #[test]
            fn as_arena_source() -> Outcome {
                report(cases::as_source(&$ops, &$meta))
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
                report(cases::ensure_mapped(&$ops))
            }

            #[test]
            fn quarantine_unmap_trim() -> Outcome {
                report(cases::quarantine_unmap_trim(&$ops))
            }

            #[test]
            fn sparse_space() -> Outcome {
                report(cases::sparse_space(&$ops, $space))
            }

            #[test]
            fn faults() -> Outcome {
                report(cases::faults(&$ops, $strict))
            }

            #[test]
            fn shared_sequence_seed_1() -> Outcome {
                report(cases::shared_sequence(&$ops, 1, 600, $strict))
            }

            #[test]
            fn shared_sequence_seed_0xc4c4() -> Outcome {
                report(cases::shared_sequence(&$ops, 0xc4c4, 600, $strict))
            }

            #[test]
            fn racing_threads() -> Outcome {
                report(cases::racing_threads(&$ops))
            }
        }
    };
}
