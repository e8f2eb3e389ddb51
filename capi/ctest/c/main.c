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
int vmem_example_main(void);

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
	run("vmem_example", vmem_example_main());
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
