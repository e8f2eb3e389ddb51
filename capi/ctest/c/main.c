/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The C tests as one program, for runs outside cargo (make capi-asan:
 * AddressSanitizer and UBSan). cargo test calls the same entry points from
 * Rust (tests/c_api.rs); this file is not in that build.
 */
#include <stdint.h>
#include <stdio.h>

int ctest_calls(void);
int ctest_errors(void);
int ctest_imports(void);
int ctest_threads(void);
int ctest_timed(void);
int ctest_outside(void);
int ctest_outside_vmem(void);
int ctest_outside_more(void);
int ctest_outside_adversary(void);
int ctest_outside_runtime(void);
int ctest_outside_vmem_fidelity(void);
int ctest_outside_trees(void);
int ctest_outside_fresh(void);
int ctest_differential(uint64_t seed, int steps);
int ctest_vmem_compat(void);
int ctest_vm(void);
int vmem_example_main(void);
int ctest_r28_args(void);
int ctest_r28_create(void);
int ctest_r28_xalloc(void);
int ctest_r28_frees(void);
int ctest_r28_qcache(void);
int ctest_r28_stats(void);
int ctest_r28_handles(void);
int ctest_r28_tree(void);
int ctest_r28_import(void);
int ctest_r28_threads(void);
int ctest_r28_vmem(void);
int ctest_r28_waits(void);
int ctest_r28_qcache_many(void);
int ctest_r28_corners(void);
int ctest_r28_tags(void);
int ctest_outside_r36b(void);
int ctest_r28_exact_sizes(void);
int ctest_r28_bad_handles_counted(void);
int ctest_r28_more(void);
int ctest_r28_vmem_add_failures(void);
int ctest_r28_races_and_releases(void);
int ctest_r28_vmem_void_calls(void);
int ctest_r28_stale_handle_vs_slab(void);
int ctest_r28_largest_free(void);
int ctest_r28_vmem_idiom(void);
int ctest_r28_walk_order(void);
int ctest_r28_failure_counts(void);
int ctest_r28_child_own_spans(void);
int ctest_r28_cached_wrong_sizes(void);
int ctest_r28_timed_wakes(void);
int ctest_r28_qcache_quanta_and_vmem_races(void);
int ctest_r28_slab_handle_counted(void);
int ctest_r28_child_constraints(void);
int ctest_r28_policies_agree(void);
int ctest_r28_small_bits(void);
int ctest_r28_success_is_no_failure(void);
int ctest_r28_handle_after_reclaim(void);
int ctest_r28_mixed_threads(void);

static int passed, failed;

static void run(const char *name, int failures)
{
	printf("%-24s %s\n", name, failures ? "FAILED" : "ok");
	if (failures)
		failed++;
	else
		passed++;
}

int main(void)
{
	run("calls", ctest_calls());
	run("errors", ctest_errors());
	run("imports", ctest_imports());
	run("threads", ctest_threads());
	run("timed", ctest_timed());
	run("outside", ctest_outside());
	run("outside_vmem", ctest_outside_vmem());
	run("outside_more", ctest_outside_more());
	run("outside_adversary", ctest_outside_adversary());
	run("outside_runtime", ctest_outside_runtime());
	run("outside_vmem_fidelity", ctest_outside_vmem_fidelity());
	run("outside_trees", ctest_outside_trees());
	run("outside_fresh", ctest_outside_fresh());
	for (uint64_t seed = 1; seed <= 4; seed++)
		run("differential", ctest_differential(seed, 3000));
	run("vmem_compat", ctest_vmem_compat());
	run("vm", ctest_vm());
	run("vmem_example", vmem_example_main());
	run("r28_args", ctest_r28_args());
	run("r28_create", ctest_r28_create());
	run("r28_xalloc", ctest_r28_xalloc());
	run("r28_frees", ctest_r28_frees());
	run("r28_qcache", ctest_r28_qcache());
	run("r28_stats", ctest_r28_stats());
	run("r28_handles", ctest_r28_handles());
	run("r28_tree", ctest_r28_tree());
	run("r28_import", ctest_r28_import());
	run("r28_threads", ctest_r28_threads());
	run("r28_vmem", ctest_r28_vmem());
	run("r28_waits", ctest_r28_waits());
	run("r28_qcache_many", ctest_r28_qcache_many());
	run("r28_corners", ctest_r28_corners());
	run("r28_tags", ctest_r28_tags());
	run("outside_r36b", ctest_outside_r36b());
	run("r28_exact_sizes", ctest_r28_exact_sizes());
	run("r28_bad_handles_counted", ctest_r28_bad_handles_counted());
	run("r28_more", ctest_r28_more());
	run("r28_vmem_add_failures", ctest_r28_vmem_add_failures());
	run("r28_races_and_releases", ctest_r28_races_and_releases());
	run("r28_vmem_void_calls", ctest_r28_vmem_void_calls());
	run("r28_stale_handle_vs_slab", ctest_r28_stale_handle_vs_slab());
	run("r28_largest_free", ctest_r28_largest_free());
	run("r28_vmem_idiom", ctest_r28_vmem_idiom());
	run("r28_walk_order", ctest_r28_walk_order());
	run("r28_failure_counts", ctest_r28_failure_counts());
	run("r28_child_own_spans", ctest_r28_child_own_spans());
	run("r28_cached_wrong_sizes", ctest_r28_cached_wrong_sizes());
	run("r28_timed_wakes", ctest_r28_timed_wakes());
	run("r28_qcache_quanta_and_vmem_races", ctest_r28_qcache_quanta_and_vmem_races());
	run("r28_slab_handle_counted", ctest_r28_slab_handle_counted());
	run("r28_child_constraints", ctest_r28_child_constraints());
	run("r28_policies_agree", ctest_r28_policies_agree());
	run("r28_small_bits", ctest_r28_small_bits());
	run("r28_success_is_no_failure", ctest_r28_success_is_no_failure());
	run("r28_handle_after_reclaim", ctest_r28_handle_after_reclaim());
	run("r28_mixed_threads", ctest_r28_mixed_threads());
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
