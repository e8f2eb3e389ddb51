/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): names,
 * caller buffers (histogram, walk, vmem_print) and the small calls.
 */
#include "outside_adversary.h"

/* ------------------------------------------------------------ names */

int adv_names(void)
{
	int failures = 0;
	char buf[128];
	memset(buf, 'n', sizeof(buf));
	buf[sizeof(buf) - 1] = 0;
	vmspace_arena_t *a = vmspace_arena_create(buf, B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (a) {
		const char *n = vmspace_arena_name(a);
		CHECK(n != NULL);
		if (n) {
			CHECK_EQ(strlen(n), VMSPACE_NAME_MAX);
			CHECK(strncmp(n, buf, VMSPACE_NAME_MAX) == 0);
		}
		vmspace_arena_destroy(a);
	}
	/* exactly the limit, one less, one more */
	for (int len = VMSPACE_NAME_MAX - 1; len <= VMSPACE_NAME_MAX + 1; len++) {
		memset(buf, 'a' + len % 26, sizeof(buf));
		buf[len] = 0;
		a = vmspace_arena_create(buf, B, 0x1000, Q, 0, 0);
		CHECK(a != NULL);
		if (!a)
			continue;
		/* the name is copied */
		buf[0] = 'Z';
		const char *n = vmspace_arena_name(a);
		CHECK(n != NULL);
		if (n) {
			size_t want = len < VMSPACE_NAME_MAX ? (size_t)len : VMSPACE_NAME_MAX;
			CHECK_EQ(strlen(n), want);
			CHECK(n[0] == 'a' + len % 26);
		}
		vmspace_arena_destroy(a);
	}
	/* empty and NULL names */
	a = vmspace_arena_create("", B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (a) {
		const char *n = vmspace_arena_name(a);
		CHECK(n != NULL && n[0] == 0);
		vmspace_arena_destroy(a);
	}
	a = vmspace_arena_create(NULL, B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (a) {
		const char *n = vmspace_arena_name(a);
		CHECK(n != NULL);
		vmspace_arena_destroy(a);
	}
	/* bytes kept: 31 bytes, whatever they are (non-ASCII, invalid
	 * UTF-8, a multi-byte character cut at byte 31) */
	memset(buf, 0, sizeof(buf));
	memset(buf, 'x', 30);
	buf[30] = (char)0xc3; /* e-acute, 2 bytes: the 31st and 32nd */
	buf[31] = (char)0xa9;
	a = vmspace_arena_create(buf, B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (a) {
		const char *n = vmspace_arena_name(a);
		CHECK(n != NULL);
		if (n) {
			size_t l = strlen(n);
			if (l != VMSPACE_NAME_MAX)
				fprintf(stderr,
					"outside_adversary: note: a name cut inside a UTF-8 "
					"character keeps %zu bytes, not %d\n",
					l, VMSPACE_NAME_MAX);
			CHECK(strncmp(n, buf, l) == 0);
		}
		vmspace_arena_destroy(a);
	}
	const char bad[] = "\xff\xfe\x80 raw";
	a = vmspace_arena_create(bad, B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (a) {
		const char *n = vmspace_arena_name(a);
		CHECK(n != NULL && strcmp(n, bad) == 0);
		vmspace_arena_destroy(a);
	}
	struct vmspace_params p;
	memset(&p, 0, sizeof(p));
	p.quantum = Q;
	memset(buf, 'p', 60);
	buf[60] = 0;
	p.name = buf;
	vmspace_arena_t *c = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
	if (c) {
		const char *n = vmspace_arena_name(c);
		CHECK(n != NULL && strlen(n) == VMSPACE_NAME_MAX);
		vmspace_arena_destroy(c);
	}
	/* vmem_create: the same limit (31, not vmem(9)'s 16) */
	vmem_t *v = vmem_create(buf, B, 0x1000, Q, 0, 0);
	CHECK(v != NULL);
	if (v) {
		const char *n = vmspace_arena_name((vmspace_arena_t *)v);
		CHECK(n != NULL && strlen(n) == VMSPACE_NAME_MAX);
		vmem_destroy(v);
	}
	return failures;
}

/* ------------------------------------------------------------ buffers */

static int stop_at(void *arg, const struct vmspace_segment *seg)
{
	int *n = arg;
	(void)seg;
	return ++*n == 3 ? -77 : 0;
}

static int count_kind(void *arg, const struct vmspace_segment *seg)
{
	vmspace_size_t *c = arg;
	if (seg->kind == VMSPACE_SEG_FREE)
		c[0]++;
	if (seg->kind == VMSPACE_SEG_SPAN)
		c[1]++;
	if (seg->kind == VMSPACE_SEG_ALLOCATED)
		c[2]++;
	return 0;
}

static char printed[8192];
static size_t printed_len;

static int pr(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(printed + printed_len, sizeof(printed) - printed_len, fmt, ap);
	va_end(ap);
	if (n > 0) {
		printed_len += (size_t)n;
		if (printed_len >= sizeof(printed))
			printed_len = sizeof(printed) - 1;
	}
	return n;
}

int adv_buffers(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("buf", B, 0x10000, Q, 0, VMSPACE_FIRSTFIT);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x[8];
	for (int i = 0; i < 8; i++)
		CHECK_EQ(vmspace_arena_alloc(a, (vmspace_size_t)Q << i, 0, &x[i]), 0);
	for (int i = 0; i < 8; i += 2)
		CHECK_EQ(vmspace_arena_free(a, x[i], (vmspace_size_t)Q << i), 0);
	uint64_t bins[VMSPACE_HISTOGRAM_BINS + 2];
	const uint64_t sentinel = 0x5a5a5a5a5a5a5a5aULL;
	for (size_t i = 0; i < VMSPACE_HISTOGRAM_BINS + 2; i++)
		bins[i] = sentinel;
	CHECK_EQ(vmspace_arena_histogram(a, bins, 0), 0);
	CHECK_EQ(bins[0], sentinel);
	CHECK_EQ(vmspace_arena_histogram(a, bins, 1), 1);
	CHECK_EQ(bins[1], sentinel);
	CHECK_EQ(vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS + 1),
		 VMSPACE_HISTOGRAM_BINS);
	CHECK_EQ(bins[VMSPACE_HISTOGRAM_BINS], sentinel);
	CHECK_EQ(bins[VMSPACE_HISTOGRAM_BINS + 1], sentinel);
	CHECK_EQ(vmspace_arena_histogram(a, bins, SIZE_MAX), VMSPACE_HISTOGRAM_BINS);
	CHECK_EQ(bins[VMSPACE_HISTOGRAM_BINS], sentinel);
	uint64_t nfree = 0;
	for (int i = 0; i < VMSPACE_HISTOGRAM_BINS; i++)
		nfree += bins[i];
	vmspace_size_t c[3] = { 0, 0, 0 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL, count_kind, c), 0);
	CHECK_EQ(nfree, c[0]);
	CHECK_EQ(c[1], 1);
	CHECK_EQ(c[2], 4);
	/* bins[k]: sizes in [2^k, 2^(k+1)): the free [x0, +16) is bin 4 */
	CHECK(bins[4] >= 1);
	/* walk: the stop value is returned as is, even a negative one */
	int n = 0;
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL, stop_at, &n), -77);
	CHECK_EQ(n, 3);
	n = 0;
	int ew = vmspace_arena_walk(a, 0, stop_at, &n);
	CHECK(ew == 0 || ew == -EINVAL);
	CHECK_EQ(n, 0);
	CHECK_EQ(vmspace_arena_walk(a, 0x10, stop_at, &n), -EINVAL);
	CHECK_EQ(vmspace_arena_walk(a, -1, stop_at, &n), -EINVAL);
	CHECK_EQ(n, 0);
	/* vmem_print: one line of sizes, then one per span and segment */
	printed_len = 0;
	printed[0] = 0;
	vmem_print((vmem_addr_t)a, "", pr);
	size_t lines = 0;
	for (size_t i = 0; i < printed_len; i++)
		lines += printed[i] == '\n';
	vmspace_size_t segs[3] = { 0, 0, 0 };
	vmspace_arena_walk(a, VMSPACE_SEG_ALL, count_kind, segs);
	CHECK_EQ(lines, 1 + segs[0] + segs[1] + segs[2]);
	/* vmem_print of something that is not an arena: no crash */
	static _Alignas(16) unsigned char zero[2048];
	printed_len = 0;
	vmem_print((vmem_addr_t)zero, "", pr);
	printed_len = 0;
	vmem_whatis(B, pr);
	vmem_printall("", pr);
	CHECK(printed_len > 0);
	for (int i = 1; i < 8; i += 2)
		CHECK_EQ(vmspace_arena_free(a, x[i], (vmspace_size_t)Q << i), 0);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ------------------------------------------------------------ misc */

int adv_misc(void)
{
	int failures = 0;
	const int codes[] = { 0,       1,       EINVAL,   EBADF,  ENOMEM,     ERANGE,
			      EOVERFLOW, ENOENT, EMSGSIZE, EEXIST, EBUSY,      ENOSPC,
			      EPROTO,  EIO,     EAGAIN,   EUCLEAN, EOPNOTSUPP, 4095,
			      12345,   INT_MAX, INT_MIN,  INT_MIN + 1 };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *m = vmspace_strerror(codes[i]);
		CHECK(m != NULL);
		if (codes[i] != INT_MIN) {
			const char *n = vmspace_strerror(-codes[i]);
			CHECK(n != NULL);
			if (m && n)
				CHECK(strcmp(m, n) == 0);
		}
	}
	CHECK_EQ(vmspace_version(), VMSPACE_VERSION);

	vmspace_arena_t *a = vmspace_arena_create("misc", B, 0x1000, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	CHECK_EQ(vmspace_arena_contains(a, B, 0x1000), 1);
	CHECK_EQ(vmspace_arena_contains(a, B, 0x1001), 0);
	CHECK_EQ(vmspace_arena_contains(a, B - 1, 1), 0);
	CHECK_EQ(vmspace_arena_contains(a, B + 0xfff, 1), 1);
	CHECK_EQ(vmspace_arena_contains(a, B + 3, 5), 1);
	int e = vmspace_arena_contains(a, B, SIZE_MAX);
	CHECK(e != 1);
	CHECK_EQ(vmspace_arena_reclaim(a), 0);
	vmspace_size_t freed = 7;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0);
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.flushes, 0);
	/* mtbf: on and off, nothing left behind */
	CHECK_EQ(vmspace_arena_set_mtbf(a, 42, 1), 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), -EAGAIN);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 0, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	/* set_import on an arena with a parent: -EBUSY */
	struct vmspace_params p;
	memset(&p, 0, sizeof(p));
	p.quantum = Q;
	p.parent = a;
	vmspace_arena_t *ch = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &ch), 0);
	if (ch) {
		CHECK_EQ(vmspace_arena_set_import(ch, NULL, NULL, NULL, 0), -EBUSY);
		CHECK_EQ(vmspace_arena_destroy(a), -EBUSY);
		CHECK_EQ(vmspace_arena_alloc(ch, 0x800, 0, &x), 0);
		/* a parent's allocation is not the child's to free */
		vmspace_addr_t y;
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
		CHECK_EQ(vmspace_arena_free(ch, y, Q), -ENOENT);
		CHECK_EQ(vmspace_arena_free(a, y, Q), 0);
		failures += adv_consistent(ch);
		failures += adv_consistent(a);
		CHECK_EQ(vmspace_arena_destroy(ch), 0);
		/* (A second destroy of `ch` would read freed memory: the header
		 * promises -EBADF only until the memory is reused, and the
		 * racing-destroy test checks it on vmem_init storage.) */
	}
	failures += adv_consistent(a);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}
