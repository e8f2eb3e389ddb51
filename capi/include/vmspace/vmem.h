/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vmspace/vmem.h - FreeBSD's vmem(9) API over vmspace arenas.
 *
 * A program written for vmem(9) (or its user-space port) builds against
 * this header and libvmspace with no change but the include and the link
 * line. Names, signatures and flag names are vmem(9)'s; errors are positive
 * errno values (0 or ENOMEM, and EINVAL for bad arguments, as there; the
 * README's table lists the few others, such as EEXIST for an overlap). Calls
 * that return nothing (vmem_free, vmem_xfree, vmem_destroy, vmem_set_*,
 * vmem_size with a bad mask) never crash on a bad argument: they leave the
 * arena unchanged and call the arena's error hook (vmem_set_error_hook, not
 * in vmem(9)) if it has one. Every difference from FreeBSD is in the table
 * "vmem(9) compatibility" of vmspace's README.
 *
 * A vmem_t * is also a vmspace_arena_t * (vmspace.h): the native calls
 * (sizes, counters, walks, check, handles) work on it after a cast.
 */
#ifndef VMSPACE_VMEM_H
#define VMSPACE_VMEM_H

#include <vmspace.h>

/*
 * An arena. Complete, so vmem_init can be given storage (static or
 * embedded); its bytes are the library's. It must not be copied or moved
 * while the arena lives.
 */
#define VMEM_STORAGE 2048
typedef struct vmem {
	unsigned char vm_opaque[VMEM_STORAGE];
} __attribute__((aligned(16))) vmem_t;

typedef uintptr_t vmem_addr_t;
typedef size_t vmem_size_t;

#define VMEM_ADDR_MIN 0
#define VMEM_ADDR_QCACHE_MIN 1
#define VMEM_ADDR_MAX (~(vmem_addr_t)0)

/* vmem_size() type masks. */
#define VMEM_ALLOC 0x01
#define VMEM_FREE 0x02
#define VMEM_MAXFREE 0x10

/*
 * Allocation flags, with FreeBSD's user-space values where it has them.
 * Flags without M_NOWAIT wait for space (M_WAITOK is accepted and changes
 * nothing). M_FIRSTFIT is vmem's "fast fit", which is instant fit;
 * M_INSTANTFIT names the same flag. No strategy: the arena's, set by the
 * strategy in vmem_create's flags (instant fit if none).
 *
 * These are not vmspace.h's VMSPACE_* flags, and the two sets share
 * values: VMSPACE_BESTFIT is M_WAITOK's 0x02, so passed to vmem_alloc it
 * waits for space. Pass M_* to vmem_* calls and VMSPACE_* to vmspace_*
 * calls (on a vmem_t cast to a vmspace_arena_t too, whose max is then
 * exclusive, as every vmspace_* call's).
 */
#ifndef M_NOWAIT
#define M_NOWAIT 0x0800
#endif
#ifndef M_WAITOK
#define M_WAITOK 0x0002
#endif
#define M_FIRSTFIT 0x1000
#define M_BESTFIT 0x2000
#define M_NEXTFIT 0x8000
#define M_INSTANTFIT 0x1000
#define VMEM_FITMASK (0x1000 | 0x2000 | 0x8000)

typedef int(vmem_import_t)(void *, vmem_size_t, int, vmem_addr_t *);
typedef void(vmem_release_t)(void *, vmem_addr_t, vmem_size_t);
typedef void(vmem_reclaim_t)(vmem_t *, int);
/* Not in vmem(9): told of failures of calls that return nothing, with the
 * call's name, its address and size arguments and a positive errno. */
typedef void(vmem_error_hook_t)(void *arg, vmem_t *vm, const char *what,
				vmem_addr_t addr, vmem_size_t size, int error);
/* A printf-like function (printf itself will do). */
typedef int(vmem_printf_t)(const char *, ...);

VMSPACE_BEGIN_DECLS

/* An arena, or NULL. qcache_max is a hint (whole quanta, at most 8). */
vmem_t *vmem_create(const char *name, vmem_addr_t base, vmem_size_t size,
		    vmem_size_t quantum, vmem_size_t qcache_max, int flags);
/* An arena in the caller's storage `vm` (sizeof(vmem_t)), or NULL; NULL
 * also when `vm` holds a live arena (initialized, not destroyed): destroy
 * it first. */
vmem_t *vmem_init(vmem_t *vm, const char *name, vmem_addr_t base,
		  vmem_size_t size, vmem_size_t quantum, vmem_size_t qcache_max,
		  int flags);
/* Destroy an arena. An arena that others import from through
 * vmem_set_import (say with vmem_alloc and vmem_free) does not know of
 * them: destroy those first. */
void vmem_destroy(vmem_t *vm);

/* Import through importfn when out of space, in multiples of
 * import_quantum (a power of two at least the quantum, else the error
 * hook's EINVAL and nothing changes; 0: the quantum). importfn is called
 * with M_NOWAIT | M_FIRSTFIT and the arena locked. */
void vmem_set_import(vmem_t *vm, vmem_import_t *importfn,
		     vmem_release_t *releasefn, void *arg,
		     vmem_size_t import_quantum);
/* Imports fail once the arena's spans would pass `limit` (0: none). */
void vmem_set_limit(vmem_t *vm, vmem_size_t limit);
/* Called (without the arena lock) when an allocation finds no space,
 * before it fails or waits. */
void vmem_set_reclaim(vmem_t *vm, vmem_reclaim_t *reclaimfn);
/* Not in vmem(9): the arena's error hook (NULL: none). */
void vmem_set_error_hook(vmem_t *vm, vmem_error_hook_t *hook, void *arg);

/* Sizes are rounded up to the quantum, as vmem(9) rounds them: a free
 * takes any size that rounds to the allocation's (through the native API,
 * the rounded size). */
int vmem_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp);
void vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);
/* minaddr: the lowest start; maxaddr: the highest address the allocation
 * may cover (inclusive), as vmem(9). Never from the quantum caches. */
int vmem_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align,
		vmem_size_t phase, vmem_size_t nocross, vmem_addr_t minaddr,
		vmem_addr_t maxaddr, int flags, vmem_addr_t *addrp);
void vmem_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);
/* A span touching an added span of an arena without a release function
 * merges with it (as vmem(9)'s vmem_add1 does); otherwise a span of its
 * own (an arena of pages, vmspace_arena_set_vm, never merges, and refuses
 * a span in its VM's reservation: EEXIST). No span ends at 2^64 (EINVAL). */
int vmem_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int flags);
vmem_size_t vmem_roundup_size(vmem_t *vm, vmem_size_t size);
vmem_size_t vmem_size(vmem_t *vm, int typemask);

/* Debugging output. vmspace keeps no list of arenas, so vmem_whatis and
 * vmem_printall only say so; vmem_print prints the arena at `addr`, calling
 * `pr` with that arena locked: `pr` must not call into it. */
void vmem_whatis(vmem_addr_t addr, vmem_printf_t *pr);
void vmem_print(vmem_addr_t addr, const char *modif, vmem_printf_t *pr);
void vmem_printall(const char *modif, vmem_printf_t *pr);
/* Nothing to start (no global state). */
void vmem_startup(void);

VMSPACE_END_DECLS

#endif /* VMSPACE_VMEM_H */
