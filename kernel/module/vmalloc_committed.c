// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Thin C wrappers for vmspace's module-safe backends. A module cannot reach
 * the sparse vm_area functions (get_vm_area, vm_area_map_pages, ... are not
 * exported), so the module's backends commit memory up front from exported
 * allocators: vrealloc_node_align with no old pointer (a fresh, aligned
 * vmalloc allocation: __vmalloc_node itself is not exported) for VM
 * reservations and alloc_pages_exact for metadata pages. Both hand out
 * zeroed memory.
 */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/vmalloc.h>

#include "vmalloc_committed.h"

/* `size` bytes of zeroed, committed vmalloc memory aligned to `align`. */
void *vmspace_committed_vmalloc(unsigned long size, unsigned long align)
{
	return vrealloc_node_align(NULL, size, align,
				   GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN, NUMA_NO_NODE);
}

/* Give back memory from vmspace_committed_vmalloc. */
void vmspace_committed_vfree(void *addr)
{
	vfree(addr);
}

/*
 * `size` bytes of zeroed, physically contiguous pages, or NULL. Above
 * PAGE_ALLOC_COSTLY_ORDER (32 KiB) the allocator already neither loops nor
 * calls the OOM killer; __GFP_NORETRY also keeps its one compaction
 * attempt light and gives up where compaction is deferred: a metadata
 * block is not worth stalling the system for (the caller reports the
 * failure).
 */
void *vmspace_committed_pages(unsigned long size)
{
	return alloc_pages_exact(size, GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN |
				       (get_order(size) > PAGE_ALLOC_COSTLY_ORDER ? __GFP_NORETRY : 0));
}

/* Give back `size` bytes from vmspace_committed_pages. */
void vmspace_committed_free_pages(void *addr, unsigned long size)
{
	free_pages_exact(addr, size);
}

/* The kernel's PAGE_SIZE. */
unsigned long vmspace_module_page_size(void)
{
	return PAGE_SIZE;
}
