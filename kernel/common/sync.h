/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * C helpers for the kernel's side of vmspace::sync (a mutex, a waiter), for
 * pinning to a CPU (vmspace::qcache::CpuPin) and for running test threads. Only functions exported to modules are used, so
 * both the built-in and the module build link this file. The Rust side
 * declares the same functions by hand in sys.rs; keep the two in step.
 */
#ifndef VMSPACE_SYNC_H
#define VMSPACE_SYNC_H

#include <linux/types.h>

void *vmspace_mutex_new(void);
void vmspace_mutex_free(void *m);
void vmspace_mutex_lock(void *m);
int vmspace_mutex_trylock(void *m);
void vmspace_mutex_unlock(void *m);

void *vmspace_waiter_new(void);
void vmspace_waiter_free(void *w);
u64 vmspace_waiter_epoch(void *w);
int vmspace_waiter_wait(void *w, u64 seen, s64 timeout_ns);
void vmspace_waiter_notify_all(void *w);
u64 vmspace_now_ns(void);
void vmspace_sleep_ms(unsigned int ms);
void vmspace_relax(void);

unsigned int vmspace_pin_cpu(void);
void vmspace_unpin_cpu(void);
unsigned int vmspace_nr_cpu_ids(void);
unsigned int vmspace_num_online_cpus(void);
unsigned int vmspace_current_cpu(void);

int vmspace_run_threads(int (*fn)(void *arg, int index), void *arg, int n);

#endif
