/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Page protection for vmspace's sparse vmalloc backend. The kernel build's
 * bindgen makes the Rust declarations from this file (Kbuild), so it stays
 * self-contained: plain C types, no includes.
 */
#ifndef VMSPACE_SPARSE_PROTECT_H
#define VMSPACE_SPARSE_PROTECT_H

struct page;
struct vm_struct;

int vmspace_protect_none(struct vm_struct *area, unsigned long start,
			 unsigned long end, _Bool account);
int vmspace_protect_access(struct vm_struct *area, unsigned long start,
			   unsigned long end, _Bool write);
struct page *vmspace_stash_page_at(unsigned long addr);
unsigned long vmspace_stash_free(unsigned long start, unsigned long end);
int vmspace_pte_access(unsigned long addr);
unsigned long long vmspace_stash_read_word(unsigned long addr);

#endif
