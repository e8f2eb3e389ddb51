// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * vmspace_cmod: a sample C module on vmspace's exported API. It keeps a
 * device's IDs and buffer offsets in vmspace arenas (idspace.h); on load it
 * sets one up, uses it and tears it down, and its KUnit suite
 * (idspace_test.c) runs.
 */
#include <linux/module.h>
#include <linux/printk.h>

#include "idspace.h"

int idspace_init(struct idspace *s, vmspace_size_t window_pages)
{
	struct vmspace_params p = {
		.name = "idspace-bufs",
		.quantum = 64,
		.qcache_max = 4 * 64,
	};
	int err;

	memset(s, 0, sizeof(*s));
	s->ids = vmspace_arena_create("idspace-ids", IDSPACE_FIRST_ID, IDSPACE_IDS, 1, 0,
				      VMSPACE_NEXTFIT);
	s->window = vmspace_arena_create("idspace-window", IDSPACE_WINDOW_BASE,
					 window_pages * IDSPACE_PAGE, IDSPACE_PAGE, 0, 0);
	if (!s->ids || !s->window) {
		err = -ENOMEM;
		goto fail;
	}
	p.parent = s->window;
	err = vmspace_arena_create_ex(&p, &s->bufs);
	if (err)
		goto fail;
	return 0;
fail:
	idspace_fini(s);
	return err;
}
EXPORT_SYMBOL_GPL(idspace_init);

void idspace_fini(struct idspace *s)
{
	/* The child first: its parent refuses to go while it imports. */
	if (s->bufs)
		WARN_ON(vmspace_arena_destroy(s->bufs));
	if (s->window)
		WARN_ON(vmspace_arena_destroy(s->window));
	if (s->ids)
		WARN_ON(vmspace_arena_destroy(s->ids));
	memset(s, 0, sizeof(*s));
}
EXPORT_SYMBOL_GPL(idspace_fini);

int idspace_get_id(struct idspace *s, u32 *id)
{
	vmspace_addr_t a;
	int err = vmspace_arena_alloc(s->ids, 1, 0, &a);

	if (!err)
		*id = (u32)a;
	return err;
}
EXPORT_SYMBOL_GPL(idspace_get_id);

int idspace_put_id(struct idspace *s, u32 id)
{
	return vmspace_arena_free(s->ids, id, 1);
}
EXPORT_SYMBOL_GPL(idspace_put_id);

int idspace_get_buf(struct idspace *s, vmspace_size_t size, vmspace_size_t align,
		    vmspace_size_t boundary, unsigned long *offset)
{
	vmspace_addr_t a;
	int err;

	if (!align && !boundary)
		err = vmspace_arena_alloc(s->bufs, size, 0, &a);
	else
		err = vmspace_arena_xalloc(s->bufs, size, align, 0, boundary, 0, 0, 0,
					   VMSPACE_BESTFIT, &a);
	if (!err)
		*offset = a;
	return err;
}
EXPORT_SYMBOL_GPL(idspace_get_buf);

int idspace_put_buf(struct idspace *s, unsigned long offset, vmspace_size_t size)
{
	return vmspace_arena_free(s->bufs, offset, size);
}
EXPORT_SYMBOL_GPL(idspace_put_buf);

static int __init vmspace_cmod_init(void)
{
	struct idspace s;
	struct vmspace_sizes sz;
	unsigned long buf;
	u32 id;
	int err;

	err = idspace_init(&s, 256);
	if (err) {
		pr_err("vmspace_cmod: idspace_init: %s\n", vmspace_strerror(err));
		return err;
	}
	err = idspace_get_id(&s, &id) ?: idspace_get_buf(&s, 3000, 1024, 4096, &buf);
	if (!err) {
		err = vmspace_arena_sizes(s.window, &sz);
		if (!err)
			pr_info("vmspace_cmod: loaded: vmspace C API %d, id %u, buffer at %#lx, window %zu of %zu bytes in use\n",
				vmspace_version(), id, buf, (size_t)sz.allocated, (size_t)sz.total);
		idspace_put_buf(&s, buf, 3000);
		idspace_put_id(&s, id);
	}
	idspace_fini(&s);
	return err;
}

static void __exit vmspace_cmod_exit(void)
{
}

module_init(vmspace_cmod_init);
module_exit(vmspace_cmod_exit);
MODULE_DESCRIPTION("Sample C module on vmspace's exported arena API, with KUnit tests");
MODULE_LICENSE("Dual MIT/GPL");
/* vmspace's exports are in the symbol namespace "VMSPACE". */
MODULE_IMPORT_NS("VMSPACE");
