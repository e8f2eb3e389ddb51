//! Run the C tests (see the crate docs): each must report no failed check.

use vmspace_capi_ctest::*;

#[test]
fn every_declaration_matches_the_rust_side() {
    let want = vmspace_capi::NATIVE.len()
        + vmspace_capi::VMEM.len()
        + vmspace_capi::ctypes::CALLBACKS.len();
    // SAFETY: a C function without arguments or side effects.
    assert_eq!(unsafe { ctest_decls() } as usize, want);
}

#[test]
fn every_native_call_and_flag() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_calls() }, 0);
}

#[test]
fn every_error_code_bad_free_and_bad_arena() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_errors() }, 0);
}

#[test]
fn import_callbacks_parents_and_limits() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_imports() }, 0);
}

#[test]
fn an_outside_reviewers_edges() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_outside() }, 0);
}

#[test]
fn an_outside_reviewers_vmem_edges() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_outside_vmem() }, 0);
}

#[test]
fn an_outside_reviewers_statistics_model_and_edges() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_outside_more() }, 0);
}

#[test]
fn an_adversarial_outside_reviewers_edges() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_outside_adversary() }, 0);
}

#[test]
fn an_outside_reviewers_trees_waits_over_import_functions_and_unflushed_destroys() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_outside_trees() }, 0);
}

#[test]
fn an_outside_runtimes_aligned_imports_and_waiting_children() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_outside_runtime() }, 0);
}

#[test]
fn an_outside_reviewer_holding_vmem_h_to_freebsd() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_outside_vmem_fidelity() }, 0);
}

#[test]
fn threads_from_c() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_threads() }, 0);
}

#[test]
fn timed_waits_from_c() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_timed() }, 0);
}

#[test]
fn outside_fresh_waits_from_c() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_outside_fresh() }, 0);
}

#[test]
fn differential_against_a_reference_list() {
    for seed in [1u64, 2, 3, 0x5eed] {
        // SAFETY: a self-contained C test.
        assert_eq!(unsafe { ctest_differential(seed, 3000) }, 0, "seed {seed}");
    }
}

#[test]
fn every_vmem_call_and_flag() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_vmem_compat() }, 0);
}

#[test]
fn the_vmem_example_runs_unchanged() {
    // SAFETY: the example's main, which takes no arguments here.
    assert_eq!(unsafe { vmem_example_main() }, 0);
}

#[test]
fn the_readme_c_samples_compile_and_run() {
    // SAFETY: C functions without preconditions.
    let n = unsafe { readme_samples() };
    assert!(n >= 1, "README.md has C samples");
    for i in 0..n {
        // SAFETY: sample `i` exists.
        unsafe { readme_run(i) };
    }
}

#[test]
fn the_vm_layer_maps_unmaps_and_refuses_bad_ranges() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_vm() }, 0);
}
