// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The VM layer (vmspace_vm_*) from a module, in the kernel, where a VM's
 * pages are pages of the vmalloc area: reserve, map, write through a
 * pointer, protect, unmap, what is mapped, the bookkeeping and its trim; every error
 * the header lists that a caller can provoke (a huge reservation included);
 * and an arena over a VM's range handing out addresses the VM maps.
 */
#include <kunit/test.h>
#include <linux/limits.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <linux/vmspace.h>

#define VM_SIZE (16UL << 20)
#define VM_GRAIN (2UL << 20)

/* Whether [p, p + n) is all `c`. */
static bool all_bytes(const void *p, size_t n, u8 c)
{
	return memchr_inv(p, c, n) == NULL;
}

/* Reserve, map, write, unmap, map again, trim, destroy with pages mapped. */
static void vm_maps_pages_in_the_kernel(struct kunit *test)
{
	const vmspace_size_t page = PAGE_SIZE;
	struct vmspace_vm_info info, after;
	vmspace_vm_t *vm = NULL;
	vmspace_addr_t b, last;
	unsigned char *p;
	int trimmed;

	KUNIT_ASSERT_EQ(test, vmspace_vm_create(VM_SIZE, VM_GRAIN, 0, &vm), 0);
	KUNIT_ASSERT_NOT_NULL(test, vm);
	KUNIT_ASSERT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.base % VM_GRAIN, (vmspace_addr_t)0);
	KUNIT_EXPECT_NE(test, info.base, (vmspace_addr_t)0);
	KUNIT_EXPECT_EQ(test, info.size, (vmspace_size_t)VM_SIZE);
	KUNIT_EXPECT_EQ(test, info.grain, (vmspace_size_t)VM_GRAIN);
	KUNIT_EXPECT_EQ(test, info.page_size, page);
	KUNIT_EXPECT_EQ(test, info.mapped, (vmspace_size_t)0);
	KUNIT_EXPECT_GE(test, info.reserved, info.size);
	/* A vmalloc address, as the kernel sees it. */
	KUNIT_EXPECT_TRUE(test, is_vmalloc_addr((void *)info.base));
	b = info.base;
	p = (unsigned char *)(b + page);

	/* Three pages: zero when mapped, writable, and mapped per the VM. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + page, 3 * page), 0);
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, b + page, 3 * page), 0);
	KUNIT_EXPECT_TRUE(test, all_bytes(p, 3 * page, 0));
	memset(p, 0xa5, 3 * page);
	KUNIT_EXPECT_TRUE(test, all_bytes(p, 3 * page, 0xa5));
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + page, 3 * page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 2 * page, page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 4 * page, page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, 2 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 3 * page);
	KUNIT_EXPECT_GT(test, info.metadata, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* The middle page unmapped: the VM says so, its neighbours keep
	 * their contents; mapped again it reads zero. */
	KUNIT_ASSERT_EQ(test, vmspace_vm_unmap(vm, b + 2 * page, page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 2 * page, page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + page, 3 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + page, page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 3 * page, page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 2 * page);
	KUNIT_EXPECT_TRUE(test, all_bytes(p, page, 0xa5));
	KUNIT_EXPECT_TRUE(test, all_bytes(p + 2 * page, page, 0xa5));
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, b + 2 * page, page), 0);
	KUNIT_EXPECT_TRUE(test, all_bytes(p + page, page, 0));
	KUNIT_EXPECT_TRUE(test, all_bytes(p, page, 0xa5));
	KUNIT_EXPECT_TRUE(test, all_bytes(p + 2 * page, page, 0xa5));
	memset(p + page, 0x5a, page);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + page, 3 * page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 3 * page);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* The last page of the VM. */
	last = b + VM_SIZE - page;
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, last, page), 0);
	KUNIT_EXPECT_TRUE(test, all_bytes((void *)last, page, 0));
	memset((void *)last, 0x3c, page);
	KUNIT_EXPECT_TRUE(test, all_bytes((void *)last, page, 0x3c));
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 4 * page);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, last, page), 0);

	/* Everything unmapped: the bookkeeping can be given back. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b + page, 3 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);
	trimmed = vmspace_vm_trim(vm);
	KUNIT_EXPECT_GE(test, trimmed, 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_trim(vm), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &after), 0);
	KUNIT_EXPECT_LT(test, after.metadata, info.metadata);
	if (trimmed > 0)
		KUNIT_EXPECT_EQ(test, after.metadata, info.metadata - (vmspace_size_t)trimmed * page);
	KUNIT_EXPECT_EQ(test, after.mapped, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* Mapped again after the trim: the bookkeeping comes back. */
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, b, 16 * page), 0);
	memset((void *)b, 0x11, 16 * page);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, 16 * page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 16 * page);
	KUNIT_EXPECT_GT(test, info.metadata, after.metadata);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* Destroyed with pages mapped: they go with it. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_destroy(vm), 0);
}

/* vmspace_vm_protect: no access takes the pages' PTEs away (vmalloc_to_page
 * finds none) and keeps the pages; read-only and read-write give them back
 * with what they held; unmap takes a protected page; the errors. (That a
 * read-only page's PTE has no write bit is the built-in suite
 * vmspace_sparse_protect's to show: UML retries a kernel fault in the
 * vmalloc area rather than let a test provoke one.) */
static void vm_protect_in_the_kernel(struct kunit *test)
{
	static const int bad_prots[] = { VMSPACE_PROT_WRITE, 4, VMSPACE_PROT_READ | 4, -1, 0x100 };
	const vmspace_size_t page = PAGE_SIZE;
	struct vmspace_vm_info info;
	vmspace_vm_t *vm = NULL;
	vmspace_addr_t b;
	unsigned char *p;
	size_t i;

	KUNIT_ASSERT_EQ(test, vmspace_vm_create(VM_SIZE, 0, 0, &vm), 0);
	KUNIT_ASSERT_EQ(test, vmspace_vm_info(vm, &info), 0);
	b = info.base;
	p = (unsigned char *)b;
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, b, 4 * page), 0);
	memset(p, 0x5a, 4 * page);

	/* Pages 1 and 2 no access: unmapped from the page tables, still the
	 * VM's (mapped, counted). */
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, 2 * page, VMSPACE_PROT_NONE), 0);
	KUNIT_EXPECT_NULL(test, vmalloc_to_page(p + page));
	KUNIT_EXPECT_NULL(test, vmalloc_to_page(p + 3 * page - 1));
	KUNIT_EXPECT_NOT_NULL(test, vmalloc_to_page(p));
	KUNIT_EXPECT_NOT_NULL(test, vmalloc_to_page(p + 3 * page));
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, 4 * page), 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 4 * page);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* The errors, none of which gives a page back. */
	for (i = 0; i < ARRAY_SIZE(bad_prots); i++)
		KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, page, bad_prots[i]), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b - page, page, VMSPACE_PROT_WRITE), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + 4 * page, page, VMSPACE_PROT_READ), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + 2 * page, 3 * page, VMSPACE_PROT_READ), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, 0, VMSPACE_PROT_READ), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + 1, page, VMSPACE_PROT_READ), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b - page, page, VMSPACE_PROT_READ), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + VM_SIZE, page, VMSPACE_PROT_READ), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b, SIZE_MAX - page + 1, VMSPACE_PROT_READ),
			-EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(NULL, b, page, VMSPACE_PROT_READ), -EINVAL);
	KUNIT_EXPECT_NULL(test, vmalloc_to_page(p + page));
	KUNIT_EXPECT_NULL(test, vmalloc_to_page(p + 2 * page));

	/* Read-only, then read-write: the same pages back, as they were. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, 2 * page, VMSPACE_PROT_READ), 0);
	KUNIT_EXPECT_NOT_NULL(test, vmalloc_to_page(p + page));
	KUNIT_EXPECT_NOT_NULL(test, vmalloc_to_page(p + 2 * page));
	KUNIT_EXPECT_TRUE(test, all_bytes(p + page, 2 * page, 0x5a));
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, 2 * page,
						 VMSPACE_PROT_READ | VMSPACE_PROT_WRITE), 0);
	memset(p + page, 0x77, page);
	KUNIT_EXPECT_TRUE(test, all_bytes(p + page, page, 0x77));
	KUNIT_EXPECT_TRUE(test, all_bytes(p + 2 * page, page, 0x5a));
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* Unmapped whatever its protection; mapped again, zero and writable. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, page, VMSPACE_PROT_NONE), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + 2 * page, page, VMSPACE_PROT_READ), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b + page, 2 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + page, page, VMSPACE_PROT_READ), -ENOENT);
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, b + page, 2 * page), 0);
	KUNIT_EXPECT_TRUE(test, all_bytes(p + page, 2 * page, 0));
	memset(p + page, 0x11, 2 * page);
	KUNIT_EXPECT_TRUE(test, all_bytes(p + page, 2 * page, 0x11));
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* Destroyed with pages of each protection mapped. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b, page, VMSPACE_PROT_NONE), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_protect(vm, b + 3 * page, page, VMSPACE_PROT_READ), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_destroy(vm), 0);
}

/* Every error the header lists that a caller can provoke; a failing call
 * changes nothing. */
static void vm_errors_have_their_codes(struct kunit *test)
{
	const vmspace_size_t page = PAGE_SIZE;
	vmspace_vm_t *vm = (vmspace_vm_t *)1;
	vmspace_arena_t *a;
	struct vmspace_vm_info info;
	struct vmspace_vm_info *bad;
	u64 plain[8] = { 0 };
	vmspace_addr_t b;

	/* Creation's arguments. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(page, 0, 0, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(0, 0, 0, &vm), -EINVAL);
	KUNIT_EXPECT_NULL(test, vm);
	vm = (vmspace_vm_t *)1;
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(page, 3 * page, 0, &vm), -EINVAL);
	KUNIT_EXPECT_NULL(test, vm);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(page, page / 2, 0, &vm), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(page, 1, 0, &vm), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(page, 0, 1, &vm), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(page, 0, -1, &vm), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(SIZE_MAX, 0, 0, &vm), -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(SIZE_MAX - 2 * page + 1, 1UL << 20, 0, &vm),
			-EOVERFLOW);
	/* Far more than the vmalloc area holds. */
	vm = (vmspace_vm_t *)1;
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(1UL << 60, 0, 0, &vm), -ENOMEM);
	KUNIT_EXPECT_NULL(test, vm);
	KUNIT_EXPECT_EQ(test, vmspace_vm_create(1UL << 60, VM_GRAIN, 0, &vm), -ENOMEM);
	KUNIT_EXPECT_NULL(test, vm);

	/* Four pages (asked as three and a byte: rounded up). */
	KUNIT_ASSERT_EQ(test, vmspace_vm_create(3 * page + 1, 0, 0, &vm), 0);
	KUNIT_ASSERT_NOT_NULL(test, vm);
	KUNIT_ASSERT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.size, 4 * page);
	KUNIT_EXPECT_EQ(test, info.grain, page);
	b = info.base;

	/* Empty or misaligned ranges. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b + 1, page), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b, page - 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b, page + 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b + 1, page), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 1, page), -EINVAL);
	/* Ends that wrap. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, ULONG_MAX - page + 1, page), -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b, SIZE_MAX), -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b, SIZE_MAX - page + 1), -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, ULONG_MAX, 1), -EOVERFLOW);
	/* Outside the VM. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, 0, page), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b - page, page), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b - page, 2 * page), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b + 4 * page, page), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b + 3 * page, 2 * page), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b + 4 * page, page), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 4 * page, page), -ERANGE);
	/* The out pointer of info. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, NULL), -EINVAL);
	bad = (struct vmspace_vm_info *)((char *)&info + 1);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, bad), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* Mapping over a mapped page and unmapping an unmapped one: refused
	 * whole, changing nothing. */
	KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, b, 2 * page), 0);
	*(volatile u8 *)b = 0x77;
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b, page), -EEXIST);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b + page, 2 * page), -EEXIST);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b + 2 * page, page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b + 2 * page, page), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b + page, 2 * page), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, 2 * page), 1);
	KUNIT_EXPECT_EQ(test, *(volatile u8 *)b, 0x77);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, 2 * page);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b, 2 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, b, page), -ENOENT);

	/* A NULL VM. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(NULL, b, page), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(NULL, b, page), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(NULL, b, page), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(NULL, &info), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_trim(NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_vm_destroy(NULL), -EINVAL);

	/* Not a VM: an arena, plain memory; and a VM is not an arena. */
	a = vmspace_arena_create("not-a-vm", 0x1000, 0x1000, 0x1000, 0, 0);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map((vmspace_vm_t *)a, b, page), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped((vmspace_vm_t *)a, b, page), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_info((vmspace_vm_t *)a, &info), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check((vmspace_vm_t *)a), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_trim((vmspace_vm_t *)a), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_destroy((vmspace_vm_t *)a), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check((vmspace_arena_t *)vm), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy((vmspace_arena_t *)vm), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check((vmspace_vm_t *)plain), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check((vmspace_vm_t *)((char *)plain + 1)), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);

	/* The VM still works after all that. */
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_map(vm, b, 4 * page), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, b, 4 * page), 1);
	KUNIT_EXPECT_TRUE(test, all_bytes((void *)b, 4 * page, 0));
	KUNIT_EXPECT_EQ(test, vmspace_vm_destroy(vm), 0);
}

/* An arena over a VM's range hands out addresses; the VM maps them. */
static void vm_under_an_arena(struct kunit *test)
{
	static const unsigned int pages[] = { 1, 2, 3, 5, 8, 13, 1, 4, 7, 2, 16, 3 };
	const vmspace_size_t page = PAGE_SIZE;
	vmspace_addr_t got[ARRAY_SIZE(pages)];
	const int n_allocs = ARRAY_SIZE(pages);
	struct vmspace_vm_info info;
	vmspace_size_t mapped = 0;
	vmspace_arena_t *a;
	vmspace_vm_t *vm;
	int i;

	KUNIT_ASSERT_EQ(test, vmspace_vm_create(VM_SIZE, VM_GRAIN, 0, &vm), 0);
	KUNIT_ASSERT_EQ(test, vmspace_vm_info(vm, &info), 0);
	a = vmspace_arena_create("vm-pages", info.base, info.size, PAGE_SIZE, 0, 0);
	if (!a) {
		vmspace_vm_destroy(vm);
		KUNIT_FAIL_AND_ABORT(test, "arena over the VM's range not created");
	}
	for (i = 0; i < n_allocs; i++) {
		vmspace_size_t n = pages[i] * page;

		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, n, VMSPACE_BESTFIT, &got[i]), 0);
		KUNIT_EXPECT_GE(test, got[i], info.base);
		KUNIT_EXPECT_LE(test, got[i] + n, info.base + info.size);
		KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, got[i], n), 0);
		KUNIT_ASSERT_EQ(test, vmspace_vm_map(vm, got[i], n), 0);
		KUNIT_EXPECT_TRUE(test, all_bytes((void *)got[i], n, 0));
		memset((void *)got[i], i + 1, n);
		mapped += n;
	}
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, mapped);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);

	/* Every other one checked, unmapped and freed; then the rest. */
	for (i = 0; i < n_allocs; i += 2) {
		vmspace_size_t n = pages[i] * page;

		KUNIT_EXPECT_TRUE(test, all_bytes((void *)got[i], n, i + 1));
		KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, got[i], n), 0);
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, got[i], n), 0);
		mapped -= n;
	}
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, mapped);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	for (i = 1; i < n_allocs; i += 2) {
		vmspace_size_t n = pages[i] * page;

		KUNIT_EXPECT_EQ(test, vmspace_vm_mapped(vm, got[i], n), 1);
		KUNIT_EXPECT_TRUE(test, all_bytes((void *)got[i], n, i + 1));
		KUNIT_EXPECT_EQ(test, vmspace_vm_unmap(vm, got[i], n), 0);
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, got[i], n), 0);
	}
	KUNIT_EXPECT_EQ(test, vmspace_vm_info(vm, &info), 0);
	KUNIT_EXPECT_EQ(test, info.mapped, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_check(vm), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_vm_destroy(vm), 0);
}

static struct kunit_case vmspace_cmod_vm_cases[] = {
	KUNIT_CASE(vm_maps_pages_in_the_kernel),
	KUNIT_CASE(vm_protect_in_the_kernel),
	KUNIT_CASE(vm_errors_have_their_codes),
	KUNIT_CASE(vm_under_an_arena),
	{}
};

static struct kunit_suite vmspace_cmod_vm_suite = {
	.name = "vmspace_cmod_vm",
	.test_cases = vmspace_cmod_vm_cases,
};

kunit_test_suite(vmspace_cmod_vm_suite);
