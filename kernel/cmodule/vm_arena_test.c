// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Arenas of pages from a module (vmspace_arena_set_vm): an arena importing
 * from a VM of its own in the vmalloc area hands out mapped kernel memory;
 * what it gives back is unmapped; the VM's mapped bytes are the imported
 * spans at every step; busy, limit, stop and bad-argument paths; quantum
 * caches and a child arena on top; destroyed with allocations live.
 */
#include <kunit/test.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <linux/vmspace.h>

/* The bytes the arena's VM has mapped now, checked against its imports. */
static void mapped_is_imported(struct kunit *test, vmspace_arena_t *a)
{
	struct vmspace_vm_info info;
	struct vmspace_sizes sz;

	KUNIT_ASSERT_EQ(test, vmspace_arena_vm_info(a, &info), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_sizes(a, &sz), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, sz.imported);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
}

static void an_arena_of_pages(struct kunit *test)
{
	const vmspace_size_t page = PAGE_SIZE;
	struct vmspace_vm_info info;
	vmspace_addr_t got[24], x;
	vmspace_size_t sizes[24];
	vmspace_arena_t *a;
	int i;

	a = vmspace_arena_create("kpages", 0, 0, page, 0, 0);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_vm_info(a, &info), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_vm(a, 32UL << 20, 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_vm(NULL, 32UL << 20, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_vm(a, 1UL << 60, 0), -ENOMEM);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_vm(a, 32UL << 20, 0), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_vm_info(a, &info), 0);
	KUNIT_EXPECT_EQ(test, info.size, (vmspace_size_t)(32UL << 20));
	KUNIT_EXPECT_EQ(test, info.page_size, page);
	KUNIT_EXPECT_TRUE(test, is_vmalloc_addr((void *)info.base));

	for (i = 0; i < 24; i++) {
		sizes[i] = (1 + i % 5) * page - (i * 37) % page;
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, sizes[i], 0, &got[i]), 0);
		KUNIT_EXPECT_TRUE(test, got[i] >= info.base &&
					got[i] + sizes[i] <= info.base + info.size);
		KUNIT_EXPECT_NULL(test, memchr_inv((void *)got[i], 0, sizes[i]));
		memset((void *)got[i], i + 1, sizes[i]);
		mapped_is_imported(test, a);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_vm(a, 1UL << 20, 0), -EBUSY);
	for (i = 0; i < 24; i++) {
		KUNIT_EXPECT_EQ(test, ((u8 *)got[i])[sizes[i] - 1], (u8)(i + 1));
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, got[i], sizes[i]), 0);
		mapped_is_imported(test, a);
	}
	KUNIT_ASSERT_EQ(test, vmspace_arena_vm_info(a, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, (vmspace_size_t)0);

	/* The limit holds imports to it. */
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_limit(a, 4 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 5 * page, 0, &x), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 4 * page, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 4 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_limit(a, 0), 0);

	/* Stopped: no VM, no space. */
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_vm(a, 0, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_vm_info(a, &info), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, page, 0, &x), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

static void cached_pages_a_child_and_a_live_destroy(struct kunit *test)
{
	const vmspace_size_t page = PAGE_SIZE;
	struct vmspace_params p = { .name = "kchild", .quantum = PAGE_SIZE };
	vmspace_addr_t got[64], y;
	vmspace_size_t freed = 0;
	vmspace_arena_t *a, *c;
	int i;

	a = vmspace_arena_create("kcached", 0, 0, page, 4 * page, 0);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_vm(a, 16UL << 20, 0), 0);
	for (i = 0; i < 64; i++) {
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, (1 + i % 4) * page, 0, &got[i]), 0);
		memset((void *)got[i], 0x5a, (1 + i % 4) * page);
	}
	for (i = 0; i < 64; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, got[i], (1 + i % 4) * page), 0);
	mapped_is_imported(test, a);

	p.parent = a;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&p, &c), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(c, 3 * page, 0, &y), 0);
	memset((void *)y, 1, 3 * page);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(c, y, 3 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(c, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, 3 * page);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), -EBUSY);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0);
	mapped_is_imported(test, a);

	/* Destroyed with an allocation live: the VM goes with its pages (the
	 * platform reports the leak). */
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 8 * page, 0, &y), 0);
	memset((void *)y, 2, 8 * page);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

static struct kunit_case vmspace_cmod_vm_arena_cases[] = {
	KUNIT_CASE(an_arena_of_pages),
	KUNIT_CASE(cached_pages_a_child_and_a_live_destroy),
	{}
};

static struct kunit_suite vmspace_cmod_vm_arena_suite = {
	.name = "vmspace_cmod_vm_arena",
	.test_cases = vmspace_cmod_vm_arena_cases,
};

kunit_test_suite(vmspace_cmod_vm_arena_suite);
