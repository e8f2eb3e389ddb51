// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suites `vmspace_vm` and `vmspace_vm_workload`: the core's `Vm` on
//! the sparse vmalloc backend, including seeded map/unmap sequences from the
//! core's workload generator and a 1 GiB sparse reservation.

#[kernel::macros::kunit_tests(vmspace_vm)]
mod tests {
    use vmspace_ktest::vm_cases as cases;
    use vmspace_ktest::{report, Outcome};
    use vmspace_shim::{PageOps, Size};

    use crate::sparse::SparseVmalloc;

    static OPS: SparseVmalloc = SparseVmalloc::new();

    #[test]
    fn reserve_basic() -> Outcome {
        report("reserve_basic", cases::reserve_basic(&OPS, Size(1 << 20), OPS.page_size()))
    }

    #[test]
    fn grains() -> Outcome {
        report("grains", cases::grains(&OPS))
    }

    #[test]
    fn reserve_bad_arguments() -> Outcome {
        report("reserve_bad_arguments", cases::reserve_bad_arguments(&OPS))
    }

    #[test]
    fn map_all_touch() -> Outcome {
        report("map_all_touch", cases::map_all_touch(&OPS, 512))
    }

    #[test]
    fn remap_reads_zero() -> Outcome {
        report("remap_reads_zero", cases::remap_reads_zero(&OPS))
    }

    #[test]
    fn bad_ranges() -> Outcome {
        report("bad_ranges", cases::bad_ranges(&OPS))
    }

    #[test]
    fn many_vms() -> Outcome {
        report("many_vms", cases::many_vms(&OPS))
    }

    #[test]
    fn trim() -> Outcome {
        report("trim", cases::trim(&OPS))
    }

    #[test]
    fn mapped_runs() -> Outcome {
        report("mapped_runs", cases::mapped_runs(&OPS))
    }

    #[test]
    fn release_and_drop() -> Outcome {
        report("release_and_drop", cases::release_and_drop(&OPS))
    }

    /// Map and touch 64 MiB of a 1 GiB sparse reservation, then unmap it.
    #[test]
    fn sparse_1g_touch_64m() -> Outcome {
        report("sparse_1g_touch_64m", cases::big_sparse(&OPS, Size(1 << 30), Size(64 << 20)))
    }
}

#[kernel::macros::kunit_tests(vmspace_vm_workload)]
mod workload {
    use vmspace_ktest::vm_cases::workload;
    use vmspace_ktest::{report, Outcome};

    use crate::sparse::SparseVmalloc;

    static OPS: SparseVmalloc = SparseVmalloc::new();
    const STEPS: usize = 400;

    #[test]
    fn seed_1() -> Outcome {
        report("seed_1", workload(&OPS, 1, STEPS))
    }

    #[test]
    fn seed_2() -> Outcome {
        report("seed_2", workload(&OPS, 2, STEPS))
    }

    #[test]
    fn seed_3() -> Outcome {
        report("seed_3", workload(&OPS, 3, STEPS))
    }

    #[test]
    fn seed_42() -> Outcome {
        report("seed_42", workload(&OPS, 42, STEPS))
    }

    #[test]
    fn seed_1234() -> Outcome {
        report("seed_1234", workload(&OPS, 1234, STEPS))
    }

    #[test]
    fn seed_0xdeadbeef() -> Outcome {
        report("seed_0xdeadbeef", workload(&OPS, 0xdead_beef, STEPS))
    }

    #[test]
    fn seed_long_run() -> Outcome {
        report("seed_long_run", workload(&OPS, 0x5eed, 4 * STEPS))
    }
}
