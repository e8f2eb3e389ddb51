/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Helpers of the C tests: checks that count failures in a local `failures`
 * and print each to stderr, a seeded generator, and a reference list of
 * live ranges.
 */
#ifndef CTEST_H
#define CTEST_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmspace.h>
#include <vmspace/vmem.h>

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #c);                                \
			failures++;                                           \
		}                                                             \
	} while (0)

#define CHECK_EQ(a, b)                                                        \
	do {                                                                  \
		long long _a = (long long)(a), _b = (long long)(b);           \
		if (_a != _b) {                                               \
			fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n",    \
				__FILE__, __LINE__, #a, #b, _a, _b);          \
			failures++;                                           \
		}                                                             \
	} while (0)

/* A seeded xorshift64* generator. */
static inline uint64_t ct_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* A value in [0, n). */
static inline uint64_t ct_below(uint64_t *s, uint64_t n)
{
	return n ? ct_next(s) % n : 0;
}

/* Whether every byte of `p` (n bytes) is zero. */
static inline int ct_all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* A thread allocating 0x1000 units of `arena` and waiting for them:
 * VMSPACE_WAIT when `timeout_ns` is 0, else vmspace_arena_alloc_timed.
 * `started` is set as it starts; `result` and `got` hold the outcome. */
struct ct_waiting {
	vmspace_arena_t *arena;
	uint64_t timeout_ns;
	atomic_int started;
	vmspace_addr_t got;
	int result;
};

/* The body of a struct ct_waiting's thread (pthread_create's start). */
static inline void *ct_waiter(void *arg)
{
	struct ct_waiting *w = arg;
	atomic_store(&w->started, 1);
	if (w->timeout_ns)
		w->result = vmspace_arena_alloc_timed(w->arena, 0x1000, 0, w->timeout_ns, &w->got);
	else
		w->result = vmspace_arena_alloc(w->arena, 0x1000, VMSPACE_WAIT, &w->got);
	return NULL;
}

#endif
