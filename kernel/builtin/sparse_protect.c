// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Page protection for vmspace's sparse vmalloc backend (built-in only, like
 * the rest of it), with the kernel's generic page-table API, so it works
 * the same on every architecture (UML has no set_memory_*(), and x86's
 * are not meant for vmalloc ranges that come and go):
 *
 *  - no access: the pages are kept in a stash (an xarray keyed by the
 *    virtual page number they were mapped at; vmalloc addresses are unique)
 *    and their PTEs removed with vm_area_unmap_pages(), which flushes the
 *    TLB. Slots are reserved before anything changes, so the only failure
 *    (-ENOMEM) leaves everything as it was.
 *  - read-only / read-write: stashed pages are mapped back first with
 *    vm_area_map_pages() (undone on failure), then the write bit of every
 *    PTE in the range is cleared or set with apply_to_existing_page_range()
 *    and the TLB flushed with flush_tlb_kernel_range() (which on UML
 *    also brings the host mappings in line).
 *
 * Unmapping and releasing free stashed pages (vmspace_stash_free), so a
 * protected page is never lost.
 *
 * What protection is: the vmalloc alias of a page, as the owner's own code
 * sees it, faults on what it forbids. It is not a hardening boundary: the
 * page's linear-map alias stays writable, and a page going from no access
 * to read-only is mapped back read-write (vm_area_map_pages maps with
 * PAGE_KERNEL) for the moment before its write bit is cleared. All batching and checking of ranges lives
 * in Rust (sparse.rs, protect.rs).
 */
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/sched.h>
#include <linux/vmalloc.h>
#include <linux/xarray.h>
#include <asm/tlbflush.h>

#include "sparse_protect.h"
#include "vmalloc_sparse.h"

/* Pages protected to no access, by virtual page number. */
static DEFINE_XARRAY(vmspace_stash);

/*
 * Pages restored per vm_area_map_pages() call, and walked between
 * cond_resched() calls: every caller is in task context (see sparse.rs),
 * and a range may be thousands of pages.
 */
#define VMSPACE_RESTORE_BATCH 64

/* Let others run once every VMSPACE_RESTORE_BATCH pages of a walk. */
static void resched_every_batch(unsigned long a, unsigned long start)
{
	if (!(((a - start) >> PAGE_SHIFT) % VMSPACE_RESTORE_BATCH))
		cond_resched();
}

static unsigned long vpn(unsigned long addr)
{
	return addr >> PAGE_SHIFT;
}

/* The page stashed for `addr`, or NULL. */
struct page *vmspace_stash_page_at(unsigned long addr)
{
	return xa_load(&vmspace_stash, vpn(addr));
}

/*
 * Protect [start, end) of `area` to no access: stash every page mapped
 * there and remove its PTE (pages stashed already stay so). 0 or -ENOMEM,
 * in which case nothing changed. The stash's nodes are charged to the
 * calling task's memory cgroup when `account`, as the pages were.
 */
int vmspace_protect_none(struct vm_struct *area, unsigned long start,
			 unsigned long end, bool account)
{
	gfp_t gfp = account ? GFP_KERNEL_ACCOUNT : GFP_KERNEL;
	unsigned long a, b;
	int err = 0;

	for (a = start; a < end; a += PAGE_SIZE) {
		resched_every_batch(a, start);
		if (!vmalloc_to_page((const void *)a))
			continue;
		err = xa_reserve(&vmspace_stash, vpn(a), gfp);
		if (err)
			break;
	}
	if (err) {
		for (b = start; b < a; b += PAGE_SIZE) {
			resched_every_batch(b, start);
			if (vmalloc_to_page((const void *)b))
				xa_release(&vmspace_stash, vpn(b));
		}
		return err;
	}
	for (a = start; a < end; a += PAGE_SIZE) {
		struct page *page = vmalloc_to_page((const void *)a);

		resched_every_batch(a, start);

		/* Into a reserved slot: allocates nothing, cannot fail. */
		if (page)
			xa_store(&vmspace_stash, vpn(a), page, gfp);
	}
	vm_area_unmap_pages(area, start, end);
	return 0;
}

/* Whether the page at `addr` is stashed and mapped back. */
static bool restored(unsigned long addr)
{
	return vmspace_stash_page_at(addr) && vmalloc_to_page((const void *)addr);
}

/*
 * Unmap again the pages of [start, end) that were stashed and mapped back,
 * one vm_area_unmap_pages() (and so one TLB flush) a run of them.
 */
static void unrestore(struct vm_struct *area, unsigned long start,
		      unsigned long end)
{
	unsigned long a = start, run;

	while (a < end) {
		if (!restored(a)) {
			resched_every_batch(a, start);
			a += PAGE_SIZE;
			continue;
		}
		for (run = a + PAGE_SIZE; run < end && restored(run); run += PAGE_SIZE)
			;
		vm_area_unmap_pages(area, a, run);
		a = run;
		/* A run may be long, and end anywhere: let others run after it. */
		cond_resched();
	}
}

static int set_write(pte_t *pte, unsigned long addr, void *data)
{
	bool write = *(bool *)data;
	pte_t old = ptep_get(pte);

	if (!pte_present(old))
		return 0;
	set_pte_at(&init_mm, addr, pte,
		   write ? pte_mkwrite_novma(old) : pte_wrprotect(old));
	return 0;
}

/*
 * Make [start, end) of `area` readable, and writable if `write`: map
 * stashed pages back, then set or clear the write bit of every PTE. 0 or
 * -errno from vm_area_map_pages(), in which case nothing changed; or,
 * with a warning, from apply_to_existing_page_range() after the pages
 * were mapped back (it cannot fail on the PTEs this backend makes).
 */
int vmspace_protect_access(struct vm_struct *area, unsigned long start,
			   unsigned long end, bool write)
{
	struct page *batch[VMSPACE_RESTORE_BATCH];
	unsigned long a = start, run;
	int n, err;

	while (a < end) {
		n = 0;
		run = a;
		while (run < end && n < VMSPACE_RESTORE_BATCH &&
		       (batch[n] = vmspace_stash_page_at(run))) {
			n++;
			run += PAGE_SIZE;
		}
		if (!n) {
			resched_every_batch(a, start);
			a += PAGE_SIZE;
			continue;
		}
		/* Through the backend's map (and the suites' fault hook). */
		err = vmspace_sparse_map(area, a, run, batch);
		if (err) {
			/* A failed map may have mapped a prefix of the run. */
			unrestore(area, start, run);
			return err;
		}
		a = run;
		cond_resched();
	}
	/* Every stashed page is mapped again: the stash lets go of them. */
	for (a = start; a < end; a += PAGE_SIZE) {
		resched_every_batch(a, start);
		if (vmspace_stash_page_at(a))
			xa_erase(&vmspace_stash, vpn(a));
	}
	err = apply_to_existing_page_range(&init_mm, start, end - start,
					   set_write, &write);
	flush_tlb_kernel_range(start, end);
	/*
	 * It fails only on a leaf (huge) PMD, which this backend never makes
	 * (it maps with vm_area_map_pages, page by page). Were it to, the
	 * pages are mapped back already: the range changed, which an error
	 * must not say it did not; a warning says the contract broke.
	 */
	WARN_ON_ONCE(err);
	return err;
}

/* Free the pages stashed for [start, end); returns how many. */
unsigned long vmspace_stash_free(unsigned long start, unsigned long end)
{
	unsigned long index, n = 0;
	struct page *page;

	if (end <= start)
		return 0;
	xa_for_each_range(&vmspace_stash, index, page, vpn(start), vpn(end - 1)) {
		xa_erase(&vmspace_stash, index);
		vmspace_page_free(page);
		/* Each step of the walk takes and drops the RCU lock itself. */
		if (!(++n % VMSPACE_RESTORE_BATCH))
			cond_resched();
	}
	return n;
}

/*
 * What the kernel page tables allow at `addr`: 0 nothing (no PTE), 1 read,
 * 3 read and write; -1 for a huge mapping (never ours).
 */
int vmspace_pte_access(unsigned long addr)
{
	pgd_t *pgd = pgd_offset_k(addr);
	p4d_t *p4d;
	pud_t *pud;
	pmd_t *pmd;
	pte_t pte;

	if (pgd_none(*pgd))
		return 0;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d))
		return 0;
	pud = pud_offset(p4d, addr);
	if (pud_none(*pud))
		return 0;
	if (pud_leaf(*pud))
		return -1;
	pmd = pmd_offset(pud, addr);
	if (pmd_none(*pmd))
		return 0;
	if (pmd_leaf(*pmd))
		return -1;
	pte = ptep_get(pte_offset_kernel(pmd, addr));
	if (!pte_present(pte))
		return 0;
	return pte_write(pte) ? 3 : 1;
}

/*
 * The word at `addr`'s offset in the page stashed for it, read through a
 * temporary kernel mapping of the page (for tests: a protected page keeps
 * its contents). 0 when nothing is stashed.
 */
u64 vmspace_stash_read_word(unsigned long addr)
{
	struct page *page = vmspace_stash_page_at(addr);
	u64 *p, v;

	if (!page)
		return 0;
	p = kmap_local_page(page);
	v = p[offset_in_page(addr) / sizeof(u64)];
	kunmap_local(p);
	return v;
}
