/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A program written for FreeBSD's vmem(9), built against vmspace by
 * changing only the include below and the link line:
 *
 *   cc vmem_example.c $(pkg-config --cflags --libs vmspace) -o vmem_example
 *
 * It manages two resources the way a driver would: process-like IDs (next
 * fit, so freed IDs are reused late) and buffer offsets in a device window
 * imported page by page from a parent arena, with a limit and a reclaim
 * callback. It uses every vmem(9) call and exits 0 when every result is
 * what vmem(9) promises.
 */
#include <stdio.h>

#ifdef __FreeBSD__
#include <sys/types.h>
#include <sys/vmem.h>
#else
#include <vmspace/vmem.h>
#endif

#ifndef M_WAITOK
#define M_WAITOK 0
#endif

#define PAGE 4096

static int errors;

#define EXPECT(c)                                                            \
	do {                                                                 \
		if (!(c)) {                                                  \
			printf("vmem_example: line %d: %s\n", __LINE__, #c); \
			errors++;                                            \
		}                                                            \
	} while (0)

/* The device window's pages come from the parent, one import at a time. */
static int window_import(void *arg, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	int wait = flags & ~(M_FIRSTFIT | M_BESTFIT | M_NEXTFIT);
	return vmem_xalloc(arg, size, PAGE, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			   wait | M_BESTFIT, addrp);
}

static void window_release(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	vmem_xfree(arg, addr, size);
}

/* Space ran out: drop the cached scratch buffer and let the caller retry. */
static vmem_addr_t scratch;
static vmem_size_t scratch_size;
static int reclaimed;

static void drop_scratch(vmem_t *vm, int flags)
{
	(void)flags;
	if (scratch_size != 0) {
		vmem_free(vm, scratch, scratch_size);
		scratch_size = 0;
		reclaimed++;
	}
}

static vmem_t ids_storage;

int main(void)
{
	vmem_startup();

	/* IDs 1..1000, reused as late as possible. */
	vmem_t *ids = vmem_init(&ids_storage, "pids", 1, 1000, 1, 0, M_WAITOK | M_NEXTFIT);
	EXPECT(ids != NULL);
	vmem_addr_t id[3];
	for (int i = 0; i < 3; i++)
		EXPECT(vmem_alloc(ids, 1, M_NOWAIT | M_NEXTFIT, &id[i]) == 0);
	EXPECT(id[0] == 1 && id[1] == 2 && id[2] == 3);
	vmem_free(ids, id[1], 1);
	vmem_addr_t next;
	EXPECT(vmem_alloc(ids, 1, M_NOWAIT | M_NEXTFIT, &next) == 0);
	EXPECT(next == 4); /* not 2 */
	EXPECT(vmem_add(ids, 5000, 100, M_WAITOK) == 0); /* more IDs */
	EXPECT(vmem_size(ids, VMEM_ALLOC | VMEM_FREE) == 1100);
	EXPECT(vmem_size(ids, VMEM_ALLOC) == 3);

	/* A device window of 256 pages, and buffers carved from the part of
	 * it imported so far (at most 64 pages). */
	vmem_t *pages = vmem_create("window", 0x80000000, 256 * PAGE, PAGE, 0, M_WAITOK);
	vmem_t *bufs = vmem_create("buffers", 0, 0, 64, 4 * 64, M_WAITOK | M_FIRSTFIT);
	EXPECT(pages != NULL && bufs != NULL);
	vmem_set_import(bufs, window_import, window_release, pages, 4 * PAGE);
	vmem_set_limit(bufs, 64 * PAGE);
	vmem_set_reclaim(bufs, drop_scratch);
	EXPECT(vmem_roundup_size(bufs, 100) == 128);

	vmem_addr_t small, ring, dma;
	EXPECT(vmem_alloc(bufs, 192, M_NOWAIT | M_FIRSTFIT, &small) == 0); /* quantum cache */
	EXPECT(vmem_alloc(bufs, 3 * PAGE, M_NOWAIT | M_BESTFIT, &ring) == 0);
	/* A DMA buffer: 2 KiB aligned, not crossing 4 KiB. */
	EXPECT(vmem_xalloc(bufs, 2048, 2048, 0, PAGE, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			   M_NOWAIT | M_BESTFIT, &dma) == 0);
	EXPECT(dma % 2048 == 0 && dma / PAGE == (dma + 2047) / PAGE);
	EXPECT(small >= 0x80000000 && ring >= 0x80000000);
	EXPECT(vmem_size(pages, VMEM_ALLOC) >= 4 * PAGE);

	/* Fill to the limit with a scratch buffer; the next allocation finds
	 * no space, reclaims the scratch buffer and succeeds. */
	vmem_size_t room = 64 * PAGE - vmem_size(bufs, VMEM_ALLOC | VMEM_FREE);
	scratch_size = room & ~(vmem_size_t)(4 * PAGE - 1);
	if (scratch_size != 0)
		EXPECT(vmem_alloc(bufs, scratch_size, M_NOWAIT | M_BESTFIT, &scratch) == 0);
	vmem_addr_t big;
	EXPECT(vmem_alloc(bufs, 4 * PAGE, M_NOWAIT | M_BESTFIT, &big) == 0);
	EXPECT(reclaimed == 1);
	EXPECT(vmem_size(bufs, VMEM_MAXFREE) <= vmem_size(bufs, VMEM_FREE));

	vmem_print((vmem_addr_t)bufs, "", printf);
	vmem_whatis(ring, printf);
	vmem_printall("", printf);

	vmem_free(bufs, big, 4 * PAGE);
	vmem_xfree(bufs, dma, 2048);
	vmem_free(bufs, ring, 3 * PAGE);
	vmem_free(bufs, small, 192);
	vmem_destroy(bufs);
	EXPECT(vmem_size(pages, VMEM_ALLOC) == 0);
	vmem_destroy(pages);
	vmem_free(ids, id[0], 1);
	vmem_free(ids, id[2], 1);
	vmem_free(ids, next, 1);
	EXPECT(vmem_size(ids, VMEM_ALLOC) == 0);
	vmem_destroy(ids);

	printf("vmem_example: %s\n", errors ? "FAILED" : "ok");
	return errors != 0;
}
