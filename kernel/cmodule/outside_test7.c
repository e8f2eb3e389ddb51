// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, part 7 (split from part 3): every
 * policy, TOP and VMSPACE_EXACT against a brute force over the free
 * segments.
 */
#include <kunit/test.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

/* Every policy against a brute force over the free segments: -ENOMEM only
 * when no free segment has a place meeting the constraints; first fit in
 * the lowest such segment (with TOP the highest), best fit in a smallest. */
struct freesegs {
	int n;
	vmspace_addr_t start[160];
	vmspace_size_t size[160];
};

static int snap(void *arg, const struct vmspace_segment *seg)
{
	struct freesegs *f = arg;

	if (f->n < 160) {
		f->start[f->n] = seg->start;
		f->size[f->n] = seg->size;
	}
	f->n++;
	return 0;
}

static bool place(vmspace_addr_t start, vmspace_addr_t end, vmspace_size_t rsize, vmspace_size_t align,
		  vmspace_size_t phase, vmspace_size_t nocross, vmspace_addr_t min, vmspace_addr_t max)
{
	vmspace_addr_t s = max_t(vmspace_addr_t, start, min);
	int i;

	if (!align)
		align = 64, phase = 0;
	for (i = 0; i < 256 && s + rsize <= end; i++) {
		s = s <= phase ? phase : phase + round_up(s - phase, align);
		if (nocross && s / nocross != (s + rsize - 1) / nocross) {
			s = round_up(s + 1, nocross);
			continue;
		}
		return s + rsize <= end && (!max || s + rsize <= max);
	}
	return false;
}

static void policies_match_brute_force(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("brute", 0x100000, 0x100000, 64, 0, 0);
	static const int pol[] = { VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT, VMSPACE_NEXTFIT,
				   VMSPACE_FIRSTFIT | VMSPACE_TOP, VMSPACE_BESTFIT | VMSPACE_TOP,
				   VMSPACE_INSTANTFIT | VMSPACE_TOP };
	struct { vmspace_addr_t a; vmspace_size_t s; } *live = kunit_kcalloc(test, 64, sizeof(*live), GFP_KERNEL);
	struct freesegs *f = kunit_kzalloc(test, sizeof(*f), GFP_KERNEL);
	u32 r = 777;
	int i, n = 0, bad = 0, nomem = 0;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, live);
	KUNIT_ASSERT_NOT_NULL(test, f);
	for (i = 0; i < 4000 && bad < 5; i++) {
		vmspace_size_t size, rsize, align, phase, nocross, best = ~0UL;
		vmspace_addr_t min, max, x = 0;
		int err, flags, k, first = -1, last = -1, in = -1;

		r = r * 1103515245 + 12345;
		if (n == 64 || (n && (r >> 28) < 7)) {
			k = (r >> 4) % n;
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, live[k].a, live[k].s), 0);
			live[k] = live[--n];
			continue;
		}
		size = 1 + (r >> 8) % 0x8000;
		rsize = round_up(size, 64);
		r = r * 1103515245 + 12345;
		align = (r >> 12) & 1 ? 64UL << ((r >> 13) % 11) : 0;
		phase = align ? ((r >> 17) % (align / 64)) * 64 : 0;
		nocross = (r >> 20) & 1 ? 0x8000UL << ((r >> 21) % 4) : 0;
		if (nocross && rsize > nocross)
			nocross = 0;
		r = r * 1103515245 + 12345;
		min = (r >> 10) & 1 ? 0x100000 + ((r >> 11) % 0x100000) : 0;
		max = (r >> 22) & 1 ? min + ((r >> 3) % 0x80000) + rsize : 0;
		flags = pol[(r >> 25) % ARRAY_SIZE(pol)];
		f->n = 0;
		KUNIT_ASSERT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_FREE, snap, f), 0);
		KUNIT_ASSERT_LE(test, f->n, 160);
		for (k = 0; k < f->n; k++)
			if (place(f->start[k], f->start[k] + f->size[k], rsize, align, phase, nocross, min, max)) {
				if (first < 0)
					first = k;
				last = k;
				best = min_t(vmspace_size_t, best, f->size[k]);
			}
		err = vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, 0, flags, &x);
		if (err) {
			if (err == -ENOMEM)
				nomem++;
			if ((err != -ENOMEM && err != -ERANGE) || first >= 0) {
				bad++;
				KUNIT_FAIL(test, "flags %#x size %#zx align %#zx phase %#zx nocross %#zx min %#lx max %#lx: %d, but segment [%#lx, +%#zx) has room",
					   flags, size, align, phase, nocross, min, max, err,
					   first >= 0 ? f->start[first] : 0, first >= 0 ? f->size[first] : 0);
			}
			continue;
		}
		for (k = 0; k < f->n; k++)
			if (x >= f->start[k] && x < f->start[k] + f->size[k])
				in = k;
		if (in < 0 || (align && x % align != phase) ||
		    (nocross && x / nocross != (x + rsize - 1) / nocross) || x < min || (max && x + rsize > max) ||
		    x + rsize > f->start[in] + f->size[in] ||
		    ((flags & VMSPACE_FIRSTFIT) && !(flags & VMSPACE_TOP) && in != first) ||
		    ((flags & VMSPACE_FIRSTFIT) && (flags & VMSPACE_TOP) && in != last) ||
		    ((flags & VMSPACE_BESTFIT) && f->size[in] != best)) {
			bad++;
			KUNIT_FAIL(test, "flags %#x size %#zx align %#zx phase %#zx nocross %#zx min %#lx max %#lx: got %#lx in segment %d [%#lx, +%#zx); first %d last %d best %#zx",
				   flags, size, align, phase, nocross, min, max, x, in,
				   in >= 0 ? f->start[in] : 0, in >= 0 ? f->size[in] : 0, first, last, best);
		}
		live[n].a = x;
		live[n++].s = size;
	}
	kunit_info(test, "%d steps, %d -ENOMEM", i, nomem);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	while (n--)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, live[n].a, live[n].s), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Instant fit with a free segment of exactly the size, and with the first
 * segment of a list not meeting the constraints but another one does. */
static void instant_fit_finds_what_fits(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("ifit", 0x10000, 0x3000, 0x1000, 0, VMSPACE_INSTANTFIT);
	vmspace_addr_t x;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x3000, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x3000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x2001, VMSPACE_INSTANTFIT, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x2001), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x31000, 0x5000, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x20000, 0x5000, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x4000, 0x10000, 0, 0, 0, 0, 0, VMSPACE_INSTANTFIT, &x), 0);
	KUNIT_EXPECT_EQ(test, x, 0x20000UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x4000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x4000, 0, 0, 0, 0x30000, 0, 0, VMSPACE_INSTANTFIT, &x), 0);
	KUNIT_EXPECT_EQ(test, x, 0x31000UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x4000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x4000, 0, 0, 0, 0, 0x25000, 0, VMSPACE_NEXTFIT, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x4000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* The highest place in [start, end) meeting the constraints, or false. */
static bool place_high(vmspace_addr_t start, vmspace_addr_t end, vmspace_size_t rsize, vmspace_size_t q,
		       vmspace_size_t align, vmspace_size_t phase, vmspace_size_t nocross,
		       vmspace_addr_t min, vmspace_addr_t max, vmspace_addr_t *at)
{
	vmspace_addr_t hi = max ? min_t(vmspace_addr_t, end, max) : end, s;
	int i;

	if (!align)
		align = q, phase = 0;
	if (hi < rsize)
		return false;
	s = hi - rsize;
	for (i = 0; i < 256; i++) {
		if (s < phase)
			return false;
		s = phase + round_down(s - phase, align);
		if (s < start || s < min)
			return false;
		if (nocross && s / nocross != (s + rsize - 1) / nocross) {
			vmspace_addr_t b = round_down(s + rsize - 1, nocross);

			if (b < rsize)
				return false;
			s = b - rsize;
			continue;
		}
		*at = s;
		return true;
	}
	return false;
}

static void top_and_exact_brute_force(struct kunit *test)
{
	static const vmspace_size_t quanta[] = { 1, 64, 4096 };
	int qi;

	for (qi = 0; qi < ARRAY_SIZE(quanta); qi++) {
		vmspace_size_t q = quanta[qi], span = q * 0x4000;
		vmspace_arena_t *a = vmspace_arena_create("top", q * 0x1000, span, q, 0, 0);
		struct { vmspace_addr_t a; vmspace_size_t s; } *live = kunit_kcalloc(test, 64, sizeof(*live), GFP_KERNEL);
		struct freesegs *f = kunit_kzalloc(test, sizeof(*f), GFP_KERNEL);
		u32 r = 4242 + qi;
		int i, n = 0, bad = 0;

		KUNIT_ASSERT_NOT_NULL(test, a);
		KUNIT_ASSERT_NOT_NULL(test, live);
		KUNIT_ASSERT_NOT_NULL(test, f);
		for (i = 0; i < 3000 && bad < 5; i++) {
			vmspace_size_t size, rsize, align, phase, nocross;
			vmspace_addr_t min, max, x = 0, exact = 0, hiat = 0, best_hi = 0;
			int err, flags, k, in = -1, last = -1;
			bool exact_ok = false;

			r = r * 1103515245 + 12345;
			if (n == 64 || (n && (r >> 28) < 7)) {
				k = (r >> 4) % n;
				KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, live[k].a, live[k].s), 0);
				live[k] = live[--n];
				continue;
			}
			size = 1 + (r >> 8) % (q * 0x200);
			rsize = round_up(size, q);
			r = r * 1103515245 + 12345;
			align = (r >> 12) & 1 ? q << ((r >> 13) % 10) : 0;
			phase = align ? ((r >> 17) % (align / q)) * q : 0;
			nocross = (r >> 20) & 1 ? (q * 0x200) << ((r >> 21) % 4) : 0;
			r = r * 1103515245 + 12345;
			min = (r >> 10) & 1 ? q * 0x1000 + ((r >> 11) % span) : 0;
			max = (r >> 22) & 1 ? min + ((r >> 3) % (span / 2)) + rsize : 0;
			flags = (r >> 25) & 1 ? VMSPACE_FIRSTFIT | VMSPACE_TOP : VMSPACE_EXACT;
			f->n = 0;
			KUNIT_ASSERT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_FREE, snap, f), 0);
			KUNIT_ASSERT_LE(test, f->n, 160);
			if (flags & VMSPACE_EXACT) {
				/* an exact place: often a free segment's start or a few quanta in */
				k = f->n ? (r >> 5) % f->n : 0;
				exact = f->n ? f->start[k] + q * ((r >> 9) % 4) : q * 0x1000;
				exact_ok = f->n && exact + rsize <= f->start[k] + f->size[k] && exact >= min &&
					   (!max || exact + rsize <= max) && (!align || exact % align == phase) &&
					   (!nocross || exact / nocross == (exact + rsize - 1) / nocross);
			}
			for (k = 0; k < f->n; k++)
				if (place_high(f->start[k], f->start[k] + f->size[k], rsize, q, align, phase,
					       nocross, min, max, &hiat)) {
					last = k;
					best_hi = hiat;
				}
			err = vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, exact, flags, &x);
			if (flags & VMSPACE_EXACT) {
				if (exact_ok ? err != 0 || x != exact : err == 0) {
					bad++;
					KUNIT_FAIL(test, "q %#zx exact %#lx size %#zx align %#zx phase %#zx nocross %#zx min %#lx max %#lx: %d at %#lx (brute force: %s)",
						   q, exact, size, align, phase, nocross, min, max, err, x,
						   exact_ok ? "fits" : "does not fit");
				}
			} else if (err) {
				if (last >= 0) {
					bad++;
					KUNIT_FAIL(test, "q %#zx top size %#zx align %#zx phase %#zx nocross %#zx min %#lx max %#lx: %d but %#lx fits",
						   q, size, align, phase, nocross, min, max, err, best_hi);
				}
			} else if (x != best_hi) {
				for (k = 0; k < f->n; k++)
					if (x >= f->start[k] && x < f->start[k] + f->size[k])
						in = k;
				bad++;
				KUNIT_FAIL(test, "q %#zx first fit top size %#zx align %#zx phase %#zx nocross %#zx min %#lx max %#lx: got %#lx (segment %d), highest place %#lx (segment %d)",
					   q, size, align, phase, nocross, min, max, x, in, best_hi, last);
			}
			if (!err) {
				live[n].a = x;
				live[n++].s = size;
			}
		}
		KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
		while (n--)
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, live[n].a, live[n].s), 0);
		KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	}
}

static struct kunit_case vmspace_cmod_outside7_cases[] = {
	KUNIT_CASE(top_and_exact_brute_force),
	KUNIT_CASE(policies_match_brute_force),
	KUNIT_CASE(instant_fit_finds_what_fits),
	{}
};

static struct kunit_suite vmspace_cmod_outside7_suite = {
	.name = "vmspace_cmod_outside7",
	.test_cases = vmspace_cmod_outside7_cases,
};

kunit_test_suite(vmspace_cmod_outside7_suite);
