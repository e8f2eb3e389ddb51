/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vmspace.h - the native C API of vmspace: vmem-style arenas of integer
 * ranges (addresses, IDs, device offsets), thread-safe, with per-CPU
 * quantum caches, checked frees and introspection.
 *
 * The same functions are in libvmspace (user space: link with
 * `pkg-config --libs vmspace`) and, in a kernel built with CONFIG_VMSPACE=y,
 * exported to GPL modules in the symbol namespace "VMSPACE" (a module says
 * MODULE_IMPORT_NS("VMSPACE"); without it modpost refuses to build it and
 * the kernel to load it, unless the kernel is built with
 * CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS). vmspace/vmem.h has
 * FreeBSD's vmem(9) API over the same arenas; a vmem_t * and a
 * vmspace_arena_t * of one arena are the same
 * pointer.
 *
 * Errors: every function that can fail returns 0 (or a count) on success and
 * a negative errno value on failure, and a failing call changes nothing:
 *   -EINVAL     a NULL arena, a NULL or misaligned out-pointer, an unknown
 *               flag (a walk's kinds_mask of 0 included), a zero size to
 *               allocate or add, a quantum, alignment or nocross that is
 *               not a power of two, a phase, nocross, exact address or span
 *               not a multiple of the quantum, a phase at or above the
 *               alignment, a max_tags too small for the arena's own lists
 *               or above 2^28 - 1,
 *               a NULL or misaligned params or a non-zero params.reserved
 *               (create_ex), a NULL walk function, flags other than 0
 *               for set_vm, vmspace_arena_vm_info on an arena that imports
 *               from no VM (an alignment below the
 *               quantum means the quantum; min and max may be any value:
 *               a window [min, max) that cannot hold the size, min >= max
 *               included, is -ERANGE). A free checks the allocation first:
 *               a free of size 0 is -ENOENT or -EMSGSIZE as below
 *   -EBADF      not a live arena (destroyed, or not an arena at all, such
 *               as a misaligned arena pointer)
 *   -ENOMEM     no space: no free segment fits and no import could supply one
 *   -ETIMEDOUT  vmspace_arena_alloc_timed: no space came back in time
 *   -ERANGE     constraints that can never be met together
 *   -EOVERFLOW  address or size arithmetic overflowed (a span's end must
 *               be representable: none ends at 2^64)
 *   -ENOENT     a free of something not allocated (never, already freed, a
 *               stale or foreign handle, an address no allocation starts at)
 *   -EMSGSIZE   a free with a size other than the one allocated
 *   -EEXIST     a span overlapping one the arena has, or its VM's
 *               reservation (set_vm)
 *   -EBUSY      destroy of an arena others import from; set_import or
 *               set_vm on an arena holding imported spans or importing
 *               from a parent
 *   -ENOSPC     boundary-tag storage exhausted (see max_tags)
 *   -EPROTO     the import function returned an unusable range (given
 *               back through the release function, unless it overlaps a
 *               span the arena holds: then it is only forgotten)
 *   -EIO        the page operations behind the arena's metadata failed
 *   -EAGAIN     a fault injected by vmspace_arena_set_mtbf
 *   -EUCLEAN    vmspace_arena_check found a broken invariant
 *   -EOPNOTSUPP VMSPACE_WAIT on a handle allocation
 *   -EINTR      a VMSPACE_KILLABLE wait ended by a fatal signal (kernel)
 * vmspace_strerror() gives each one's meaning here.
 *
 * What is checked and what is undefined: NULL, pointers to storage whose
 * first word is not a live arena's (a magic word derived from the arena's
 * address, cleared by destroy), sizes and addresses that overflow, unknown
 * flags, double frees and frees of the wrong size are all errors. Undefined:
 * passing a pointer to memory that is not readable; using an arena that
 * vmspace_arena_create or vmspace_arena_create_ex made after
 * vmspace_arena_destroy (destroy frees its memory, so a later call reads
 * freed memory; it is -EBADF only while that memory happens to be
 * untouched), whereas an arena in the caller's storage (vmem_init) reads
 * -EBADF after destroy until the storage is reused; destroying an arena
 * while another thread uses it, or while an
 * arena is being created on it as a parent; callbacks that are not what
 * their types say; a name that is not NUL-terminated. Functions may be
 * called from any thread, concurrently, on the same arena; in the kernel,
 * from process context only, every one of them (they may sleep: the arena
 * lock is a mutex): never under a spinlock, with interrupts or preemption
 * disabled, in rcu_read_lock(), softirq or interrupt context. A call
 * without VMSPACE_WAIT does not wait for space but still takes the mutex.
 * kernel/README.md ("Calling it from a driver") has the rest: import
 * functions, waits, errors, lifetime and cost.
 */
#ifndef VMSPACE_H
#define VMSPACE_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#else
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#endif

#ifdef __cplusplus
#define VMSPACE_BEGIN_DECLS extern "C" {
#define VMSPACE_END_DECLS }
#else
#define VMSPACE_BEGIN_DECLS
#define VMSPACE_END_DECLS
#endif

/* An address (or any integer an arena hands out) and a size. */
typedef uintptr_t vmspace_addr_t;
typedef size_t vmspace_size_t;

/* An arena: opaque. */
typedef struct vmspace_arena vmspace_arena_t;
/* A VM: one reservation of address space with pages mapped in it on
 * request (vmspace_vm_create, below). Opaque. */
typedef struct vmspace_vm vmspace_vm_t;

/* The API version: major * 10000 + minor * 100 + patch. */
#define VMSPACE_VERSION 100

/*
 * Allocation flags. At most one policy; without one, the arena's default
 * (set when it is created; instant fit unless told otherwise).
 *
 * VMSPACE_WAIT sleeps until space comes back: a free, a flush, a reclaim,
 * an add, a raised limit, a child's destroy. Only constraints that no
 * address meets fail at once (-ERANGE); a request no span can hold now (an
 * arena without spans, a size above every span or above the limit, a
 * window above every span) waits as well, since an add, an import or a
 * raised limit may yet make room: bound such a wait with
 * vmspace_arena_alloc_timed. In an arena with a parent it
 * also wakes for space returned to any arena of its tree (its parent
 * included), which an import may then take. Nothing says when an import
 * function's source has room again, so in an arena importing through
 * import functions (vmspace_arena_set_import, vmem_set_import), and in the
 * children of one, a waiting allocation also tries again (calling the
 * import function) every 10 ms, also when they were set after the wait
 * began. Objects in other CPUs' quantum-cache magazines are
 * not space until they come back (vmspace_arena_reclaim does not reach
 * them), so a waiting allocation larger than what lies outside them may
 * sleep for good. In the kernel the sleep is uninterruptible: a signal
 * does not end it (a task that may never get the space should not ask
 * for it with VMSPACE_WAIT; vmspace_arena_alloc_timed bounds the wait),
 * unless VMSPACE_KILLABLE is given too.
 *
 * VMSPACE_KILLABLE, with VMSPACE_WAIT or in vmspace_arena_alloc_timed:
 * the wait also ends, with -EINTR and nothing allocated, once a fatal
 * signal is pending for the task; space that is there is still taken
 * first, and a timed wait whose time is up fails with -ETIMEDOUT. It
 * sleeps in TASK_KILLABLE: other signals neither end nor wake it. Without
 * a wait it changes nothing; in user space nothing ends a wait early, so
 * it changes nothing there either.
 */
#define VMSPACE_INSTANTFIT 0x01 /* O(1) power-of-two free lists (vmem's default) */
#define VMSPACE_BESTFIT 0x02    /* the smallest free segment that fits */
#define VMSPACE_FIRSTFIT 0x04   /* the lowest-addressed free segment that fits (with TOP: the highest) */
#define VMSPACE_NEXTFIT 0x08    /* first fit from where the last next fit ended: IDs reused late */
#define VMSPACE_TOP 0x10        /* place at the top of the segment chosen */
#define VMSPACE_WAIT 0x20       /* wait until space is freed, never -ENOMEM (-ERANGE at once for constraints no address meets) */
#define VMSPACE_EXACT 0x40      /* xalloc: start exactly at `exact` */
#define VMSPACE_KILLABLE 0x80   /* a wait ends with -EINTR on a fatal signal (kernel) */

/* Kinds of segments (walk masks and vmspace_segment.kind). */
#define VMSPACE_SEG_SPAN 0x1
#define VMSPACE_SEG_FREE 0x2
#define VMSPACE_SEG_ALLOCATED 0x4
#define VMSPACE_SEG_UNFLUSHED 0x8 /* freed, not reusable until flushed */
#define VMSPACE_SEG_ALL 0xf
/* vmspace_segment.flags. */
#define VMSPACE_SEG_IMPORTED 0x1 /* a span imported from the arena's source */
#define VMSPACE_SEG_HELD 0x2     /* held by a handle, or a quantum-cache slab */

/* vmspace_vm_protect's protections: NONE, READ or READ | WRITE. */
#define VMSPACE_PROT_NONE 0x0  /* no access: touching the pages faults; they stay mapped */
#define VMSPACE_PROT_READ 0x1  /* readable */
#define VMSPACE_PROT_WRITE 0x2 /* writable (with READ only: what vmspace_vm_map gives) */

/* Bytes of an arena's name kept. */
#define VMSPACE_NAME_MAX 31
/* Boundary tags an arena may use unless told (32 bytes each, reserved as
 * address space and mapped as used). */
#define VMSPACE_DEFAULT_TAGS 1048576
/* Bins of vmspace_arena_histogram (one per bit of a size, on LP64). */
#define VMSPACE_HISTOGRAM_BINS 64

/* An allocation made by handle: pass it back whole to free_handle (all
 * three fields as they were written). */
struct vmspace_handle {
	vmspace_addr_t addr; /* the allocation's address */
	uint32_t tag;        /* its boundary tag (meaningful to its arena only) */
	uint32_t arena;      /* its arena's fingerprint */
};

/* One span or segment, as vmspace_arena_walk reports it. */
struct vmspace_segment {
	vmspace_addr_t start;
	vmspace_size_t size;      /* a multiple of the quantum */
	vmspace_size_t requested; /* allocated: the size asked for; else size */
	int kind;                 /* VMSPACE_SEG_SPAN, _FREE, _ALLOCATED or
	                             _UNFLUSHED */
	int flags;                /* VMSPACE_SEG_IMPORTED, VMSPACE_SEG_HELD */
};

/* Where an arena's units are. */
struct vmspace_sizes {
	vmspace_size_t allocated;    /* in allocated segments (slabs included) */
	vmspace_size_t free;         /* in free segments */
	vmspace_size_t total;        /* in spans: allocated + free + unflushed */
	vmspace_size_t imported;     /* in imported spans (part of total) */
	vmspace_size_t largest_free; /* the largest free segment */
	vmspace_size_t live;         /* live allocations (handles, slabs included) */
	vmspace_size_t spans;        /* spans, added and imported */
	unsigned int fragmentation_permille; /* 1000 * (1 - largest_free / free), rounded up */
	unsigned int reserved;
	vmspace_size_t unflushed;    /* freed deferred, not flushed yet (part of total) */
};

/* Event counters (they only increase), and qcache_slabs, a count now. */
struct vmspace_counters {
	uint64_t allocs;       /* successful allocations the arena made (a
				* quantum-cache slab is one, though one
				* placed where its slab record was taken is
				* freed at once and placed again: one more
				* allocation and a free; objects handed out
				* of slabs and magazines are not) */
	uint64_t frees;        /* successful frees to the arena */
	uint64_t failures;     /* failed allocations and adds (bad frees
				* aside), each
				* try counted: every try of a waiting or
				* timed allocation that found no space, the
				* try made before the caches' slabs are
				* reclaimed (or a vmem reclaim function
				* called) and the one after, and a quantum
				* cache's failed try for a slab (it then
				* falls back to an allocation of the arena's
				* own), as illumos counts vk_fail; so an
				* allocation that succeeds may count one */
	uint64_t bad_frees;    /* frees refused (arena and caches) */
	uint64_t search_steps; /* segments or hash entries examined */
	uint64_t imports;      /* spans imported */
	uint64_t exports;      /* imported spans given back */
	uint64_t injected;     /* faults injected (set_mtbf) */
	uint64_t qcache_hits;  /* quantum-cache allocations from a magazine; a
				* CPU's hits of a size class are added at its
				* next miss of that class and when the arena
				* is destroyed, so they may lag */
	uint64_t qcache_misses; /* quantum-cache allocations that went further
				 * (each allocation counts once, a hit or a
				 * miss, however often it retries while it
				 * waits: served from a magazine in the end,
				 * a hit) */
	uint64_t qcache_slabs; /* quantum-cache slabs now: a count, not an
				* event counter (it goes down when slabs are
				* given back) */
	uint64_t qcache_reclaims;
	uint64_t deferred_frees; /* frees left unflushed: free_deferred,
				  * free_handle_deferred, and spans a destroyed
				  * child gave back unflushed (also counted in
				  * frees) */
	uint64_t flushes;      /* vmspace_arena_flushed calls that made anything free */
};

/* Everything vmspace_arena_create_ex can set; zero means the default. */
struct vmspace_params {
	const char *name;          /* copied (VMSPACE_NAME_MAX bytes kept); may be NULL */
	vmspace_addr_t base;       /* the initial span, if size != 0 */
	vmspace_size_t size;
	vmspace_size_t quantum;    /* a power of two, at most 2^27 (required) */
	vmspace_size_t qcache_max; /* sizes up to this use per-CPU quantum caches:
	                              rounded down to whole quanta, at most 8;
	                              none for quanta over 2^22 */
	int flags;                 /* the default policy (one VMSPACE_*FIT) or 0 */
	int reserved;              /* zero */
	vmspace_size_t max_tags;   /* 0: VMSPACE_DEFAULT_TAGS; at most 2^28 - 1
	                              (-EINVAL above, nothing reserved) */
	vmspace_arena_t *parent;   /* import from this arena when out of space:
	                              each import is an allocation of the
	                              parent's, by address, so a free of it
	                              through the parent is taken (a caller's
	                              double free; don't) */
};

/*
 * Import `size` units for an arena: store the start at *addrp and return 0,
 * or return non-zero (no space). The result must be aligned to the import
 * quantum (a misaligned one is given back and the allocation fails with
 * -ENOMEM). An import function takes no alignment: for a request that
 * needs an alignment above the import quantum the arena asks for that much
 * more, less a quantum, and allocates inside (the rest stays free in the
 * arena until the span goes back). That alignment is `align`, or for
 * `nocross` the size (with its phase) rounded up to a power of two, which
 * then crosses no boundary of `nocross` (or `nocross` itself when that
 * power of two is larger). Called with the arena locked: it
 * must not call into that arena, and may be called from any thread that
 * allocates from it. `flags` is 0.
 */
typedef int vmspace_import_fn(void *arg, vmspace_size_t size, int flags,
			      vmspace_addr_t *addrp);
/* Take back a range the import function returned (arena locked). */
typedef void vmspace_release_fn(void *arg, vmspace_addr_t addr,
				vmspace_size_t size);
/* Called for each segment of a walk (arena locked: no calls into it);
 * return non-zero to stop the walk. */
typedef int vmspace_walk_fn(void *arg, const struct vmspace_segment *seg);

VMSPACE_BEGIN_DECLS

/* What an errno value means when this API returns it (negative or
 * positive); never NULL. */
const char *vmspace_strerror(int err);
/* The library's VMSPACE_VERSION. */
int vmspace_version(void);

/*
 * An arena handing out multiples of `quantum` (a power of two, at most
 * 2^27), with the span [base, base + size) unless size is 0, quantum caches
 * for sizes up to qcache_max (0: none), and the default policy in `flags`
 * (one VMSPACE_*FIT flag, or 0 for instant fit). NULL on failure; use
 * vmspace_arena_create_ex to learn why.
 */
vmspace_arena_t *vmspace_arena_create(const char *name, vmspace_addr_t base,
				      vmspace_size_t size,
				      vmspace_size_t quantum,
				      vmspace_size_t qcache_max, int flags);
/* An arena as `params` asks, stored at *arenap (NULL on failure; *arenap is
 * cleared first, so it must not point into params). */
int vmspace_arena_create_ex(const struct vmspace_params *params,
			    vmspace_arena_t **arenap);
/*
 * Destroy an arena: live allocations go with it (in the kernel a warning
 * names the arena and what was left, once, as kmem_cache_destroy does;
 * the per-CPU caches are flushed first, so objects freed through them do
 * not count), imported spans go back to the parent or the release
 * function, memory is freed. A span still
 * holding a range freed deferred and never flushed must not be handed out
 * before its flush: a parent takes it back freed and not flushed (call
 * vmspace_arena_flushed on the parent once it is flushed; destroying the
 * parent first passes it on up the same way), and with import functions
 * it stays taken there for good. -EBUSY (and nothing changes) while other
 * arenas import from it. Of two racing destroys of an arena in the
 * caller's storage (vmem_init) one wins; the other, and any later call
 * until the storage is reused, gets -EBADF. An arena the library allocated
 * (vmspace_arena_create, _ex) is freed by destroy: racing destroys, or any
 * call after it, read freed memory (undefined; see the top of this file).
 */
int vmspace_arena_destroy(vmspace_arena_t *arena);
/* Add the span [addr, addr + size): quantum-aligned, overlapping no span of
 * this arena (-EEXIST). `flags` must be 0. Other arenas are not asked: a
 * range that another arena also holds (a parent's, say) is handed out by
 * both, so add to a child only what no arena of its tree holds. */
int vmspace_arena_add(vmspace_arena_t *arena, vmspace_addr_t addr,
		      vmspace_size_t size, int flags);
/*
 * Import through the caller's functions when out of space, in multiples of
 * `quantum` (a power of two at least the arena's quantum, else -EINVAL; 0:
 * the arena's quantum); a NULL `import` stops importing. A NULL `release`
 * keeps imported spans for the arena's life.
 * -EBUSY while the arena holds imported spans or imports from a parent.
 */
int vmspace_arena_set_import(vmspace_arena_t *arena, vmspace_import_fn *import,
			     vmspace_release_fn *release, void *arg,
			     vmspace_size_t quantum);
/* Imports fail once the arena's spans (added and imported) would pass
 * `limit` units; 0: no limit. */
int vmspace_arena_set_limit(vmspace_arena_t *arena, vmspace_size_t limit);
/* Fail allocations, adds and imports with probability 1/mtbf (-EAGAIN),
 * from a generator seeded with `seed`; 0 turns it off. For testing. An
 * allocation a quantum-cache magazine serves never reaches the arena and
 * is not failed. */
int vmspace_arena_set_mtbf(vmspace_arena_t *arena, uint64_t seed,
			   unsigned int mtbf);

/*
 * Allocate `size` units (rounded up to the quantum) and store the start at
 * *addrp. Sizes up to the arena's qcache_max come from the calling CPU's
 * quantum-cache magazines (any policy; not with VMSPACE_TOP). Flags: one
 * policy, VMSPACE_TOP, VMSPACE_WAIT, VMSPACE_KILLABLE.
 */
int vmspace_arena_alloc(vmspace_arena_t *arena, vmspace_size_t size,
			int flags, vmspace_addr_t *addrp);
/*
 * vmspace_arena_alloc waiting for space as VMSPACE_WAIT does (which flags
 * may include, or not), but for at most `timeout_ns` nanoseconds: when the
 * time is up the allocation is tried once more, then fails with
 * -ETIMEDOUT (never -ENOMEM). A timeout of 0 tries once without sleeping;
 * UINT64_MAX waits as long as VMSPACE_WAIT. The time is counted on the
 * monotonic clock; in the kernel a sleep is rounded up to whole jiffies,
 * and a signal does not end it early, but for a fatal signal with
 * VMSPACE_KILLABLE in flags (-EINTR).
 */
int vmspace_arena_alloc_timed(vmspace_arena_t *arena, vmspace_size_t size,
			      int flags, uint64_t timeout_ns,
			      vmspace_addr_t *addrp);
/*
 * Allocate `size` units at `phase` past a multiple of `align` (a power of
 * two; 0: the quantum), not crossing a multiple of `nocross` (0: no limit),
 * inside [min, max) (max 0: no upper limit; max is exclusive), and with
 * VMSPACE_EXACT exactly at `exact` (without it, `exact` is not read). Never
 * from the quantum caches; a request with min or max set, or with
 * VMSPACE_EXACT, does not import (an import cannot ask its source for an
 * address), so with VMSPACE_WAIT it waits for the place to come free in
 * this arena.
 */
int vmspace_arena_xalloc(vmspace_arena_t *arena, vmspace_size_t size,
			 vmspace_size_t align, vmspace_size_t phase,
			 vmspace_size_t nocross, vmspace_addr_t min,
			 vmspace_addr_t max, vmspace_addr_t exact, int flags,
			 vmspace_addr_t *addrp);
/*
 * Free [addr, addr + size), allocated by vmspace_arena_alloc or _xalloc
 * with exactly this size. A bad free (-ENOENT, -EMSGSIZE) changes nothing;
 * of two racing frees of one allocation, exactly one succeeds.
 */
int vmspace_arena_free(vmspace_arena_t *arena, vmspace_addr_t addr,
		       vmspace_size_t size);
/*
 * Free [addr, addr + size) as vmspace_arena_free does (same checks, same
 * errors), but leave it freed and not flushed: no allocation takes it until
 * vmspace_arena_flushed. For address space whose unmapping waits for a TLB
 * flush (vunmap_range_noflush and one flush_tlb_kernel_range for a batch):
 * a range must not be handed out again before its flush. Walks show it as
 * VMSPACE_SEG_UNFLUSHED. Objects from the quantum caches (with qcache_max
 * set) are not to be freed this way: those that are parts of a slab are
 * refused (-ENOENT, nothing changes); those a miss took from the arena
 * itself, when the class had no slab record to spare (32 slabs a class at
 * once) or the arena no room for a slab, are allocations of their own and
 * freed like any other.
 */
int vmspace_arena_free_deferred(vmspace_arena_t *arena, vmspace_addr_t addr,
				vmspace_size_t size);
/* The caller has flushed everything it freed with free_deferred (or
 * free_handle_deferred): all of it
 * becomes free (coalesced, imported spans given back). Stores the size
 * that became free at *freedp (unless NULL). */
int vmspace_arena_flushed(vmspace_arena_t *arena, vmspace_size_t *freedp);
/*
 * Allocate by handle: as alloc and xalloc, but the allocation is not
 * entered in the address hash and is freed with free_handle (no lookup on
 * either side). Never from the quantum caches; VMSPACE_WAIT is -EOPNOTSUPP.
 */
int vmspace_arena_alloc_handle(vmspace_arena_t *arena, vmspace_size_t size,
			       int flags, struct vmspace_handle *handlep);
int vmspace_arena_xalloc_handle(vmspace_arena_t *arena, vmspace_size_t size,
				vmspace_size_t align, vmspace_size_t phase,
				vmspace_size_t nocross, vmspace_addr_t min,
				vmspace_addr_t max, vmspace_addr_t exact,
				int flags, struct vmspace_handle *handlep);
/* Free what `handle` holds and store the size it was allocated with at
 * *sizep (unless NULL). A foreign handle (another arena's: its `arena`
 * field tells, so two live arenas are mistaken for each other with
 * probability about 2^-32; each arena's fingerprint is salted at random
 * when it is made, so a handle of a destroyed arena is foreign to an arena
 * made after it in the same memory) or a stale one is -ENOENT, except a
 * stale handle
 * whose tag was since reused for a new handle allocation at the same address:
 * it names that allocation and frees it, as a free by address of an address
 * freed and allocated again would. */
int vmspace_arena_free_handle(vmspace_arena_t *arena,
			      struct vmspace_handle handle,
			      vmspace_size_t *sizep);
/* As free_handle (the same checks and errors), but the range is left freed
 * and not flushed, as free_deferred leaves it, until vmspace_arena_flushed. */
int vmspace_arena_free_handle_deferred(vmspace_arena_t *arena,
				       struct vmspace_handle handle,
				       vmspace_size_t *sizep);
/* Give the quantum caches' depots back to their slabs and wholly free slabs
 * back to the arena (objects in per-CPU magazines stay until destroy);
 * returns the number of slabs freed. */
int vmspace_arena_reclaim(vmspace_arena_t *arena);

/* The arena's name (NULL for a bad arena). */
const char *vmspace_arena_name(vmspace_arena_t *arena);
/* The arena's quantum (0 for a bad arena). */
vmspace_size_t vmspace_arena_quantum(vmspace_arena_t *arena);
int vmspace_arena_sizes(vmspace_arena_t *arena, struct vmspace_sizes *sizesp);
int vmspace_arena_counters(vmspace_arena_t *arena,
			   struct vmspace_counters *countersp);
/* Free segments of size in [2^k, 2^(k+1)) into bins[k] for the first nbins
 * (more than VMSPACE_HISTOGRAM_BINS are taken as that many: nothing past
 * them is written); returns the number of bins written. */
int vmspace_arena_histogram(vmspace_arena_t *arena, uint64_t *bins,
			    vmspace_size_t nbins);
/* Call `walk` for each span or segment of the kinds in `kinds_mask`, in
 * address order; returns 0, or the non-zero value that stopped the walk. */
int vmspace_arena_walk(vmspace_arena_t *arena, int kinds_mask,
		       vmspace_walk_fn *walk, void *arg);
/* Verify every invariant of the arena and its quantum caches: 0 or
 * -EUCLEAN (with a broken arena). */
int vmspace_arena_check(vmspace_arena_t *arena);
/* 1 when [addr, addr + size) lies inside one span (size 0: when addr lies
 * in one or at its end), else 0; a negative errno for a bad arena, as every
 * call gives, so test for == 1. */
int vmspace_arena_contains(vmspace_arena_t *arena, vmspace_addr_t addr,
			   vmspace_size_t size);

/*
 * The VM layer: one contiguous reservation of address space, and pages
 * mapped and unmapped inside it on request (the Memory Pool System's VM).
 * In user space the pages are anonymous memory (mmap: reserved
 * PROT_NONE, mapped read-write); in the kernel they are pages of the
 * vmalloc area (allocated and mapped by vmspace_vm_map, freed by
 * vmspace_vm_unmap), so a driver gets a large range of kernel virtual
 * addresses of which only what it maps costs memory. A VM records which
 * pages are mapped in a bit table of its own, past its limit, mapped as
 * needed. An arena over a VM's range (vmspace_arena_create with its base
 * and size, or import functions that map what they import) hands out
 * addresses in it; the VM maps them.
 *
 * The VM calls' errors (these, not the arena's list above):
 *   -EINVAL     a NULL vm or out pointer (or a misaligned one), a size of
 *               0, a grain that is not a power of two at least the page
 *               size (0 means the page size), an unknown flag or
 *               protection (checked before the range), a range that is
 *               empty or whose ends are not multiples of the page size
 *   -EBADF      not a live VM (an arena is not one, nor a VM's copy)
 *   -ERANGE     a range not inside [base, base + size)
 *   -EEXIST     map of a range in which a page is mapped already
 *   -ENOENT     unmap or protect of a range in which a page is not mapped
 *   -ENOMEM     no address space to reserve, no memory for pages, or (user
 *               space) no kernel mapping left to split for a map, unmap,
 *               protect or release (the process is at vm.max_map_count)
 *   -EOVERFLOW  the size rounded up to the grain, with the VM's bookkeeping
 *               after it, or a range's end, does not fit in an address
 *   -EIO        the OS's page operations failed otherwise
 *   -EUCLEAN    vmspace_vm_check found the bookkeeping broken
 * A failing call changes nothing, except where the OS fails part way: a
 * map whose pages the OS refused gives back the bookkeeping page it mapped
 * for them, and should that fail too, that page stays mapped (in
 * `metadata`) until vmspace_vm_trim; an unmap the OS refuses (-ENOMEM at
 * vm.max_map_count in user space) may have dropped the pages' contents
 * first: they stay mapped, read-write (unless the OS refuses that too: a
 * range vmspace_vm_protect gave another protection than its neighbours'
 * may keep it), and may read zero; a trim keeps what it gave back before
 * it failed.
 * Calls on one VM may come from any thread, concurrently (a lock orders
 * them; in the kernel a mutex: process context only, as for arenas).
 * Reading or writing a page that is not mapped faults (SIGSEGV in user
 * space, an oops in the kernel): nothing checks the caller's accesses.
 */

/* A VM's range and what is mapped in it. */
struct vmspace_vm_info {
	vmspace_addr_t base;       /* the first address: a multiple of grain */
	vmspace_size_t size;       /* bytes; base + size is a multiple of grain */
	vmspace_size_t grain;      /* what base and size are multiples of */
	vmspace_size_t page_size;  /* what map and unmap ranges are multiples of */
	vmspace_size_t mapped;     /* bytes mapped by vmspace_vm_map now */
	vmspace_size_t reserved;   /* address space reserved, bookkeeping included */
	vmspace_size_t metadata;   /* bytes of bookkeeping mapped now */
};

/* Reserve at least `size` bytes of address space (rounded up to `grain`),
 * base and limit multiples of `grain` (0: the page size); nothing in it is
 * mapped. `flags` is 0. Stores the VM at *vmp (NULL on failure). */
int vmspace_vm_create(vmspace_size_t size, vmspace_size_t grain, int flags,
		      vmspace_vm_t **vmp);
/* Unmap every page and release the reservation; the VM is gone (its
 * memory is freed: a use after is undefined). Nothing may touch its pages
 * after. If the OS refuses the release (-ENOMEM where it has no mapping
 * left to split, -EIO otherwise), the VM is as it was. */
int vmspace_vm_destroy(vmspace_vm_t *vm);
/* Map the pages of [addr, addr + size), none of which may be mapped:
 * readable and writable, and zero. A failure maps none of them. */
int vmspace_vm_map(vmspace_vm_t *vm, vmspace_addr_t addr, vmspace_size_t size);
/* Unmap the pages of [addr, addr + size), all of which must be mapped; their
 * contents are gone (they read zero when mapped again). */
int vmspace_vm_unmap(vmspace_vm_t *vm, vmspace_addr_t addr,
		     vmspace_size_t size);
/* Set the access to the pages of [addr, addr + size), all of which must be
 * mapped: VMSPACE_PROT_NONE, VMSPACE_PROT_READ, or VMSPACE_PROT_READ |
 * VMSPACE_PROT_WRITE (as vmspace_vm_map left them). The pages stay mapped
 * and keep what they hold (vmspace_vm_mapped and info's `mapped` count
 * them); unmap takes them whatever their protection, and a page mapped
 * again is read-write. The VM records no protections: should the OS fail
 * part way (-ENOMEM: user space at vm.max_map_count, the kernel out of
 * memory for its bookkeeping), part of the range may have the new
 * protection and the rest its old one, and the caller, who knows the old
 * one, sets it again. A failed unmap leaves its range read-write, unless
 * the OS refuses that as well (at vm.max_map_count, a range whose
 * protection differs from its neighbours' may keep it: set it once
 * mappings are freed). */
int vmspace_vm_protect(vmspace_vm_t *vm, vmspace_addr_t addr,
		       vmspace_size_t size, int prot);
/* 1 when every page of [addr, addr + size) is mapped, 0 when one is not, or
 * a negative errno (a bad range as for map), so test for == 1. */
int vmspace_vm_mapped(vmspace_vm_t *vm, vmspace_addr_t addr,
		      vmspace_size_t size);
/* Store the VM's range, grain, page size and what is mapped at *infop. */
int vmspace_vm_info(vmspace_vm_t *vm, struct vmspace_vm_info *infop);
/* Give back the pages of the VM's bookkeeping that record nothing mapped
 * (mapped pages are never touched); returns how many pages were given back
 * (at most INT_MAX is said), or a negative errno, the pages given back
 * before the failure staying given back. */
int vmspace_vm_trim(vmspace_vm_t *vm);
/* Verify the VM's bookkeeping: 0 or -EUCLEAN. */
int vmspace_vm_check(vmspace_vm_t *vm);

/*
 * An arena whose spans are pages: import from a VM of at least `size` bytes
 * (rounded up to the larger of the page and the arena's quantum, and
 * aligned to it, so a VM of n quanta holds n quanta) reserved for this
 * arena alone. Each import takes a range of the VM and maps it (zeroed,
 * read-write) before the arena hands any of it out, in multiples of the
 * page size (and aligned as the arena needs); each imported span that goes
 * back (when it is wholly free again, and at destroy) is unmapped and its
 * range may be imported again. So every address an allocation takes from
 * an imported span is mapped memory until it is freed: the vmem(9) pattern
 * of a kmem_va arena under a kmem_default one, in one call. Spans added
 * with vmspace_arena_add are the caller's and not mapped by the arena; one
 * overlapping the VM's reservation is refused (-EEXIST). `flags` is 0; a
 * `size` of 0 stops importing (the VM is given back). The VM is the
 * arena's: destroy releases it with every page. Frees may unmap, so they
 * too take time (a TLB flush in the kernel); quantum caches (qcache_max)
 * keep small sizes off that path when the VM has room for their slabs
 * (each holds 64 objects of its size class, aligned to a power of two at
 * least its size): in a VM that cannot hold one, every cached-size
 * allocation imports a span of its own and its free unmaps it. The
 * arena's limit (vmspace_arena_set_limit) applies as to any import.
 * Errors: -EINVAL for flags other than 0; -ENOMEM or -EOVERFLOW as
 * vmspace_vm_create gives them (checked first); -EBUSY while the arena
 * holds imported spans or imports from a parent (set_import replaces a VM
 * that holds nothing). With quantum caches, objects freed into per-CPU
 * magazines keep their slabs imported (reclaim does not reach magazines),
 * so once a cached size was allocated, -EBUSY lasts until destroy.
 */
int vmspace_arena_set_vm(vmspace_arena_t *arena, vmspace_size_t size,
			 int flags);
/* The arena's VM (set_vm), as vmspace_vm_info describes a VM (mapped:
 * the imported spans); -EINVAL for an arena that imports from no VM. */
int vmspace_arena_vm_info(vmspace_arena_t *arena,
			  struct vmspace_vm_info *infop);

VMSPACE_END_DECLS

#endif /* VMSPACE_H */
