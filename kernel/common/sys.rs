// SPDX-License-Identifier: MIT OR Apache-2.0

//! Hand-written declarations of the C helpers in `sync.c` (prototypes in
//! `sync.h`). Keep them in step with that file.

use core::ffi::{c_int, c_uint, c_void};

extern "C" {
    /// A `kzalloc`ed, initialised `struct mutex`, or NULL.
    pub(crate) fn vmspace_mutex_new() -> *mut c_void;
    /// `mutex_destroy` and `kfree`.
    pub(crate) fn vmspace_mutex_free(m: *mut c_void);
    /// `mutex_lock`.
    pub(crate) fn vmspace_mutex_lock(m: *mut c_void);
    /// `mutex_trylock`: 1 if taken.
    pub(crate) fn vmspace_mutex_trylock(m: *mut c_void) -> c_int;
    /// `mutex_unlock`.
    pub(crate) fn vmspace_mutex_unlock(m: *mut c_void);

    /// A wait queue and an epoch counter, or NULL.
    pub(crate) fn vmspace_waiter_new() -> *mut c_void;
    /// `kfree`.
    pub(crate) fn vmspace_waiter_free(w: *mut c_void);
    /// The epoch.
    pub(crate) fn vmspace_waiter_epoch(w: *mut c_void) -> u64;
    /// Sleep until the epoch differs from `seen` or the timeout passes
    /// (negative: no timeout). 1 if it moved.
    pub(crate) fn vmspace_waiter_wait(w: *mut c_void, seen: u64, timeout_ns: i64) -> c_int;
    /// Bump the epoch and wake every sleeper.
    pub(crate) fn vmspace_waiter_notify_all(w: *mut c_void);
    /// `ktime_get_ns()`.
    pub(crate) fn vmspace_now_ns() -> u64;
    /// `msleep(ms)`.
    pub(crate) fn vmspace_sleep_ms(ms: c_uint);
    /// `cond_resched(); cpu_relax();`
    pub(crate) fn vmspace_relax();

    /// `preempt_disable()`, then `smp_processor_id()`.
    pub(crate) fn vmspace_pin_cpu() -> c_uint;
    /// `preempt_enable()`.
    pub(crate) fn vmspace_unpin_cpu();
    /// `nr_cpu_ids`.
    pub(crate) fn vmspace_nr_cpu_ids() -> c_uint;
    /// `num_online_cpus()`.
    pub(crate) fn vmspace_num_online_cpus() -> c_uint;
    /// `raw_smp_processor_id()`.
    pub(crate) fn vmspace_current_cpu() -> c_uint;

    /// Run `f(arg, i)` for `i` in `0..n` on `n` kernel threads and wait.
    pub(crate) fn vmspace_run_threads(
        f: unsafe extern "C" fn(arg: *mut c_void, index: c_int) -> c_int,
        arg: *mut c_void,
        n: c_int,
    ) -> c_int;
}
