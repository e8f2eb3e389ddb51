/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review: the helpers shared by outside_r28_<area>.c
 * that are more than a few lines, and the state of the error hook and
 * reclaim function (one copy for every entry point).
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* Trees: a child importing from its parent. */
vmspace_arena_t *child_of(vmspace_arena_t *parent, vmspace_size_t quantum, int *err)
{
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "r28-child";
	p.quantum = quantum;
	p.parent = parent;
	vmspace_arena_t *c = NULL;
	*err = vmspace_arena_create_ex(&p, &c);
	return c;
}

/* Import functions: addresses from s->next on, 16 quanta apart. */
int r28_src_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct src *s = arg;
	s->calls++;
	s->last_flags = flags;
	s->last_size = size;
	*addrp = s->next + (s->misalign ? Q / 2 : 0);
	s->next += size + 16 * Q;
	return 0;
}

void r28_src_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct src *s = arg;
	(void)addr;
	(void)size;
	s->releases++;
}

/* vmem.h: the error hook and reclaim function. */
int r28_hook_calls, r28_hook_err;
const char *r28_hook_what;
vmem_addr_t r28_hook_addr;
vmem_size_t r28_hook_size;

void r28_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
	      int error)
{
	(void)arg;
	(void)vm;
	r28_hook_calls++;
	r28_hook_what = what;
	r28_hook_addr = addr;
	r28_hook_size = size;
	r28_hook_err = error;
}

vmem_addr_t r28_reclaim_addr;
int r28_reclaim_calls, r28_reclaim_flags;
void r28_reclaimer(vmem_t *vm, int flags)
{
	r28_reclaim_calls++;
	r28_reclaim_flags = flags;
	if (r28_reclaim_addr) {
		vmem_free(vm, r28_reclaim_addr, 0x1000);
		r28_reclaim_addr = 0;
	}
}

/* Whether w ends within 10 s (joined if so). */
int ends(struct waiter *w)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_timedjoin_np(w->t, NULL, &ts) != 0) {
		pthread_detach(w->t);
		return 0;
	}
	return 1;
}
