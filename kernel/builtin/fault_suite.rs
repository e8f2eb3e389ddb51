// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_vm_faults`: the shim's fault injector wrapped around
//! the sparse vmalloc backend, under the core's `Vm`.

#[kernel::macros::kunit_tests(vmspace_vm_faults)]
mod tests {
    use vmspace_ktest::fault_cases as cases;
    use vmspace_ktest::{report, Outcome};

    use crate::sparse::SparseVmalloc;

    static OPS: SparseVmalloc = SparseVmalloc::new();

    #[test]
    fn reserve_fails() -> Outcome {
        report("reserve_fails", cases::reserve_fails(&OPS))
    }

    #[test]
    fn metadata_map_fails() -> Outcome {
        report("metadata_map_fails", cases::metadata_map_fails(&OPS))
    }

    #[test]
    fn map_fails_at_each_step() -> Outcome {
        report("map_fails_at_each_step", cases::map_fails_at_each_step(&OPS))
    }

    #[test]
    fn unmap_fails() -> Outcome {
        report("unmap_fails", cases::unmap_fails(&OPS))
    }

    #[test]
    fn release_fails() -> Outcome {
        report("release_fails", cases::release_fails(&OPS))
    }

    #[test]
    fn random_faults_seed_1() -> Outcome {
        report("random_faults_seed_1", cases::random_faults(&OPS, 1, 400))
    }

    #[test]
    fn random_faults_seed_77() -> Outcome {
        report("random_faults_seed_77", cases::random_faults(&OPS, 77, 400))
    }

    #[test]
    fn random_faults_seed_9001() -> Outcome {
        report("random_faults_seed_9001", cases::random_faults(&OPS, 9001, 400))
    }
}
