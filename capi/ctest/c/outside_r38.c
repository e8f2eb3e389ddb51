/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Outside review, round 38: an adversary of round 36b's vmem_print (lines
 * in pieces, the name's raw bytes) and vmem_init (NULL over a live arena).
 */
#include <errno.h>
#include <stdarg.h>

#include "ctest.h"

static char out[8192];
static size_t out_len;
static int pieces;
static int bad_fmt;

/* Appends to `out`; counts calls; notes any format other than "%s". */
static int capture(const char *fmt, ...)
{
	va_list ap;
	if (strcmp(fmt, "%s") != 0)
		bad_fmt++;
	pieces++;
	va_start(ap, fmt);
	int n = vsnprintf(out + out_len, sizeof(out) - out_len, fmt, ap);
	va_end(ap);
	if (n > 0) {
		out_len += (size_t)n;
		if (out_len >= sizeof(out))
			out_len = sizeof(out) - 1;
	}
	return n;
}

/* Writes nothing and fails. */
static int failing(const char *fmt, ...)
{
	(void)fmt;
	pieces++;
	return -1;
}

static void reset(void)
{
	out_len = 0;
	out[0] = 0;
	pieces = 0;
	bad_fmt = 0;
}

/*
 * vmspace.h:132-133 "Bytes of an arena's name kept" (VMSPACE_NAME_MAX 31);
 * CHANGELOG (round 36b): vmem_print writes "the name's bytes as they are".
 * Every byte value 1..255, 31 to a name: printed between the quotes
 * exactly; the header line ends in one newline; pr only ever gets "%s".
 */
static int every_name_byte(void)
{
	int failures = 0;
	for (int first = 1; first < 256; first += VMSPACE_NAME_MAX) {
		char name[VMSPACE_NAME_MAX + 1];
		int n = 0;
		for (int b = first; b < 256 && n < VMSPACE_NAME_MAX; b++)
			name[n++] = (char)b;
		name[n] = 0;
		vmem_t *v = vmem_create(name, 0x10000, 0x10000, 16, 0, 0);
		CHECK(v != NULL);
		if (!v)
			continue;
		reset();
		vmem_print((vmem_addr_t)v, NULL, capture);
		CHECK_EQ(bad_fmt, 0);
		char want[64];
		snprintf(want, sizeof(want), "vmem %#lx '", (unsigned long)(uintptr_t)v);
		size_t wl = strlen(want);
		CHECK(strncmp(out, want, wl) == 0);
		CHECK(out_len > wl + (size_t)n + 2);
		if (out_len > wl + (size_t)n + 2) {
			CHECK(memcmp(out + wl, name, (size_t)n) == 0);
			CHECK(strncmp(out + wl + n, "': quantum 0x10 ", 16) == 0);
		}
		const char *nl = strstr(out, " live 0\n");
		CHECK(nl != NULL);
		vmem_destroy(v);
	}
	return failures;
}

/*
 * vmem.h:72-73 "A printf-like function (printf itself will do)": one
 * that fails and writes nothing must not stop or break the printing (one
 * call a line at least), and a line that goes out in pieces concatenates
 * to the same text. Then a destroyed arena and zeroed storage: one line,
 * "not a live arena", no crash (vmem.h:123-127).
 */
static int failing_printf_and_dead_arenas(void)
{
	int failures = 0;
	static vmem_t storage;
	const char *name = "a-name-of-thirty-one-bytes-long";
	vmem_t *v = vmem_init(&storage, name, (vmem_addr_t)1 << 46,
			      ((vmem_size_t)1 << 46) - 0x1000, 0x1000, 0, 0);
	CHECK(v == &storage);
	if (!v)
		return failures;
	vmem_addr_t a[20];
	for (int i = 0; i < 20; i++)
		CHECK_EQ(vmem_alloc(v, (vmem_size_t)0x1000 << (i % 20), M_NOWAIT | M_FIRSTFIT, &a[i]), 0);
	reset();
	vmem_print((vmem_addr_t)v, "", failing);
	int lines_failing = pieces;
	reset();
	vmem_print((vmem_addr_t)v, "", capture);
	int newlines = 0;
	for (size_t i = 0; i < out_len; i++)
		newlines += out[i] == '\n';
	/* header, span, 20 allocations, the free rest: 23 lines. */
	CHECK_EQ(newlines, 23);
	CHECK_EQ(lines_failing, pieces);
	CHECK(pieces >= newlines);
	CHECK(out_len > 0 && out[out_len - 1] == '\n');
	for (int i = 0; i < 20; i++)
		vmem_free(v, a[i], (vmem_size_t)0x1000 << (i % 20));
	vmem_destroy(v);
	reset();
	vmem_print((vmem_addr_t)&storage, "", capture);
	CHECK(strstr(out, "not a live arena") != NULL);
	CHECK_EQ(newlines = (int)(strchr(out, '\n') ? 1 : 0), 1);
	CHECK(out_len > 0 && out[out_len - 1] == '\n');
	static vmem_t zeroed;
	reset();
	vmem_print((vmem_addr_t)&zeroed, "", capture);
	CHECK(strstr(out, "not a live arena") != NULL);
	reset();
	vmem_print((vmem_addr_t)&storage + 8, "", capture);
	CHECK(strstr(out, "not a live arena") != NULL);
	return failures;
}

static int hook_errors;
static int hook_last;
static void hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr,
		 vmem_size_t size, int error)
{
	(void)arg, (void)vm, (void)what, (void)addr, (void)size;
	hook_errors++;
	hook_last = error;
}

/*
 * vmem.h:80-82: vmem_init gives NULL "when `vm` holds a live arena
 * (initialized, not destroyed)"; vmem.rs:197-198 a destroy refused
 * because others import from it leaves the arena live. Storage whose
 * destroy was refused still holds a live arena: NULL, the arena intact;
 * after the importer goes and the destroy is done, init works again, ten
 * times over.
 */
static int init_after_refused_destroy(void)
{
	int failures = 0;
	static vmem_t storage;
	vmem_t *v = vmem_init(&storage, "parent", 0x100000, 0x100000, 0x1000, 0, 0);
	CHECK(v == &storage);
	if (!v)
		return failures;
	vmem_set_error_hook(v, hook, NULL);
	struct vmspace_params p = { .name = "child", .quantum = 0x1000,
				    .parent = (vmspace_arena_t *)v };
	vmspace_arena_t *child = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	vmspace_addr_t c = 0;
	if (child)
		CHECK_EQ(vmspace_arena_alloc(child, 0x1000, 0, &c), 0);
	vmem_destroy(v);
	CHECK_EQ(hook_errors, 1);
	CHECK_EQ(hook_last, EBUSY);
	CHECK(vmem_init(&storage, "over", 0x900000, 0x1000, 16, 0, 0) == NULL);
	CHECK_EQ(vmem_size(v, VMEM_ALLOC | VMEM_FREE), 0x100000);
	CHECK_EQ(vmem_size(v, VMEM_ALLOC), 0x1000);
	if (child) {
		CHECK_EQ(vmspace_arena_free(child, c, 0x1000), 0);
		CHECK_EQ(vmspace_arena_destroy(child), 0);
	}
	vmem_destroy(v);
	CHECK_EQ(hook_errors, 1);
	for (int i = 0; i < 10; i++) {
		v = vmem_init(&storage, "again", 0x200000, 0x2000, 16, 0, 0);
		CHECK(v == &storage);
		if (!v)
			break;
		vmem_addr_t a = 0;
		CHECK_EQ(vmem_alloc(v, 32, M_NOWAIT, &a), 0);
		CHECK(vmem_init(&storage, "twice", 0x200000, 0x2000, 16, 0, 0) == NULL);
		vmem_free(v, a, 32);
		vmem_destroy(v);
	}
	return failures;
}

/*
 * vmem.h:80 "An arena in the caller's storage `vm` (sizeof(vmem_t)), or
 * NULL"; vmspace.h: misuse returns an error, never a crash. Storage off
 * vmem_t's 16-byte alignment by 8 and by 1: NULL, nothing written; the
 * aligned storage next to it still works.
 */
static int init_misaligned(void)
{
	int failures = 0;
	static _Alignas(16) unsigned char buf[sizeof(vmem_t) + 32];
	for (size_t off = 1; off < 16; off += 7) {
		memset(buf, 0xa5, sizeof(buf));
		void *p = buf + off;
		CHECK(vmem_init((vmem_t *)p, "mis", 0x1000, 0x1000, 16, 0, 0) == NULL);
		int untouched = 1;
		for (size_t i = 0; i < sizeof(buf); i++)
			untouched &= buf[i] == 0xa5;
		CHECK(untouched);
	}
	vmem_t *v = vmem_init((vmem_t *)(void *)(buf + 16), "ok", 0x1000, 0x1000, 16, 0, 0);
	CHECK(v != NULL);
	if (v)
		vmem_destroy(v);
	return failures;
}

int ctest_outside_r38(void)
{
	return every_name_byte() + failing_printf_and_dead_arenas() +
	       init_after_refused_destroy() + init_misaligned();
}
