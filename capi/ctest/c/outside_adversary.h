/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): one scenario
 * group per function adv_<name>, in outside_adversary_<area>.c, each
 * returning its number of failed checks; the entry point
 * ctest_outside_adversary in outside_adversary.c runs them all. This
 * header holds their shared helpers, defined in outside_adversary_common.c.
 */
#ifndef OUTSIDE_ADVERSARY_H
#define OUTSIDE_ADVERSARY_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctest.h"

#define B 0x100000UL
#define Q 16UL

/* ------------------------------------------------------------ helpers */

/* A snapshot of an arena: its sizes and a hash of its whole walk. */
struct snap {
	struct vmspace_sizes s;
	uint64_t hash;
	int nseg;
};

int adv_hash_seg(void *arg, const struct vmspace_segment *seg);
void adv_take(vmspace_arena_t *a, struct snap *sn);
int adv_same(const struct snap *x, const struct snap *y);

/* The arena's invariants and its sizes' balance. */
int adv_consistent(vmspace_arena_t *a);

#define UNCHANGED(a, before)                                                  \
	do {                                                                  \
		struct snap _now;                                             \
		adv_take((a), &_now);                                         \
		if (!adv_same(&(before), &_now)) {                            \
			fprintf(stderr, "%s:%d: arena changed\n", __FILE__,   \
				__LINE__);                                    \
			failures++;                                           \
		}                                                             \
	} while (0)

/* The error hook (vmem_set_error_hook): counts its calls in a hook_log,
 * keeps the last one's arguments. */
struct hook_log {
	int calls;
	int last_error;
	const char *last_what;
	vmem_addr_t last_addr;
	vmem_size_t last_size;
};

void adv_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
	      int error);

/* Import functions (adv_imp, adv_rel) on a struct importer: imports as
 * mode says, from next on or from another arena; each release must name
 * an import not yet released (else bad_release). */
enum { IMP_OK, IMP_FAIL, IMP_MISALIGN, IMP_OVERLAP, IMP_WRAP };

#define MAXIMP 64
struct importer {
	int mode;
	int last_flags;
	vmspace_addr_t next;
	vmspace_addr_t overlap_at;
	int imports, releases;
	vmspace_addr_t got[MAXIMP];
	vmspace_size_t gsz[MAXIMP];
	int released[MAXIMP];
	int bad_release; /* a release of a range never imported */
	/* import from another arena instead */
	vmspace_arena_t *from;
};

int adv_imp(void *arg, vmspace_size_t size, int fl, vmspace_addr_t *addrp);
void adv_rel(void *arg, vmspace_addr_t addr, vmspace_size_t size);

/* ------------------------------------------------------------ scenarios */

int adv_badptr(void);      /* outside_adversary_args.c */
int adv_flags(void);       /* outside_adversary_args.c */
int adv_xbounds(void);     /* outside_adversary_args.c */
int adv_frees(void);       /* outside_adversary_frees.c */
int adv_stale(void);       /* outside_adversary_frees.c */
int adv_spans(void);       /* outside_adversary_spans.c */
int adv_tags(void);        /* outside_adversary_spans.c */
int adv_parent_span(void); /* outside_adversary_spans.c */
int adv_names(void);       /* outside_adversary_names.c */
int adv_buffers(void);     /* outside_adversary_names.c */
int adv_misc(void);        /* outside_adversary_names.c */
int adv_callbacks(void);   /* outside_adversary_callbacks.c */
int adv_races(void);       /* outside_adversary_races.c */
int adv_more(void);        /* outside_adversary_more.c */

#endif
