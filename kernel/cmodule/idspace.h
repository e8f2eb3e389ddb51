/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A device's address-like resources on vmspace arenas, as a driver would
 * keep them: a range of IDs handed out next-fit (reused as late as
 * possible), and a window of device offsets from which buffers are carved
 * with alignment and boundary constraints, imported a few pages at a time.
 */
#ifndef VMSPACE_CMOD_IDSPACE_H
#define VMSPACE_CMOD_IDSPACE_H

#include <linux/types.h>
#include <linux/vmspace.h>

#define IDSPACE_FIRST_ID 1
#define IDSPACE_IDS 4096
#define IDSPACE_WINDOW_BASE 0x40000000UL
#define IDSPACE_PAGE 4096UL

struct idspace {
	vmspace_arena_t *ids;    /* IDS IDs from FIRST_ID, next fit */
	vmspace_arena_t *window; /* the device window, in pages */
	vmspace_arena_t *bufs;   /* buffers, 64-byte units, importing from window */
};

int idspace_init(struct idspace *s, vmspace_size_t window_pages);
void idspace_fini(struct idspace *s);
int idspace_get_id(struct idspace *s, u32 *id);
int idspace_put_id(struct idspace *s, u32 id);
int idspace_get_buf(struct idspace *s, vmspace_size_t size, vmspace_size_t align,
		    vmspace_size_t boundary, unsigned long *offset);
int idspace_put_buf(struct idspace *s, unsigned long offset, vmspace_size_t size);

#endif
