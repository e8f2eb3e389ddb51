/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The VM layer from C (vmspace_vm_*): reserve, map, write, protect, unmap,
 * what is mapped, every error the header lists, a VM where an arena is expected
 * and the reverse, an arena handing out addresses a VM maps, and threads
 * mapping and unmapping in one VM.
 */
#include <pthread.h>
#include <unistd.h>

#include "ctest.h"

/* The page size the VM reports, checked against the OS's. */
static size_t page_of(vmspace_vm_t *vm, int *failures_out)
{
	int failures = 0;
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.page_size, (size_t)sysconf(_SC_PAGESIZE));
	*failures_out += failures;
	return info.page_size;
}

static int vm_basics(void)
{
	int failures = 0;
	vmspace_vm_t *vm = (vmspace_vm_t *)1;
	CHECK_EQ(vmspace_vm_create(1 << 20, 1 << 16, 0, &vm), 0);
	CHECK(vm != NULL);
	size_t page = page_of(vm, &failures);
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.size, 1 << 20);
	CHECK_EQ(info.grain, 1 << 16);
	CHECK_EQ(info.base % (1 << 16), 0);
	CHECK_EQ(info.mapped, 0);
	CHECK(info.reserved >= info.size);
	uintptr_t b = info.base;

	/* Map three pages, write them, see them mapped. */
	CHECK_EQ(vmspace_vm_mapped(vm, b, page), 0);
	CHECK_EQ(vmspace_vm_map(vm, b + page, 3 * page), 0);
	unsigned char *p = (unsigned char *)(b + page);
	CHECK(ct_all_zero(p, 3 * page));
	memset(p, 0xa5, 3 * page);
	CHECK_EQ(vmspace_vm_mapped(vm, b + page, 3 * page), 1);
	CHECK_EQ(vmspace_vm_mapped(vm, b, 2 * page), 0);
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, 3 * page);
	CHECK(info.metadata > 0);
	CHECK_EQ(vmspace_vm_check(vm), 0);

	/* Overlaps and holes are refused, changing nothing. */
	CHECK_EQ(vmspace_vm_map(vm, b, 2 * page), -EEXIST);
	CHECK_EQ(vmspace_vm_map(vm, b + 3 * page, page), -EEXIST);
	CHECK_EQ(vmspace_vm_unmap(vm, b, 2 * page), -ENOENT);
	CHECK_EQ(vmspace_vm_unmap(vm, b + 3 * page, 2 * page), -ENOENT);
	CHECK_EQ(vmspace_vm_mapped(vm, b, page), 0);
	CHECK_EQ(vmspace_vm_mapped(vm, b + 4 * page, page), 0);
	CHECK_EQ(p[0], 0xa5);
	CHECK_EQ(p[3 * page - 1], 0xa5);

	/* Unmap the middle page: its contents are gone when mapped again. */
	CHECK_EQ(vmspace_vm_unmap(vm, b + 2 * page, page), 0);
	CHECK_EQ(vmspace_vm_mapped(vm, b + page, 3 * page), 0);
	CHECK_EQ(vmspace_vm_mapped(vm, b + page, page), 1);
	CHECK_EQ(vmspace_vm_map(vm, b + 2 * page, page), 0);
	CHECK(ct_all_zero(p + page, page));
	CHECK_EQ(p[0], 0xa5);
	CHECK_EQ(p[2 * page], 0xa5);

	/* The last page of the VM, and past it. */
	uintptr_t last = b + info.size - page;
	CHECK_EQ(vmspace_vm_map(vm, last, page), 0);
	*(volatile unsigned char *)last = 1;
	CHECK_EQ(vmspace_vm_map(vm, last + page, page), -ERANGE);
	CHECK_EQ(vmspace_vm_map(vm, last, 2 * page), -ERANGE);
	CHECK_EQ(vmspace_vm_map(vm, b - page, page), -ERANGE);
	CHECK_EQ(vmspace_vm_mapped(vm, last + page, page), -ERANGE);
	CHECK_EQ(vmspace_vm_unmap(vm, last, page), 0);

	/* Everything unmapped: the bookkeeping can be given back. */
	CHECK_EQ(vmspace_vm_unmap(vm, b + page, 3 * page), 0);
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, 0);
	int trimmed = vmspace_vm_trim(vm);
	CHECK(trimmed >= 1);
	CHECK_EQ(vmspace_vm_trim(vm), 0);
	struct vmspace_vm_info after;
	CHECK_EQ(vmspace_vm_info(vm, &after), 0);
	CHECK_EQ(after.metadata, info.metadata - (size_t)trimmed * page);
	CHECK_EQ(vmspace_vm_check(vm), 0);

	/* Destroy with pages mapped: they go with it. */
	CHECK_EQ(vmspace_vm_map(vm, b, 16 * page), 0);
	CHECK_EQ(vmspace_vm_destroy(vm), 0);
	return failures;
}

static int vm_errors(void)
{
	int failures = 0;
	vmspace_vm_t *vm = (vmspace_vm_t *)1;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	/* Creation's arguments. */
	CHECK_EQ(vmspace_vm_create(page, 0, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_vm_create(0, 0, 0, &vm), -EINVAL);
	CHECK(vm == NULL);
	vm = (vmspace_vm_t *)1;
	CHECK_EQ(vmspace_vm_create(page, 3 * page, 0, &vm), -EINVAL);
	CHECK(vm == NULL);
	CHECK_EQ(vmspace_vm_create(page, page / 2, 0, &vm), -EINVAL);
	CHECK_EQ(vmspace_vm_create(page, 0, 1, &vm), -EINVAL);
	CHECK_EQ(vmspace_vm_create(page, 0, -1, &vm), -EINVAL);
	CHECK_EQ(vmspace_vm_create(SIZE_MAX, 0, 0, &vm), -EOVERFLOW);
	CHECK_EQ(vmspace_vm_create(SIZE_MAX - 2 * page + 1, 1 << 20, 0, &vm), -EOVERFLOW);
	/* More address space than a process has. */
	CHECK_EQ(vmspace_vm_create((size_t)1 << 62, 0, 0, &vm), -ENOMEM);
	CHECK(vm == NULL);
	vmspace_vm_t **misaligned = (vmspace_vm_t **)((char *)&vm + 1);
	CHECK_EQ(vmspace_vm_create(page, 0, 0, misaligned), -EINVAL);

	/* A size that is not whole pages is rounded up. */
	CHECK_EQ(vmspace_vm_create(1, 0, 0, &vm), 0);
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.size, page);
	CHECK_EQ(info.grain, page);
	uintptr_t b = info.base;

	/* Ranges. */
	CHECK_EQ(vmspace_vm_map(vm, b, 0), -EINVAL);
	CHECK_EQ(vmspace_vm_map(vm, b + 1, page), -EINVAL);
	CHECK_EQ(vmspace_vm_map(vm, b, page - 1), -EINVAL);
	CHECK_EQ(vmspace_vm_unmap(vm, b, 0), -EINVAL);
	CHECK_EQ(vmspace_vm_mapped(vm, b, 0), -EINVAL);
	CHECK_EQ(vmspace_vm_map(vm, UINTPTR_MAX - page + 1, page), -EOVERFLOW);
	CHECK_EQ(vmspace_vm_map(vm, b, SIZE_MAX), -EOVERFLOW);
	CHECK_EQ(vmspace_vm_unmap(vm, b, SIZE_MAX - page + 1), -EOVERFLOW);
	CHECK_EQ(vmspace_vm_mapped(vm, UINTPTR_MAX, 1), -EOVERFLOW);
	CHECK_EQ(vmspace_vm_map(vm, 0, page), -ERANGE);
	CHECK_EQ(vmspace_vm_info(vm, NULL), -EINVAL);
	struct vmspace_vm_info *bad = (struct vmspace_vm_info *)((char *)&info + 1);
	CHECK_EQ(vmspace_vm_info(vm, bad), -EINVAL);
	CHECK_EQ(vmspace_vm_check(vm), 0);
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, 0);

	/* Not a VM: NULL, an arena, a misaligned pointer, plain memory. */
	CHECK_EQ(vmspace_vm_map(NULL, b, page), -EINVAL);
	CHECK_EQ(vmspace_vm_destroy(NULL), -EINVAL);
	CHECK_EQ(vmspace_vm_trim(NULL), -EINVAL);
	CHECK_EQ(vmspace_vm_check(NULL), -EINVAL);
	CHECK_EQ(vmspace_vm_mapped(NULL, b, page), -EINVAL);
	vmspace_arena_t *a = vmspace_arena_create("a", 4096, 4096, 4096, 0, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_vm_map((vmspace_vm_t *)a, b, page), -EBADF);
	CHECK_EQ(vmspace_vm_destroy((vmspace_vm_t *)a), -EBADF);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), -EBADF);
	CHECK_EQ(vmspace_arena_destroy((vmspace_arena_t *)vm), -EBADF);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	uint64_t plain[8] = {0};
	CHECK_EQ(vmspace_vm_check((vmspace_vm_t *)plain), -EBADF);
	CHECK_EQ(vmspace_vm_check((vmspace_vm_t *)((char *)plain + 1)), -EBADF);
	/* The VM still works after all that. */
	CHECK_EQ(vmspace_vm_map(vm, b, page), 0);
	CHECK_EQ(vmspace_vm_mapped(vm, b, page), 1);
	CHECK_EQ(vmspace_vm_destroy(vm), 0);

	/* Every error has its own text. */
	CHECK(strstr(vmspace_strerror(-EEXIST), "mapped already") != NULL);
	CHECK(strstr(vmspace_strerror(-ENOENT), "not mapped") != NULL);
	return failures;
}

/* Whether the byte at `p` can be read: copied through a pipe, so that a
 * forbidden access is EFAULT, not a fault. */
static int probe_read(int fd[2], const unsigned char *p)
{
	unsigned char c;
	if (write(fd[1], p, 1) != 1)
		return errno == EFAULT ? 0 : -1;
	return read(fd[0], &c, 1) == 1 && c == *p ? 1 : -1;
}

/* Whether `v` can be written at `p` (through the pipe, as above). */
static int probe_write(int fd[2], unsigned char *p, unsigned char v)
{
	unsigned char c;
	if (write(fd[1], &v, 1) != 1)
		return -1;
	if (read(fd[0], p, 1) == 1)
		return 1;
	if (errno != EFAULT || read(fd[0], &c, 1) != 1)
		return -1;
	return 0;
}

/* vmspace_vm_protect: each protection as the OS enforces it (probed through
 * a pipe), contents kept, unmap and map again whatever the protection, and
 * every error the header lists changing nothing. */
static int vm_protect(void)
{
	int failures = 0;
	int fd[2];
	CHECK_EQ(pipe(fd), 0);
	vmspace_vm_t *vm = NULL;
	CHECK_EQ(vmspace_vm_create(1 << 20, 0, 0, &vm), 0);
	size_t page = page_of(vm, &failures);
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	uintptr_t b = info.base;
	unsigned char *p = (unsigned char *)b;
	CHECK_EQ(vmspace_vm_map(vm, b, 4 * page), 0);
	memset(p, 0x5a, 4 * page);

	/* Pages 1 and 2 read-only, then page 1 no access; 0 and 3 untouched. */
	CHECK_EQ(vmspace_vm_protect(vm, b + page, 2 * page, VMSPACE_PROT_READ), 0);
	CHECK_EQ(probe_read(fd, p + page), 1);
	CHECK_EQ(probe_write(fd, p + page, 0x5a), 0);
	CHECK_EQ(probe_write(fd, p + 3 * page - 1, 0x5a), 0);
	CHECK_EQ(probe_write(fd, p + page - 1, 0x5a), 1);
	CHECK_EQ(probe_write(fd, p + 3 * page, 0x5a), 1);
	CHECK_EQ(p[page], 0x5a);
	CHECK_EQ(p[3 * page - 1], 0x5a);
	CHECK_EQ(vmspace_vm_protect(vm, b + page, page, VMSPACE_PROT_NONE), 0);
	CHECK_EQ(probe_read(fd, p + page), 0);
	CHECK_EQ(probe_read(fd, p + 2 * page - 1), 0);
	CHECK_EQ(probe_read(fd, p + 2 * page), 1);
	CHECK_EQ(vmspace_vm_mapped(vm, b, 4 * page), 1);
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, 4 * page);
	CHECK_EQ(vmspace_vm_check(vm), 0);

	/* Errors, none of which changes a protection. */
	int bad_prots[] = { VMSPACE_PROT_WRITE, 4, VMSPACE_PROT_READ | 4, -1, 0x100 };
	for (size_t i = 0; i < sizeof bad_prots / sizeof bad_prots[0]; i++)
		CHECK_EQ(vmspace_vm_protect(vm, b, page, bad_prots[i]), -EINVAL);
	/* The protection is checked before the range. */
	CHECK_EQ(vmspace_vm_protect(vm, b - page, page, VMSPACE_PROT_WRITE), -EINVAL);
	CHECK_EQ(vmspace_vm_protect(vm, b + 4 * page, page, VMSPACE_PROT_READ), -ENOENT);
	CHECK_EQ(vmspace_vm_protect(vm, b + 3 * page, 2 * page, VMSPACE_PROT_NONE), -ENOENT);
	CHECK_EQ(vmspace_vm_protect(vm, b, 0, VMSPACE_PROT_READ), -EINVAL);
	CHECK_EQ(vmspace_vm_protect(vm, b + 1, page, VMSPACE_PROT_READ), -EINVAL);
	CHECK_EQ(vmspace_vm_protect(vm, b, page + 1, VMSPACE_PROT_READ), -EINVAL);
	CHECK_EQ(vmspace_vm_protect(vm, b - page, page, VMSPACE_PROT_READ), -ERANGE);
	CHECK_EQ(vmspace_vm_protect(vm, b + info.size, page, VMSPACE_PROT_READ), -ERANGE);
	CHECK_EQ(vmspace_vm_protect(vm, b, SIZE_MAX - page + 1, VMSPACE_PROT_READ), -EOVERFLOW);
	CHECK_EQ(vmspace_vm_protect(NULL, b, page, VMSPACE_PROT_READ), -EINVAL);
	vmspace_arena_t *a = vmspace_arena_create("a", 4096, 4096, 4096, 0, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_vm_protect((vmspace_vm_t *)a, b, page, VMSPACE_PROT_READ), -EBADF);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(probe_write(fd, p, 0x5a), 1);
	CHECK_EQ(probe_read(fd, p + page), 0);
	CHECK_EQ(probe_write(fd, p + 2 * page, 0x5a), 0);
	CHECK_EQ(probe_write(fd, p + 3 * page, 0x5a), 1);

	/* Read-write again: what the pages held is still there. */
	CHECK_EQ(vmspace_vm_protect(vm, b + page, 2 * page, VMSPACE_PROT_READ | VMSPACE_PROT_WRITE), 0);
	CHECK_EQ(probe_write(fd, p + page, 0x5a), 1);
	CHECK_EQ(probe_write(fd, p + 2 * page, 0x5a), 1);
	CHECK_EQ(p[page], 0x5a);
	CHECK_EQ(p[2 * page - 1], 0x5a);

	/* Unmapped whatever its protection; mapped again read-write and zero. */
	CHECK_EQ(vmspace_vm_protect(vm, b + page, page, VMSPACE_PROT_NONE), 0);
	CHECK_EQ(vmspace_vm_protect(vm, b + 2 * page, page, VMSPACE_PROT_READ), 0);
	CHECK_EQ(vmspace_vm_unmap(vm, b + page, 2 * page), 0);
	CHECK_EQ(vmspace_vm_protect(vm, b + page, page, VMSPACE_PROT_READ), -ENOENT);
	CHECK_EQ(vmspace_vm_map(vm, b + page, 2 * page), 0);
	CHECK(ct_all_zero(p + page, 2 * page));
	CHECK_EQ(probe_write(fd, p + page, 0), 1);
	CHECK_EQ(probe_write(fd, p + 3 * page - 1, 0), 1);
	CHECK_EQ(vmspace_vm_check(vm), 0);

	/* Destroyed with pages of every protection mapped. */
	CHECK_EQ(vmspace_vm_protect(vm, b, page, VMSPACE_PROT_NONE), 0);
	CHECK_EQ(vmspace_vm_protect(vm, b + 3 * page, page, VMSPACE_PROT_READ), 0);
	CHECK_EQ(vmspace_vm_destroy(vm), 0);
	close(fd[0]);
	close(fd[1]);
	return failures;
}

/* An arena over a VM's range hands out addresses; the VM maps them. */
static int vm_under_an_arena(void)
{
	int failures = 0;
	vmspace_vm_t *vm;
	CHECK_EQ(vmspace_vm_create(64 << 20, 1 << 21, 0, &vm), 0);
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	size_t page = info.page_size;
	vmspace_arena_t *a = vmspace_arena_create("pages", info.base, info.size, page, 0, 0);
	CHECK(a != NULL);
	uintptr_t got[64];
	uint64_t seed = 7;
	size_t mapped = 0;
	for (int i = 0; i < 64; i++) {
		size_t n = (1 + ct_below(&seed, 8)) * page;
		CHECK_EQ(vmspace_arena_alloc(a, n, VMSPACE_BESTFIT, &got[i]), 0);
		CHECK_EQ(vmspace_vm_map(vm, got[i], n), 0);
		memset((void *)got[i], i + 1, n);
		mapped += n;
		/* Remember the size in the allocation's first word. */
		*(size_t *)got[i] = n;
	}
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, mapped);
	for (int i = 0; i < 64; i += 2) {
		size_t n = *(size_t *)got[i];
		CHECK_EQ(((unsigned char *)got[i])[n - 1], i + 1);
		CHECK_EQ(vmspace_vm_unmap(vm, got[i], n), 0);
		CHECK_EQ(vmspace_arena_free(a, got[i], n), 0);
		mapped -= n;
	}
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, mapped);
	CHECK_EQ(vmspace_vm_check(vm), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	for (int i = 1; i < 64; i += 2) {
		size_t n = *(size_t *)got[i];
		CHECK_EQ(vmspace_vm_mapped(vm, got[i], n), 1);
		CHECK_EQ(vmspace_vm_unmap(vm, got[i], n), 0);
		CHECK_EQ(vmspace_arena_free(a, got[i], n), 0);
	}
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(vmspace_vm_destroy(vm), 0);
	return failures;
}

struct vm_worker {
	vmspace_vm_t *vm;
	uintptr_t base; /* this thread's pages */
	size_t page;
	int pages;
	int failures;
};

/* Map, fill, check and unmap this thread's pages, over and over. */
static void *vm_worker_run(void *arg)
{
	struct vm_worker *w = arg;
	int failures = 0;
	uint64_t seed = w->base;
	for (int round = 0; round < 200; round++) {
		int first = (int)ct_below(&seed, (uint64_t)w->pages);
		int n = 1 + (int)ct_below(&seed, (uint64_t)(w->pages - first));
		uintptr_t at = w->base + (size_t)first * w->page;
		size_t len = (size_t)n * w->page;
		CHECK_EQ(vmspace_vm_map(w->vm, at, len), 0);
		unsigned char *p = (unsigned char *)at;
		CHECK(ct_all_zero(p, len));
		memset(p, round & 0xff, len);
		CHECK_EQ(vmspace_vm_mapped(w->vm, at, len), 1);
		CHECK_EQ(p[len - 1], round & 0xff);
		CHECK_EQ(vmspace_vm_unmap(w->vm, at, len), 0);
	}
	w->failures = failures;
	return NULL;
}

static int vm_threads(void)
{
	int failures = 0;
	enum { THREADS = 4, PAGES = 32 };
	vmspace_vm_t *vm;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	CHECK_EQ(vmspace_vm_create(THREADS * PAGES * page, 0, 0, &vm), 0);
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	struct vm_worker w[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct vm_worker){ vm, info.base + (size_t)i * PAGES * page, page, PAGES, 0 };
		CHECK_EQ(pthread_create(&t[i], NULL, vm_worker_run, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		CHECK_EQ(pthread_join(t[i], NULL), 0);
		failures += w[i].failures;
	}
	CHECK_EQ(vmspace_vm_info(vm, &info), 0);
	CHECK_EQ(info.mapped, 0);
	CHECK_EQ(vmspace_vm_check(vm), 0);
	CHECK_EQ(vmspace_vm_destroy(vm), 0);
	return failures;
}

/* What the arena's VM has mapped now. */
static size_t vm_mapped_of(vmspace_arena_t *a, int *failures_out)
{
	int failures = 0;
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_arena_vm_info(a, &info), 0);
	*failures_out += failures;
	return info.mapped;
}

/* An arena importing from a VM of its own: every allocation is mapped
 * memory, what goes back is unmapped. */
static int vm_arena_of_pages(void)
{
	int failures = 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	vmspace_arena_t *a = vmspace_arena_create("pages", 0, 0, page, 0, 0);
	CHECK(a != NULL);
	struct vmspace_vm_info info;
	CHECK_EQ(vmspace_arena_vm_info(a, &info), -EINVAL);
	CHECK_EQ(vmspace_arena_set_vm(a, 64 << 20, 1), -EINVAL);
	CHECK_EQ(vmspace_arena_set_vm(NULL, 64 << 20, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_set_vm(a, SIZE_MAX, 0), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_vm_info(a, &info), -EINVAL);
	CHECK_EQ(vmspace_arena_set_vm(a, 64 << 20, 0), 0);
	CHECK_EQ(vmspace_arena_vm_info(a, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_vm_info(a, &info), 0);
	CHECK_EQ(info.size, 64 << 20);
	CHECK_EQ(info.mapped, 0);
	CHECK_EQ(info.page_size, page);

	/* Allocations are mapped, zero the first time, writable. */
	vmspace_addr_t got[32];
	size_t sizes[32];
	uint64_t seed = 11;
	for (int i = 0; i < 32; i++) {
		sizes[i] = (1 + ct_below(&seed, 6)) * page - ct_below(&seed, page);
		CHECK_EQ(vmspace_arena_alloc(a, sizes[i], 0, &got[i]), 0);
		CHECK(got[i] >= info.base && got[i] + sizes[i] <= info.base + info.size);
		CHECK(ct_all_zero((void *)got[i], sizes[i]));
		memset((void *)got[i], i + 1, sizes[i]);
	}
	struct vmspace_sizes sz;
	CHECK_EQ(vmspace_arena_sizes(a, &sz), 0);
	CHECK(sz.imported > 0);
	CHECK_EQ(vm_mapped_of(a, &failures), sz.imported);
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* Busy while it holds imported spans. */
	CHECK_EQ(vmspace_arena_set_vm(a, 1 << 20, 0), -EBUSY);
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), -EBUSY);
	CHECK_EQ(vm_mapped_of(a, &failures), sz.imported);
	for (int i = 0; i < 32; i++) {
		CHECK_EQ(((unsigned char *)got[i])[sizes[i] - 1], i + 1);
		CHECK_EQ(vmspace_arena_free(a, got[i], sizes[i]), 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_sizes(a, &sz), 0);
		CHECK_EQ(vm_mapped_of(a, &failures), sz.imported);
	}
	/* Everything went back: nothing mapped, nothing imported. */
	CHECK_EQ(sz.imported, 0);
	CHECK_EQ(sz.total, 0);
	CHECK_EQ(vm_mapped_of(a, &failures), 0);

	/* The limit holds imports to it. */
	CHECK_EQ(vmspace_arena_set_limit(a, 4 * page), 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 5 * page, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_alloc(a, 4 * page, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 1, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * page), 0);
	CHECK_EQ(vmspace_arena_set_limit(a, 0), 0);

	/* A VM smaller than an allocation: no space. */
	CHECK_EQ(vmspace_arena_set_vm(a, 2 * page, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 3 * page, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * page, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * page), 0);
	/* Replaced by import functions, then stopped: no VM any more. */
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), 0);
	CHECK_EQ(vmspace_arena_vm_info(a, &info), -EINVAL);
	CHECK_EQ(vmspace_arena_set_vm(a, 1 << 20, 0), 0);
	CHECK_EQ(vmspace_arena_set_vm(a, 0, 0), 0);
	CHECK_EQ(vmspace_arena_vm_info(a, &info), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, page, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* A VM-backed arena with quantum caches, a large quantum, a child, deferred
 * frees, and destroyed with allocations live. */
static int vm_arena_trees(void)
{
	int failures = 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	/* Quantum caches: small sizes come from slabs of mapped pages. */
	vmspace_arena_t *a = vmspace_arena_create("cached", 0, 0, page, 4 * page, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_set_vm(a, 16 << 20, 0), 0);
	vmspace_addr_t got[64];
	for (int i = 0; i < 64; i++) {
		size_t n = (1 + i % 4) * page;
		CHECK_EQ(vmspace_arena_alloc(a, n, 0, &got[i]), 0);
		memset((void *)got[i], 0x5a, n);
	}
	for (int i = 0; i < 64; i++)
		CHECK_EQ(vmspace_arena_free(a, got[i], (1 + i % 4) * page), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* A child importing from it: the parent maps. */
	struct vmspace_params p = { .name = "child", .quantum = page, .parent = a };
	vmspace_arena_t *c;
	CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
	vmspace_addr_t y;
	CHECK_EQ(vmspace_arena_alloc(c, 3 * page, 0, &y), 0);
	memset((void *)y, 1, 3 * page);
	CHECK_EQ(vmspace_arena_free_deferred(c, y, 3 * page), 0);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(c, &freed), 0);
	CHECK_EQ(freed, 3 * page);
	CHECK_EQ(vmspace_arena_destroy(a), -EBUSY);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* A quantum above the page: imports aligned to it, all mapped. */
	size_t q = 64 * page;
	vmspace_arena_t *big = vmspace_arena_create("big", 0, 0, q, 0, 0);
	CHECK(big != NULL);
	CHECK_EQ(vmspace_arena_set_vm(big, 64 * q, 0), 0);
	vmspace_addr_t z[4];
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(vmspace_arena_alloc(big, (size_t)(i + 1) * q - page, 0, &z[i]), 0);
		CHECK_EQ(z[i] % q, 0);
		memset((void *)z[i], 2, (size_t)(i + 1) * q - page);
	}
	CHECK_EQ(vmspace_arena_check(big), 0);
	/* Destroyed with allocations live: the VM goes with every page. */
	CHECK_EQ(vmspace_arena_destroy(big), 0);
	return failures;
}

int ctest_vm(void)
{
	return vm_basics() + vm_errors() + vm_protect() + vm_under_an_arena() + vm_threads() +
	       vm_arena_of_pages() + vm_arena_trees();
}
