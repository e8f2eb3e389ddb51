/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The vmem(9) API: every call, every flag, positive errno values, the
 * error hook on bad frees (with the arena unchanged), reclaim, imports
 * from another vmem arena, limits, the debugging output.
 */
#include <stdarg.h>

#include "ctest.h"

struct hook_log {
	int calls, last_error;
	const char *last_what;
	vmem_addr_t last_addr;
	vmem_size_t last_size;
	vmem_t *last_vm;
};

static void hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
		 int error)
{
	struct hook_log *l = arg;
	l->calls++;
	l->last_vm = vm;
	l->last_what = what;
	l->last_addr = addr;
	l->last_size = size;
	l->last_error = error;
}

static int lines;
static char last_line[256];

static int count_lines(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(last_line, sizeof last_line, fmt, ap);
	va_end(ap);
	lines++;
	return n;
}

static int saw_unflushed_header, saw_unflushed_line;

/* vmem_print's lines with a 64-byte range unflushed at 0x1000. */
static int print_unflushed(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	lines++;
	if (strstr(buf, "unflushed 0x40 "))
		saw_unflushed_header = 1;
	if (strstr(buf, "unfl  0x1000-0x1040"))
		saw_unflushed_line = 1;
	return n;
}

static int calls_and_flags(void)
{
	int failures = 0;
	vmem_startup();
	vmem_t *vm = vmem_create("ids", 0x1000, 0x10000, 16, 64, M_WAITOK | M_BESTFIT);
	CHECK(vm != NULL);
	static const int strategies[] = { 0, M_FIRSTFIT, M_BESTFIT, M_NEXTFIT, M_INSTANTFIT };
	static const int waits[] = { 0, M_NOWAIT, M_WAITOK };
	for (unsigned s = 0; s < 5; s++)
		for (unsigned w = 0; w < 3; w++) {
			vmem_addr_t a = 0, b = 0;
			CHECK_EQ(vmem_alloc(vm, 100, strategies[s] | waits[w], &a), 0);
			CHECK(a >= 0x1000 && a + 100 <= 0x11000 && a % 16 == 0);
			CHECK_EQ(vmem_alloc(vm, 32, strategies[s] | waits[w], &b), 0); /* cached */
			CHECK_EQ(vmem_xalloc(vm, 64, 256, 16, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
					     strategies[s] | waits[w], &a), 0);
			CHECK_EQ(a % 256, 16);
			vmem_xfree(vm, a, 64);
			vmem_free(vm, b, 32);
		}
	/* addrp may be NULL (the address is then lost, as in vmem(9)). */
	CHECK_EQ(vmem_alloc(vm, 16, M_NOWAIT, NULL), 0);
	/* A misaligned addrp: EINVAL, and nothing allocated. */
	vmem_addr_t a, pair[2];
	vmem_size_t in_use = vmem_size(vm, VMEM_ALLOC);
	CHECK_EQ(vmem_alloc(vm, 16, M_NOWAIT, (vmem_addr_t *)((char *)pair + 1)), EINVAL);
	CHECK_EQ(vmem_xalloc(vm, 16, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT,
			     (vmem_addr_t *)((char *)pair + 1)), EINVAL);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), in_use);
	/* minaddr and maxaddr: maxaddr is the last address covered. */
	CHECK_EQ(vmem_xalloc(vm, 0x100, 0, 0, 0, 0x5000, 0x50ff, M_NOWAIT | M_BESTFIT, &a), 0);
	CHECK_EQ(a, 0x5000);
	vmem_xfree(vm, a, 0x100);
	CHECK_EQ(vmem_xalloc(vm, 0x100, 0, 0, 0, 0x5000, 0x50fe, M_NOWAIT | M_BESTFIT, &a), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, 0x100, 0, 0, 0x1000, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &a), 0);
	CHECK(a / 0x1000 == (a + 0xff) / 0x1000);
	vmem_xfree(vm, a, 0x100);
	/* vmem_add and the sizes */
	CHECK_EQ(vmem_add(vm, 0x100000, 0x1000, M_WAITOK), 0);
	CHECK_EQ(vmem_add(vm, 0x100000, 0x1000, M_NOWAIT), EEXIST);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x11000);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC) + vmem_size(vm, VMEM_FREE), 0x11000);
	CHECK(vmem_size(vm, VMEM_MAXFREE) >= 0x1000);
	CHECK_EQ(vmem_roundup_size(vm, 1), 16);
	CHECK_EQ(vmem_roundup_size(vm, 32), 32);
	CHECK_EQ(vmem_roundup_size(vm, 33), 48);
	CHECK_EQ(vmem_roundup_size(vm, SIZE_MAX), 0);
	/* errors: positive errno values */
	CHECK_EQ(vmem_alloc(vm, 0x20000, M_NOWAIT, &a), ENOMEM);
	CHECK_EQ(vmem_alloc(vm, 16, M_NOWAIT | M_WAITOK, &a), EINVAL);
	CHECK_EQ(vmem_alloc(vm, 16, M_FIRSTFIT | M_BESTFIT, &a), EINVAL);
	CHECK_EQ(vmem_alloc(vm, 16, 0x1, &a), EINVAL);
	CHECK_EQ(vmem_alloc(vm, 0, M_NOWAIT, &a), EINVAL);
	CHECK_EQ(vmem_alloc(NULL, 16, M_NOWAIT, &a), EINVAL);
	CHECK_EQ(vmem_add(vm, 0x200000, 0x1000, 0x1), EINVAL);
	/* Sizes too large to round are no space; a span that wraps is a bad
	 * argument: only vmem(9)'s errors, no EOVERFLOW. */
	CHECK_EQ(vmem_alloc(vm, SIZE_MAX, M_NOWAIT, &a), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, SIZE_MAX - 7, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &a),
		 ENOMEM);
	CHECK_EQ(vmem_add(vm, SIZE_MAX - 15, 32, M_NOWAIT), EINVAL);
	CHECK(vmem_create("bad", 0, 0, 3, 0, M_WAITOK) == NULL);
	CHECK(vmem_create("bad", 0, 0, 16, 0, 0x1) == NULL);
	/* A native call on a vmem arena. */
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
	vmem_destroy(vm);
	return failures;
}

static int error_hook(void)
{
	int failures = 0;
	struct hook_log log;
	memset(&log, 0, sizeof log);
	vmem_t *vm = vmem_create("hooked", 0x1000, 0x10000, 16, 64, M_WAITOK);
	vmem_addr_t a, b;
	CHECK_EQ(vmem_alloc(vm, 0x200, M_NOWAIT, &a), 0);
	CHECK_EQ(vmem_alloc(vm, 48, M_NOWAIT, &b), 0);
	/* Without a hook: nothing happens, nothing changes. */
	vmem_free(vm, a, 0x100);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC) > 0, 1);
	vmem_set_error_hook(vm, hook, &log);
	vmem_size_t before = vmem_size(vm, VMEM_ALLOC);
	vmem_free(vm, a, 0x100); /* wrong size */
	CHECK_EQ(log.calls, 1);
	CHECK_EQ(log.last_error, EMSGSIZE);
	CHECK(strcmp(log.last_what, "vmem_free") == 0);
	CHECK_EQ(log.last_addr, a);
	CHECK_EQ(log.last_size, 0x100);
	CHECK(log.last_vm == vm);
	vmem_xfree(vm, a + 16, 0x200); /* not an allocation */
	CHECK_EQ(log.calls, 2);
	CHECK_EQ(log.last_error, ENOENT);
	CHECK(strcmp(log.last_what, "vmem_xfree") == 0);
	vmem_free(vm, b, 32); /* a cached object, wrong size */
	CHECK_EQ(log.calls, 3);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), before);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
	vmem_free(vm, a, 0x200);
	vmem_free(vm, a, 0x200); /* double free */
	CHECK_EQ(log.calls, 4);
	CHECK_EQ(log.last_error, ENOENT);
	vmem_free(vm, b, 48);
	CHECK_EQ(log.calls, 4);
	CHECK_EQ(vmem_size(vm, 0x4), 0); /* bad mask */
	CHECK_EQ(log.calls, 5);
	CHECK_EQ(log.last_error, EINVAL);
	vmem_set_import(vm, NULL, NULL, NULL, 24); /* not a power of two */
	CHECK_EQ(log.calls, 6);
	/* Calls on no arena at all change nothing and crash nothing. */
	vmem_free(NULL, 0, 16);
	vmem_xfree(NULL, 0, 16);
	vmem_destroy(NULL);
	vmem_set_limit(NULL, 1);
	vmem_set_reclaim(NULL, NULL);
	vmem_set_import(NULL, NULL, NULL, NULL, 0);
	vmem_set_error_hook(NULL, NULL, NULL);
	CHECK_EQ(vmem_size(NULL, VMEM_ALLOC), 0);
	CHECK_EQ(vmem_roundup_size(NULL, 5), 5);
	CHECK_EQ(log.calls, 6);
	vmem_destroy(vm);
	return failures;
}

/* A parent vmem arena the child imports from, through vmem callbacks. */
static int import_from_vmem(void *arg, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	return vmem_alloc(arg, size, flags, addrp);
}

static void release_to_vmem(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	vmem_free(arg, addr, size);
}

static vmem_addr_t reserve_addr;
static vmem_size_t reserve_size;
static int reclaims;

static void reclaim(vmem_t *vm, int flags)
{
	(void)flags;
	reclaims++;
	if (reserve_size) {
		vmem_free(vm, reserve_addr, reserve_size);
		reserve_size = 0;
	}
}

static int imports_limits_reclaim(void)
{
	int failures = 0;
	vmem_t *parent = vmem_create("parent", 0x40000000, 0x100000, 0x1000, 0, M_WAITOK);
	vmem_t *child = vmem_create("child", 0, 0, 16, 0, M_WAITOK);
	vmem_set_import(child, import_from_vmem, release_to_vmem, parent, 0x4000);
	vmem_addr_t a;
	CHECK_EQ(vmem_alloc(child, 100, M_NOWAIT, &a), 0);
	CHECK(a >= 0x40000000 && a < 0x40100000);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 0x4000);
	CHECK_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0x4000);
	vmem_free(child, a, 100);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 0); /* given back */
	vmem_set_limit(child, 0x8000);
	vmem_addr_t b;
	CHECK_EQ(vmem_alloc(child, 0x4000, M_NOWAIT, &a), 0);
	CHECK_EQ(vmem_alloc(child, 0x4000, M_NOWAIT, &b), 0);
	vmem_addr_t c;
	CHECK_EQ(vmem_alloc(child, 0x4000, M_NOWAIT, &c), ENOMEM); /* the limit */
	/* The reclaim callback runs when space runs out, and may free. */
	vmem_set_reclaim(child, reclaim);
	reserve_addr = b;
	reserve_size = 0x4000;
	CHECK_EQ(vmem_alloc(child, 0x4000, M_NOWAIT, &c), 0);
	CHECK_EQ(reclaims, 1);
	CHECK_EQ(c, b);
	CHECK_EQ(vmem_alloc(child, 0x4000, M_NOWAIT, &b), ENOMEM);
	CHECK_EQ(reclaims, 2);
	vmem_free(child, a, 0x4000);
	vmem_free(child, c, 0x4000);
	/* A parent with a child cannot go first: the hook says so. */
	struct hook_log log;
	memset(&log, 0, sizeof log);
	vmem_set_error_hook(parent, hook, &log);
	vmem_destroy(child);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(parent);
	CHECK_EQ(log.calls, 0);
	return failures;
}

static int init_and_print(void)
{
	int failures = 0;
	static vmem_t storage;
	CHECK(sizeof(vmem_t) == VMEM_STORAGE);
	vmem_t *vm = vmem_init(&storage, "static", 0x1000, 0x1000, 16, 0, M_WAITOK);
	CHECK(vm == &storage);
	CHECK(vmem_init(NULL, "none", 0, 0, 16, 0, 0) == NULL);
	vmem_addr_t a;
	CHECK_EQ(vmem_alloc(vm, 64, M_NOWAIT | M_FIRSTFIT, &a), 0);
	lines = 0;
	vmem_print((vmem_addr_t)vm, "", count_lines);
	CHECK_EQ(lines, 1 + 3); /* header, span, alloc, free */
	CHECK(strstr(last_line, "free") != NULL);
	/* A range freed and not flushed says so, in its line and the header. */
	CHECK_EQ(vmspace_arena_free_deferred((vmspace_arena_t *)vm, a, 64), 0);
	lines = 0;
	vmem_print((vmem_addr_t)vm, "", print_unflushed);
	CHECK_EQ(lines, 1 + 3);
	CHECK(saw_unflushed_header && saw_unflushed_line);
	CHECK_EQ(vmspace_arena_flushed((vmspace_arena_t *)vm, NULL), 0);
	CHECK_EQ(vmem_alloc(vm, 64, M_NOWAIT | M_FIRSTFIT, &a), 0);
	lines = 0;
	vmem_print((vmem_addr_t)&a, "", count_lines); /* not an arena */
	CHECK_EQ(lines, 1);
	CHECK(strstr(last_line, "not a live arena") != NULL);
	vmem_print((vmem_addr_t)vm, "", NULL);
	lines = 0;
	vmem_printall("", count_lines);
	vmem_whatis(a, count_lines);
	CHECK_EQ(lines, 2);
	vmem_free(vm, a, 64);
	vmem_destroy(vm);
	/* Storage of a destroyed arena: EBADF (as a positive errno). */
	CHECK_EQ(vmem_alloc(vm, 64, M_NOWAIT, &a), EBADF);
	return failures;
}

int ctest_vmem_compat(void)
{
	return calls_and_flags() + error_hook() + imports_limits_reclaim() + init_and_print();
}
