/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer: the helpers shared by
 * outside_adversary_<area>.c (declared in outside_adversary.h).
 */
#include "outside_adversary.h"

int adv_hash_seg(void *arg, const struct vmspace_segment *seg)
{
	struct snap *sn = arg;
	uint64_t v[5] = { seg->start, seg->size, seg->requested, (uint64_t)seg->kind,
			  (uint64_t)seg->flags };
	for (int i = 0; i < 5; i++)
		sn->hash = (sn->hash ^ v[i]) * 0x100000001b3ULL;
	sn->nseg++;
	return 0;
}

void adv_take(vmspace_arena_t *a, struct snap *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->hash = 0xcbf29ce484222325ULL;
	vmspace_arena_sizes(a, &sn->s);
	vmspace_arena_walk(a, VMSPACE_SEG_ALL, adv_hash_seg, sn);
}

int adv_same(const struct snap *x, const struct snap *y)
{
	return x->hash == y->hash && x->nseg == y->nseg &&
	       memcmp(&x->s, &y->s, sizeof(x->s)) == 0;
}

/* The arena's invariants and its sizes' balance. */
int adv_consistent(vmspace_arena_t *a)
{
	int failures = 0;
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.total, s.allocated + s.free + s.unflushed);
	CHECK(s.largest_free <= s.free);
	CHECK(s.imported <= s.total);
	return failures;
}

void adv_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
	      int error)
{
	struct hook_log *l = arg;
	(void)vm;
	l->calls++;
	l->last_error = error;
	l->last_what = what;
	l->last_addr = addr;
	l->last_size = size;
}

int adv_imp(void *arg, vmspace_size_t size, int fl, vmspace_addr_t *addrp)
{
	struct importer *im = arg;
	im->last_flags = fl;
	vmspace_addr_t at;
	switch (im->mode) {
	case IMP_FAIL:
		return 1;
	case IMP_MISALIGN:
		at = im->next + Q;
		break;
	case IMP_OVERLAP:
		at = im->overlap_at;
		break;
	case IMP_WRAP:
		at = UINTPTR_MAX - Q + 1;
		break;
	default:
		if (im->from) {
			if (vmspace_arena_alloc(im->from, size, 0, &at) != 0)
				return 1;
		} else {
			at = im->next;
			im->next += size;
		}
	}
	if (im->imports < MAXIMP) {
		im->got[im->imports] = at;
		im->gsz[im->imports] = size;
	}
	im->imports++;
	*addrp = at;
	return 0;
}

void adv_rel(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct importer *im = arg;
	im->releases++;
	for (int i = 0; i < im->imports && i < MAXIMP; i++)
		if (im->got[i] == addr && im->gsz[i] == size && !im->released[i]) {
			im->released[i] = 1;
			if (im->from)
				vmspace_arena_free(im->from, addr, size);
			return;
		}
	im->bad_release++;
}
