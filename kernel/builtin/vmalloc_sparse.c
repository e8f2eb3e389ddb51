// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Thin C wrappers that let vmspace's Rust kernel backend reach the sparse
 * vmalloc area API of <linux/vmalloc.h>, which the Rust bindings do not
 * cover: get_vm_area(VM_SPARSE), vm_area_map_pages, vm_area_unmap_pages and
 * free_vm_area (the BPF arena's pattern), and the unmap without a TLB flush
 * and the one flush of a batch that batched unmaps need. None of these is exported to
 * modules, so this file is linked into the built-in build only.
 *
 * The Rust declarations are made from vmalloc_sparse.h by bindgen at build
 * time; this file includes that header, so the compiler checks these
 * definitions against it. All loops, batching and error recovery live in
 * Rust.
 */
#include <linux/atomic.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/vmstat.h>

#include "vmalloc_sparse.h"
/*
 * vunmap_range_noflush() is vmalloc's own batching primitive (its lazy purge
 * flushes many freed areas at once); it is declared in mm/internal.h, not in
 * <linux/vmalloc.h>. Including the header (-I$(srctree), see Kbuild), as
 * kernel/fork.c does, lets the compiler check the call.
 */
#include "mm/internal.h"

/* The caller token of our areas: tells them apart from everyone else's. */
static const char vmspace_area_token[] = "vmspace";

/*
 * Reserve `size` bytes (a multiple of PAGE_SIZE) of sparse vmalloc space.
 * A size the vmalloc area cannot hold at all (with its guard page) is
 * refused here: get_vm_area_caller() cannot be told __GFP_NOWARN, and would
 * print vmalloc's "vmap allocation ... failed" for a caller's mistake.
 */
struct vm_struct *vmspace_sparse_reserve(unsigned long size)
{
	if (size > VMALLOC_END - VMALLOC_START - PAGE_SIZE)
		return NULL;
	return get_vm_area_caller(size, VM_SPARSE, (const void *)vmspace_area_token);
}

/*
 * The vmspace area containing `addr`, or NULL if `addr` is in no area or in
 * an area that is not one of ours.
 */
struct vm_struct *vmspace_sparse_find(unsigned long addr)
{
	struct vm_struct *area = find_vm_area((const void *)addr);

	if (!area || area->caller != (const void *)vmspace_area_token ||
	    !(area->flags & VM_SPARSE))
		return NULL;
	return area;
}

/* First address of an area. */
unsigned long vmspace_sparse_base(const struct vm_struct *area)
{
	return (unsigned long)area->addr;
}

/* Usable size of an area (without its guard page). */
unsigned long vmspace_sparse_size(const struct vm_struct *area)
{
	return get_vm_area_size(area);
}

/* Give an area back; everything mapped in it must have been unmapped. */
void vmspace_sparse_release(struct vm_struct *area)
{
	free_vm_area(area);
}

#ifdef CONFIG_VMSPACE_KUNIT_TEST
/*
 * Fault hooks for the suites (vmspace_sparse_faults): the nth page
 * allocation from now fails, and the nth map from now maps the first half
 * of its pages and fails with -ENOMEM (as vm_area_map_pages may fail part
 * way); 0 turns a hook off. KUnit runs one case at a time.
 */
static atomic_t vmspace_page_fail_in = ATOMIC_INIT(0);
static atomic_t vmspace_map_fail_in = ATOMIC_INIT(0);
/* Pages from vmspace_page_alloc_zeroed not yet given back. */
static atomic_long_t vmspace_pages_out = ATOMIC_LONG_INIT(0);
/* Pages vmspace_page_alloc_zeroed asked to be charged to a memory cgroup. */
static atomic_long_t vmspace_pages_charged = ATOMIC_LONG_INIT(0);

long vmspace_pages_outstanding(void)
{
	return atomic_long_read(&vmspace_pages_out);
}

long vmspace_pages_accounted(void)
{
	return atomic_long_read(&vmspace_pages_charged);
}

void vmspace_fail_page_alloc_in(int n)
{
	atomic_set(&vmspace_page_fail_in, n);
}

void vmspace_fail_sparse_map_in(int n)
{
	atomic_set(&vmspace_map_fail_in, n);
}
#endif

/* Map `pages` (one per page) at [start, end) inside `area`. 0 or -errno. */
int vmspace_sparse_map(struct vm_struct *area, unsigned long start,
		       unsigned long end, struct page **pages)
{
#ifdef CONFIG_VMSPACE_KUNIT_TEST
	if (atomic_dec_if_positive(&vmspace_map_fail_in) == 0) {
		unsigned long half = start + ((end - start) >> PAGE_SHIFT) / 2 * PAGE_SIZE;

		if (half > start && vm_area_map_pages(area, start, half, pages))
			return -EIO;
		return -ENOMEM;
	}
#endif
	return vm_area_map_pages(area, start, end, pages);
}

/* Unmap [start, end) inside `area` and flush the TLB. */
void vmspace_sparse_unmap(struct vm_struct *area, unsigned long start,
			  unsigned long end)
{
	vm_area_unmap_pages(area, start, end);
}

/*
 * Unmap [start, end) inside `area` without flushing the TLB: the caller
 * keeps the pages, and maps nothing at these addresses, until it has called
 * vmspace_flush_kernel_range() over them (the batched backend, batched.rs).
 * The cache flush stays here, before the PTEs go, as in vunmap_range().
 */
void vmspace_sparse_unmap_noflush(struct vm_struct *area, unsigned long start,
				  unsigned long end)
{
	unsigned long base = (unsigned long)area->addr;

	if (WARN_ON_ONCE(!(area->flags & VM_SPARSE) || start < base ||
			 end > base + get_vm_area_size(area) || start >= end))
		return;
	flush_cache_vunmap(start, end);
	vunmap_range_noflush(start, end);
}

/* One kernel TLB flush for [start, end): completes a batch of unmaps. */
void vmspace_flush_kernel_range(unsigned long start, unsigned long end)
{
	flush_tlb_kernel_range(start, end);
}

/* The page mapped at `addr` in the vmalloc area, or NULL. */
struct page *vmspace_sparse_page_at(unsigned long addr)
{
	return vmalloc_to_page((const void *)addr);
}

/*
 * A zeroed page from the page allocator, or NULL; charged to the memory
 * cgroup of the calling task when `account` (pages a user's request maps).
 */
struct page *vmspace_page_alloc_zeroed(bool account)
{
	gfp_t gfp = (account ? GFP_KERNEL_ACCOUNT : GFP_KERNEL) | __GFP_ZERO;
	struct page *page;

#ifdef CONFIG_VMSPACE_KUNIT_TEST
	if (atomic_dec_if_positive(&vmspace_page_fail_in) == 0)
		return NULL;
#endif
	page = alloc_page(gfp);
#ifdef CONFIG_VMSPACE_KUNIT_TEST
	if (page) {
		atomic_long_inc(&vmspace_pages_out);
		if (gfp & __GFP_ACCOUNT)
			atomic_long_inc(&vmspace_pages_charged);
	}
#endif
	return page;
}

/* Give a page from vmspace_page_alloc_zeroed back. */
void vmspace_page_free(struct page *page)
{
#ifdef CONFIG_VMSPACE_KUNIT_TEST
	atomic_long_dec(&vmspace_pages_out);
#endif
	__free_page(page);
}

/* The kernel's PAGE_SIZE. */
unsigned long vmspace_page_size(void)
{
	return PAGE_SIZE;
}

#ifdef CONFIG_VMSPACE_KUNIT_TEST
/*
 * Free pages in the system, for the suites' leak checks, after draining the
 * per-CPU page lists (pages freed there are not counted until drained).
 */
unsigned long vmspace_free_pages(void)
{
	drain_all_pages(NULL);
	return global_zone_page_state(NR_FREE_PAGES);
}
#endif
