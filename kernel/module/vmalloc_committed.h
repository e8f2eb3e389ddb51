/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The C helpers of vmspace's module-safe backends: only functions exported
 * to modules. The kernel build's bindgen makes the Rust declarations from
 * this file (kernel/crates.kbuild), so it stays self-contained: plain C
 * types, no includes.
 */
#ifndef VMSPACE_VMALLOC_COMMITTED_H
#define VMSPACE_VMALLOC_COMMITTED_H

void *vmspace_committed_vmalloc(unsigned long size, unsigned long align);
void vmspace_committed_vfree(void *addr);
void *vmspace_committed_pages(unsigned long size);
void vmspace_committed_free_pages(void *addr, unsigned long size);
unsigned long vmspace_module_page_size(void);

#endif
