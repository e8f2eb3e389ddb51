/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The C helpers of vmspace's sparse vmalloc backend. The kernel build's
 * bindgen makes the Rust declarations from this file (kernel/crates.kbuild),
 * so it stays self-contained: plain C types, no includes.
 */
#ifndef VMSPACE_VMALLOC_SPARSE_H
#define VMSPACE_VMALLOC_SPARSE_H

struct page;
struct vm_struct;

struct vm_struct *vmspace_sparse_reserve(unsigned long size);
struct vm_struct *vmspace_sparse_find(unsigned long addr);
unsigned long vmspace_sparse_base(const struct vm_struct *area);
unsigned long vmspace_sparse_size(const struct vm_struct *area);
void vmspace_sparse_release(struct vm_struct *area);
int vmspace_sparse_map(struct vm_struct *area, unsigned long start,
		       unsigned long end, struct page **pages);
void vmspace_sparse_unmap(struct vm_struct *area, unsigned long start,
			  unsigned long end);
void vmspace_sparse_unmap_noflush(struct vm_struct *area, unsigned long start,
				  unsigned long end);
void vmspace_flush_kernel_range(unsigned long start, unsigned long end);
struct page *vmspace_sparse_page_at(unsigned long addr);
struct page *vmspace_page_alloc_zeroed(_Bool account);
void vmspace_page_free(struct page *page);
unsigned long vmspace_page_size(void);
/* For the KUnit suites only: defined with CONFIG_VMSPACE_KUNIT_TEST. */
unsigned long vmspace_free_pages(void);
void vmspace_fail_page_alloc_in(int n);
void vmspace_fail_sparse_map_in(int n);
long vmspace_pages_outstanding(void);
long vmspace_pages_accounted(void);

#endif
