//! Round 28 outside review: the claims of `vmspace.h` and `vmspace/vmem.h`
//! not tested by `outside_r25_docs_c.rs`, in C (`c/outside_r28_*.c`, by
//! area, helpers in `c/outside_r28.h`), one entry point per area.

use core::ffi::c_int;
use std::sync::{Mutex, PoisonError};

// Links the C tests' static library and the user-space C API.
use vmspace_capi_ctest as _;

/// The C entry points share static state (hook and reclaim counters), so
/// they run one at a time whatever `--test-threads` says.
static SERIAL: Mutex<()> = Mutex::new(());

/// Run the C entry point `f` alone; its count of failed checks.
fn serial(f: unsafe extern "C" fn() -> c_int) -> c_int {
    let _one = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: each entry point is a self-contained C test taking no
    // arguments; its threads end (or are left detached on leaked arenas)
    // before it returns, and the lock keeps the others out of its statics.
    unsafe { f() }
}

extern "C" {
    fn ctest_r28_args() -> c_int;
    fn ctest_r28_create() -> c_int;
    fn ctest_r28_xalloc() -> c_int;
    fn ctest_r28_frees() -> c_int;
    fn ctest_r28_qcache() -> c_int;
    fn ctest_r28_stats() -> c_int;
    fn ctest_r28_handles() -> c_int;
    fn ctest_r28_tree() -> c_int;
    fn ctest_r28_import() -> c_int;
    fn ctest_r28_threads() -> c_int;
    fn ctest_r28_vmem() -> c_int;
}

#[test]
fn r28_arguments_of_alloc_timed_add_and_introspection() {
    assert_eq!(serial(ctest_r28_args), 0);
}

#[test]
fn r28_create_and_create_ex() {
    assert_eq!(serial(ctest_r28_create), 0);
}

#[test]
fn r28_xalloc_constraints() {
    assert_eq!(serial(ctest_r28_xalloc), 0);
}

#[test]
fn r28_frees_deferred_frees_and_policies() {
    assert_eq!(serial(ctest_r28_frees), 0);
}

#[test]
fn r28_quantum_caches() {
    assert_eq!(serial(ctest_r28_qcache), 0);
}

#[test]
fn r28_sizes_walks_and_counters() {
    assert_eq!(serial(ctest_r28_stats), 0);
}

#[test]
fn r28_handles() {
    assert_eq!(serial(ctest_r28_handles), 0);
}

#[test]
fn r28_trees_of_arenas() {
    assert_eq!(serial(ctest_r28_tree), 0);
}

#[test]
fn r28_import_functions() {
    assert_eq!(serial(ctest_r28_import), 0);
}

#[test]
fn r28_racing_frees_exactly_one_succeeds() {
    assert_eq!(serial(ctest_r28_threads), 0);
}

#[test]
fn r28_vmem_h_against_vmem_9() {
    assert_eq!(serial(ctest_r28_vmem), 0);
}

extern "C" {
    fn ctest_r28_waits() -> c_int;
    fn ctest_r28_qcache_many() -> c_int;
}

#[test]
fn r28_waits_wake_as_documented() {
    assert_eq!(serial(ctest_r28_waits), 0);
}

#[test]
fn r28_quantum_caches_past_their_slab_records_and_reclaim() {
    assert_eq!(serial(ctest_r28_qcache_many), 0);
}

extern "C" {
    fn ctest_r28_corners() -> c_int;
    fn ctest_r28_tags() -> c_int;
}

#[test]
fn r28_instant_and_next_fit_quantum_one_cache_bypasses_contains() {
    assert_eq!(serial(ctest_r28_corners), 0);
}

#[test]
fn r28_tag_exhaustion_and_bad_imports_change_nothing() {
    assert_eq!(serial(ctest_r28_tags), 0);
}

extern "C" {
    fn ctest_r28_exact_sizes() -> c_int;
    fn ctest_r28_bad_handles_counted() -> c_int;
}

/// vmspace.h:322-326: vmspace_arena_free frees "allocated by
/// vmspace_arena_alloc or _xalloc with exactly this size"; -EMSGSIZE "a
/// free with a size other than the one allocated".
#[test]
fn r28_frees_need_the_exact_size_with_or_without_caches() {
    assert_eq!(serial(ctest_r28_exact_sizes), 0);
}

/// vmspace.h: bad_frees counts "frees refused (arena and caches)".
#[test]
fn r28_every_refused_handle_free_is_counted() {
    assert_eq!(serial(ctest_r28_bad_handles_counted), 0);
}

extern "C" {
    fn ctest_r28_more() -> c_int;
}

#[test]
fn r28_windows_wakes_vmem_add_failures_child_destroys_and_tree_threads() {
    assert_eq!(serial(ctest_r28_more), 0);
}

extern "C" {
    fn ctest_r28_vmem_add_failures() -> c_int;
}

/// One failing `vmem_add` is one failed add in the counters (vmspace.h
/// `struct vmspace_counters`: failures, injected).
#[test]
fn r28_a_failing_vmem_add_counts_once() {
    assert_eq!(serial(ctest_r28_vmem_add_failures), 0);
}

extern "C" {
    fn ctest_r28_races_and_releases() -> c_int;
}

#[test]
fn r28_mixed_racing_frees_releases_match_imports() {
    assert_eq!(serial(ctest_r28_races_and_releases), 0);
}

extern "C" {
    fn ctest_r28_vmem_void_calls() -> c_int;
}

#[test]
fn r28_vmem_void_calls_print_copies_nocross_imports_limits() {
    assert_eq!(serial(ctest_r28_vmem_void_calls), 0);
}

extern "C" {
    fn ctest_r28_stale_handle_vs_slab() -> c_int;
}

/// vmspace.h: a stale handle is -ENOENT "except a stale handle whose tag
/// was since reused for a new handle allocation at the same address". A
/// quantum-cache slab is no handle allocation of the caller's.
#[test]
fn r28_a_stale_handle_does_not_free_a_quantum_cache_slab() {
    assert_eq!(serial(ctest_r28_stale_handle_vs_slab), 0);
}

extern "C" {
    fn ctest_r28_largest_free() -> c_int;
}

#[test]
fn r28_largest_free_is_exact() {
    assert_eq!(serial(ctest_r28_largest_free), 0);
}

extern "C" {
    fn ctest_r28_vmem_idiom() -> c_int;
}

#[test]
fn r28_vmem_child_importing_with_vmem_alloc_and_vmem_free() {
    assert_eq!(serial(ctest_r28_vmem_idiom), 0);
}

extern "C" {
    fn ctest_r28_walk_order() -> c_int;
}

#[test]
fn r28_walks_in_address_order_requested_only_for_allocated() {
    assert_eq!(serial(ctest_r28_walk_order), 0);
}

extern "C" {
    fn ctest_r28_failure_counts() -> c_int;
}

/// vmspace.h, failures: each try of an allocation counts one.
#[test]
fn r28_each_try_of_an_allocation_counts_one_failure() {
    assert_eq!(serial(ctest_r28_failure_counts), 0);
}

extern "C" {
    fn ctest_r28_child_own_spans() -> c_int;
}

#[test]
fn r28_a_childs_own_spans_stay_its_own() {
    assert_eq!(serial(ctest_r28_child_own_spans), 0);
}

extern "C" {
    fn ctest_r28_cached_wrong_sizes() -> c_int;
}

/// vmspace.h:37-40: -ENOENT "a free of something not allocated"; -EMSGSIZE
/// "a free with a size other than the one allocated"; and "a free of size
/// 0 is -ENOENT or -EMSGSIZE as below".
#[test]
fn r28_a_cached_object_freed_with_a_wrong_size_is_emsgsize() {
    assert_eq!(serial(ctest_r28_cached_wrong_sizes), 0);
}

extern "C" {
    fn ctest_r28_timed_wakes() -> c_int;
}

#[test]
fn r28_timed_waits_wake_for_a_free() {
    assert_eq!(serial(ctest_r28_timed_wakes), 0);
}

extern "C" {
    fn ctest_r28_qcache_quanta_and_vmem_races() -> c_int;
}

#[test]
fn r28_cache_quanta_limit_and_racing_vmem_frees() {
    assert_eq!(serial(ctest_r28_qcache_quanta_and_vmem_races), 0);
}

extern "C" {
    fn ctest_r28_slab_handle_counted() -> c_int;
}

/// vmspace.h:177: bad_frees counts "frees refused (arena and caches)".
#[test]
fn r28_a_handle_free_refused_at_a_slab_is_counted() {
    assert_eq!(serial(ctest_r28_slab_handle_counted), 0);
}

extern "C" {
    fn ctest_r28_child_constraints() -> c_int;
}

#[test]
fn r28_random_constraints_met_through_imports() {
    assert_eq!(serial(ctest_r28_child_constraints), 0);
}

extern "C" {
    fn ctest_r28_policies_agree() -> c_int;
}

/// vmspace.h:33: -ENOMEM is "no space: no free segment fits": whichever
/// the policy, a request succeeds when some free segment fits it.
#[test]
fn r28_every_policy_finds_a_fit_when_one_exists() {
    assert_eq!(serial(ctest_r28_policies_agree), 0);
}

extern "C" {
    fn ctest_r28_small_bits() -> c_int;
}

#[test]
fn r28_short_histograms_and_slabless_cache_objects() {
    assert_eq!(serial(ctest_r28_small_bits), 0);
}

extern "C" {
    fn ctest_r28_success_is_no_failure() -> c_int;
}

/// vmspace.h, failures: "each try counted", the quantum cache's failed
/// try for a slab included, so a cache-sized allocation that finds no room
/// for a slab and succeeds from the arena counts one failure.
#[test]
fn r28_a_successful_cache_sized_allocation_counts_its_slab_try() {
    assert_eq!(serial(ctest_r28_success_is_no_failure), 0);
}

extern "C" {
    fn ctest_r28_handle_after_reclaim() -> c_int;
}

/// vmspace.h, failures: "each try counted", the try before the caches'
/// slabs are reclaimed included: an allocation that succeeds after the
/// reclaim counts exactly that one.
#[test]
fn r28_an_allocation_that_succeeds_after_a_reclaim_counts_the_try_before() {
    assert_eq!(serial(ctest_r28_handle_after_reclaim), 0);
}

extern "C" {
    fn ctest_r28_mixed_threads() -> c_int;
}

#[test]
fn r28_threads_mixing_every_operation_on_a_cached_arena() {
    assert_eq!(serial(ctest_r28_mixed_threads), 0);
}
