/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): added spans
 * that overlap, touch or wrap; max_tags; a span imported from a parent.
 */
#include "outside_adversary.h"

/* ------------------------------------------------------------ spans */

int adv_spans(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("spans", B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	struct snap s0;
	adv_take(a, &s0);
	CHECK_EQ(vmspace_arena_add(a, B, 0x1000, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, B - Q, 2 * Q, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, B + 0x1000 - Q, 2 * Q, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, B + 0x100, Q, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, B - 0x1000, 0x3000, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, UINTPTR_MAX - 0xf, 0x20, 0), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_add(a, 2 * B, 0, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_add(a, 2 * B + 8, Q, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_add(a, 2 * B, Q + 8, 0), -EINVAL);
	UNCHANGED(a, s0);
	/* adjacent spans are separate spans: nothing crosses them */
	CHECK_EQ(vmspace_arena_add(a, B + 0x1000, 0x1000, 0), 0);
	CHECK_EQ(vmspace_arena_add(a, B - 0x1000, 0x1000, 0), 0);
	vmspace_addr_t x;
	/* a span ending at 2^64 cannot be written [addr, addr + size): the
	 * header does not say whether it is allowed */
	int et = vmspace_arena_add(a, UINTPTR_MAX - 0xf, 0x10, 0);
	CHECK(et == 0 || et == -EOVERFLOW);
	if (et == 0)
		CHECK_EQ(vmspace_arena_xalloc(a, 0x10, 0, 0, 0, 0, 0, UINTPTR_MAX - 0xf,
					      VMSPACE_EXACT, &x), 0);
	if (et == 0)
		CHECK_EQ(vmspace_arena_free(a, UINTPTR_MAX - 0xf, 0x10), 0);
	else
		fprintf(stderr, "outside_adversary: note: a span ending at 2^64 is %d\n", et);
	CHECK_EQ(vmspace_arena_add(a, UINTPTR_MAX - 0x1f, 0x10, 0), 0);
	CHECK_EQ(vmspace_arena_add(a, 0, 0x10, 0), 0);
	CHECK_EQ(vmspace_arena_contains(a, B - Q, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_contains(a, B, 0x1000), 1);
	CHECK_EQ(vmspace_arena_contains(a, UINTPTR_MAX - 0x1f, 0x10), 1);
	CHECK_EQ(vmspace_arena_contains(a, 0, 0x10), 1);
	CHECK_EQ(vmspace_arena_contains(a, UINTPTR_MAX - 0x1f, 0x20), 0);
	CHECK(vmspace_arena_contains(a, UINTPTR_MAX - 0x1f, 0x40) != 1);
	CHECK_EQ(vmspace_arena_alloc(a, 0x1800, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x20, 0, 0, 0, 0, 0, B - Q, VMSPACE_EXACT, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x10, 0, 0, 0, 0, 0, 0, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(x, 0);
	CHECK_EQ(vmspace_arena_free(a, 0, 0x10), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x10, 0, 0, 0, 0, 0, UINTPTR_MAX - 0x1f, VMSPACE_EXACT,
				      &x),
		 0);
	CHECK_EQ(vmspace_arena_free(a, x, 0x10), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.spans, 5 + (et == 0));
	CHECK_EQ(s.total, 0x3020 + (et == 0 ? 0x10 : 0));
	CHECK_EQ(s.largest_free, 0x1000);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* vmem_add: wrap EINVAL, overlap EEXIST, vmem(9)'s M_WAITOK and
	 * M_NOWAIT accepted */
	vmem_t *v = vmem_create("vs", 0, 0, Q, 0, M_WAITOK);
	CHECK(v != NULL);
	if (!v)
		return failures;
	CHECK_EQ(vmem_add(v, B, 0x1000, M_WAITOK), 0);
	CHECK_EQ(vmem_add(v, 2 * B, 0x1000, M_NOWAIT), 0);
	CHECK_EQ(vmem_add(v, B + 0x800, 0x1000, M_WAITOK), EEXIST);
	CHECK_EQ(vmem_add(v, VMEM_ADDR_MAX - 0xf, 0x20, M_WAITOK), EINVAL);
	CHECK_EQ(vmem_size(v, VMEM_FREE), 0x2000);
	failures += adv_consistent((vmspace_arena_t *)v);
	vmem_destroy(v);
	v = vmem_create("vs2", B, 0x1000, Q, 0, M_NOWAIT | M_BESTFIT);
	CHECK(v != NULL);
	if (v)
		vmem_destroy(v);
	return failures;
}

/* ------------------------------------------------------------ tags */

int adv_tags(void)
{
	int failures = 0;
	struct vmspace_params p;
	memset(&p, 0, sizeof(p));
	p.quantum = Q;
	p.base = B;
	p.size = 0x100000;
	vmspace_arena_t *a = NULL;
	vmspace_size_t t;
	/* the smallest max_tags that creates (the header gives no minimum;
	 * below it, -EINVAL or -ENOSPC) */
	for (t = 1; t < 4096; t++) {
		p.max_tags = t;
		int e = vmspace_arena_create_ex(&p, &a);
		if (e == 0)
			break;
		CHECK(e == -EINVAL || e == -ENOSPC);
		CHECK(a == NULL);
	}
	fprintf(stderr, "outside_adversary: note: the smallest max_tags is %zu\n", (size_t)t);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_arena_destroy(a);
	p.max_tags = t + 16;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	if (!a)
		return failures;
	vmspace_addr_t live[64];
	int n = 0, e = 0;
	/* every other quantum, to need a tag each */
	for (n = 0; n < 64; n++) {
		e = vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + (vmspace_addr_t)n * 2 * Q,
					 VMSPACE_EXACT, &live[n]);
		if (e)
			break;
	}
	CHECK_EQ(e, -ENOSPC);
	CHECK(n > 0 && n < 64);
	struct snap s0;
	adv_take(a, &s0);
	vmspace_addr_t x;
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + 0x8000, VMSPACE_EXACT, &x), -ENOSPC);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B + 0x8000, VMSPACE_EXACT, &h),
		 -ENOSPC);
	UNCHANGED(a, s0);
	failures += adv_consistent(a);
	/* frees still work, in any order (freeing never needs a tag) */
	for (int i = 0; i < n; i += 2)
		CHECK_EQ(vmspace_arena_free(a, live[i], Q), 0);
	for (int i = 1; i < n; i += 2)
		CHECK_EQ(vmspace_arena_free_deferred(a, live[i], Q), 0);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.free, 0x100000);
	CHECK_EQ(s.largest_free, 0x100000);
	CHECK_EQ(s.allocated, 0);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ------------------------------------------------------------ parent */

static int imported_span(void *arg, const struct vmspace_segment *seg)
{
	struct vmspace_segment *out = arg;
	if (seg->kind == VMSPACE_SEG_SPAN && (seg->flags & VMSPACE_SEG_IMPORTED)) {
		*out = *seg;
		return 1;
	}
	return 0;
}

/*
 * A child made with vmspace_params.parent imports a span from its parent:
 * "each import is an allocation of the parent's" (vmspace.h, `parent`). The
 * parent counts it as allocated while the child holds it, and has it back
 * once the child is destroyed.
 */
int adv_parent_span(void)
{
	int failures = 0;
	vmspace_arena_t *par = vmspace_arena_create("par", B, 0x10000, Q, 0, 0);
	CHECK(par != NULL);
	if (!par)
		return failures;
	struct vmspace_params p;
	memset(&p, 0, sizeof(p));
	p.quantum = Q;
	p.parent = par;
	vmspace_arena_t *ch = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &ch), 0);
	if (!ch) {
		vmspace_arena_destroy(par);
		return failures;
	}
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_alloc(ch, 0x800, 0, &x), 0);
	struct vmspace_segment span;
	memset(&span, 0, sizeof(span));
	CHECK_EQ(vmspace_arena_walk(ch, VMSPACE_SEG_SPAN, imported_span, &span), 1);
	CHECK(span.size >= 0x800);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(par, &s), 0);
	CHECK_EQ(s.allocated, span.size);
	/* the parent does not hand out the child's range */
	CHECK(vmspace_arena_xalloc(par, span.size, 0, 0, 0, 0, 0, span.start, VMSPACE_EXACT,
				   &y) != 0);
	failures += adv_consistent(par);
	failures += adv_consistent(ch);
	CHECK_EQ(vmspace_arena_destroy(ch), 0);
	CHECK_EQ(vmspace_arena_sizes(par, &s), 0);
	CHECK_EQ(s.allocated, 0);
	failures += adv_consistent(par);
	CHECK_EQ(vmspace_arena_destroy(par), 0);
	return failures;
}
