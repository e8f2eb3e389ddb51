/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Outside review, round 36b (a newcomer with the headers): vmem_print's
 * output whole whatever its length and whatever bytes the name holds,
 * vmem_init refusing storage that holds a live arena, and max_tags past
 * the most an arena can hold refused before anything is reserved.
 */
#include <stdarg.h>

#include "ctest.h"

static char printed[4096];
static size_t printed_len;

/* A printf-like function that appends to `printed`. */
static int capture(const char *fmt, ...)
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

/*
 * vmem.h: vmem_print "prints the arena at addr"; the README: "one line of
 * sizes, then one per span and segment". A header line longer than any
 * buffer (a 31-byte name, 46-bit sizes) comes out whole, with its
 * newline: it was cut at 159 bytes, `live` and the newline lost.
 */
static int long_lines(void)
{
	int failures = 0;
	vmem_t *v = vmem_create("device-offsets-of-controller-07", 0x100000000000,
				0x3f0000000000, 4096, 0, 0);
	CHECK(v != NULL);
	if (!v)
		return failures;
	vmem_addr_t a = 0;
	CHECK_EQ(vmem_alloc(v, 0x10000000000, M_NOWAIT, &a), 0);
	printed_len = 0;
	printed[0] = 0;
	vmem_print((vmem_addr_t)v, "", capture);
	const char *first_nl = strchr(printed, '\n');
	CHECK(first_nl != NULL);
	CHECK(strstr(printed, "'device-offsets-of-controller-07'") != NULL);
	/* The header line ends with the live count, then the newline. */
	const char *live = strstr(printed, " live 1\n");
	CHECK(live != NULL && live + 7 == first_nl);
	CHECK(first_nl != NULL && first_nl - printed > 159);
	/* Then a span, an allocation and a free segment, a line each. */
	int lines = 0;
	for (const char *p = printed; *p; p++)
		lines += *p == '\n';
	CHECK_EQ(lines, 4);
	CHECK(strstr(printed, "\n  span  0x100000000000-0x4f0000000000 size 0x3f0000000000\n") != NULL);
	vmem_free(v, a, 0x10000000000);
	vmem_destroy(v);
	return failures;
}

/*
 * vmspace.h: "Bytes of an arena's name kept: 31". vmem_print prints those
 * bytes: a cut that splits a UTF-8 character printed the name as "?".
 */
static int name_bytes(void)
{
	int failures = 0;
	const char *name = "abcdefghijklmnopqrstuvwxyz0123\xc3\xa9";
	vmem_t *v = vmem_create(name, 0x1000, 0x1000, 16, 0, 0);
	CHECK(v != NULL);
	if (!v)
		return failures;
	printed_len = 0;
	printed[0] = 0;
	vmem_print((vmem_addr_t)v, "", capture);
	CHECK(strstr(printed, "'abcdefghijklmnopqrstuvwxyz0123\xc3'") != NULL);
	CHECK(strstr(printed, "'?'") == NULL);
	vmem_destroy(v);
	return failures;
}

/*
 * vmem.h: vmem_init gives NULL "when `vm` holds a live arena (initialized,
 * not destroyed)": it replaced the arena, which was lost with its
 * mappings. The live arena stays as it was, usable; once destroyed, the
 * storage takes a new one.
 */
static int init_over_live(void)
{
	int failures = 0;
	static vmem_t storage;
	vmem_t *v = vmem_init(&storage, "first", 0x10000, 0x10000, 16, 0, 0);
	CHECK(v == &storage);
	if (!v)
		return failures;
	vmem_addr_t a = 0;
	CHECK_EQ(vmem_alloc(v, 32, M_NOWAIT, &a), 0);
	for (int i = 0; i < 3; i++)
		CHECK(vmem_init(&storage, "again", 0x20000, 0x1000, 16, 0, 0) == NULL);
	CHECK_EQ(vmem_size(v, VMEM_ALLOC), 32);
	CHECK_EQ(vmem_size(v, VMEM_ALLOC | VMEM_FREE), 0x10000);
	vmem_free(v, a, 32);
	vmem_destroy(v);
	v = vmem_init(&storage, "second", 0x20000, 0x1000, 16, 0, 0);
	CHECK(v == &storage);
	if (v) {
		CHECK_EQ(vmem_size(v, VMEM_ALLOC | VMEM_FREE), 0x1000);
		vmem_destroy(v);
	}
	return failures;
}

/*
 * vmspace.h (struct vmspace_params): max_tags "at most 2^28 - 1 (-EINVAL
 * above, nothing reserved)": it was capped at that silently while address
 * space was reserved for every tag asked for (36 TiB for 2^40).
 */
static int max_tags(void)
{
	int failures = 0;
	size_t asks[] = { ((size_t)1 << 28), (size_t)1 << 36, (size_t)1 << 40, SIZE_MAX };
	for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
		struct vmspace_params p = { .quantum = 4096, .max_tags = asks[i] };
		vmspace_arena_t *a = (vmspace_arena_t *)0x1;
		CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	}
	struct vmspace_params ok = { .quantum = 4096, .max_tags = 1024 };
	vmspace_arena_t *a = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&ok, &a), 0);
	if (a)
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

int ctest_outside_r36b(void)
{
	return long_lines() + name_bytes() + init_over_live() + max_tags();
}
