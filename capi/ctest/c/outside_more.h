/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Another outside reviewer (see outside_more.c): one scenario per function
 * more_<name>, in outside_more_<area>.c, each returning its number of
 * failed checks; the entry point ctest_outside_more in outside_more.c runs
 * them all.
 */
#ifndef OUTSIDE_MORE_H
#define OUTSIDE_MORE_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctest.h"

int more_model(void);    /* outside_more_model.c */
int more_huge(void);     /* outside_more_args.c */
int more_dead(void);     /* outside_more_args.c */
int more_args(void);     /* outside_more_args.c */
int more_forged(void);   /* outside_more_caches.c */
int more_caches(void);   /* outside_more_caches.c */
int more_mtbf(void);     /* outside_more_caches.c */
int more_vmem(void);     /* outside_more_caches.c */
int more_imported(void); /* outside_more_defects.c */
int more_defects(void);  /* outside_more_defects.c */

#endif
