// SPDX-License-Identifier: MIT OR Apache-2.0

//! Suites of the allocators over integer ranges: the arena, its thread-safe
//! wrappers, the workload generators, the stress runs, and the kernel
//! checkers' watch over them.

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
                report(workload(&$ops, 1, STEPS))
            }

            #[test]
            fn seed_2() -> Outcome {
                report(workload(&$ops, 2, STEPS))
            }

            #[test]
            fn seed_3() -> Outcome {
                report(workload(&$ops, 3, STEPS))
            }

            #[test]
            fn seed_42() -> Outcome {
                report(workload(&$ops, 42, STEPS))
            }

            #[test]
            fn seed_1234() -> Outcome {
                report(workload(&$ops, 1234, STEPS))
            }

            #[test]
            fn seed_0xdeadbeef() -> Outcome {
                report(workload(&$ops, 0xdead_beef, STEPS))
            }

            #[test]
            fn seed_long_run() -> Outcome {
                report(workload(&$ops, 0x5eed, 4 * STEPS))
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
                report(cases::policies(&$meta))
            }

            #[test]
            fn constraints() -> Outcome {
                report(cases::constraints(&$meta))
            }

            #[test]
            fn bad_frees() -> Outcome {
                report(cases::bad_frees(&$meta))
            }

            #[test]
            fn workload_quantum_1() -> Outcome {
                report(cases::workload(&$meta, 1, 1, 500))
            }

            #[test]
            fn workload_quantum_16() -> Outcome {
                report(cases::workload(&$meta, 16, 16, 500))
            }

            #[test]
            fn workload_quantum_4096() -> Outcome {
                report(cases::workload(&$meta, 4096, 4096, 500))
            }

            #[test]
            fn workload_seed_0x5eed() -> Outcome {
                report(cases::workload(&$meta, 64, 0x5eed, 2000))
            }

            #[test]
            fn mtbf_faults() -> Outcome {
                report(cases::mtbf(&$meta, 7, 500))
            }

            #[test]
            fn tag_store_faults() -> Outcome {
                report(cases::tag_store_faults(&$meta, 0xfeed, 8))
            }

            #[test]
            fn source_round_trip() -> Outcome {
                report(cases::source_round_trip(&$vm, &$meta, 8))
            }

            #[test]
            fn import_chain_seed_1() -> Outcome {
                report(cases::import_chain(&$vm, &$meta, 1, 300))
            }

            #[test]
            fn import_chain_seed_2() -> Outcome {
                report(cases::import_chain(&$vm, &$meta, 2, 300))
            }

            #[test]
            fn import_chain_seed_0xc0ffee() -> Outcome {
                report(cases::import_chain(&$vm, &$meta, 0xc0ffee, 300))
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
                report(cases::basic(&$meta))
            }

            #[test]
            fn four_threads() -> Outcome {
                report(cases::threads(&$meta, &$vm, 3000, false))
            }

            #[test]
            fn waiting_for_space() -> Outcome {
                report(cases::waiting(&$meta))
            }

            #[test]
            fn signalled_timed_wait() -> Outcome {
                report(cases::signalled_timed_wait())
            }

            #[test]
            fn per_cpu_basic() -> Outcome {
                report(cases::per_cpu_basic(&$meta))
            }

            #[test]
            fn per_cpu_four_threads() -> Outcome {
                report(cases::threads(&$meta, &$vm, 20000, true))
            }

            #[test]
            fn per_cpu_pin() -> Outcome {
                report(cases::per_cpu_pin())
            }
        }
    };
}

/// The multi-threaded cases, `rounds` times each, for the data-race
/// detector (the built-in build adds it under `CONFIG_KCSAN`): KCSAN samples
/// accesses, so a race needs many runs to be seen.
/// `stress_suite!(suite, path::TO_META_OPS, path::TO_VM_OPS, rounds)`.
#[macro_export]
macro_rules! stress_suite {
    ($suite:ident, $meta:path, $vm:path, $rounds:expr) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::outcome::repeat;
            use $crate::{chunkmap_cases, report, sync_cases, Outcome};

            #[test]
            fn four_threads() -> Outcome {
                report(repeat($rounds, || sync_cases::threads(&$meta, &$vm, 3000, false)))
            }

            #[test]
            fn waiting_for_space() -> Outcome {
                report(repeat($rounds, || sync_cases::waiting(&$meta)))
            }

            #[test]
            fn per_cpu_four_threads() -> Outcome {
                report(repeat($rounds, || sync_cases::threads(&$meta, &$vm, 20000, true)))
            }

            #[test]
            fn per_cpu_pin() -> Outcome {
                report(repeat($rounds, sync_cases::per_cpu_pin))
            }

            #[test]
            fn chunkmap_racing_threads() -> Outcome {
                report(repeat($rounds, || chunkmap_cases::racing_threads(&$vm)))
            }
        }
    };
}

/// Whether the kernel's checkers still watch (kernels with
/// `CONFIG_PROVE_LOCKING`): `checkers_suite!(suite)`.
#[macro_export]
macro_rules! checkers_suite {
    ($suite:ident) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::checker_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn lockdep_is_on() -> Outcome {
                report(cases::lockdep_is_on())
            }
        }
    };
}
