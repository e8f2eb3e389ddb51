// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`run_threads`]: a closure on several kernel threads at once, as work
//! items of the kernel's unbound workqueue (the kernel crate's
//! `workqueue::Queue::try_spawn`), for the concurrency cases.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kernel::prelude::*;
use kernel::sync::Completion;
use kernel::workqueue;

/// What the threads of one [`run_threads`] call share: how many are still
/// running (plus one for the starter), whether any failed, and the
/// completion the last one to finish signals.
#[pin_data]
struct Done {
    #[pin]
    all_ran: Completion,
    left: AtomicUsize,
    failed: AtomicBool,
}

/// One thread's share of a [`run_threads`] call.
///
/// # Invariants
///
/// `arg` points to the closure `F` of the `run_threads` call that made the
/// job, `call` is `call::<F>`, and `done` to that call's [`Done`]; both live
/// until `done.all_ran` completes, which is not before this job has run.
struct Job {
    call: unsafe fn(*const (), usize) -> bool,
    arg: *const (),
    index: usize,
    done: *const Done,
}

// SAFETY: a job only reaches `F` through a shared reference, and `F: Sync`
// (`run_threads`' bound), and `Done`, whose fields are made for sharing.
unsafe impl Send for Job {}

impl Job {
    fn run(self) {
        // SAFETY: `arg` is a live `&F` and `call` is `call::<F>` (type
        // invariant).
        let ok = unsafe { (self.call)(self.arg, self.index) };
        // SAFETY: `done` lives until `all_ran` completes (type invariant),
        // which is at the earliest the `complete_all` below.
        let done = unsafe { &*self.done };
        if !ok {
            done.failed.store(true, Ordering::Relaxed);
        }
        if done.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last access to `done`: `complete_all` returns only after
            // dropping the completion's lock, which its waiter takes before
            // it returns.
            done.all_ran.complete_all();
        }
    }
}

/// Calls the `F` behind `arg` with `index`.
///
/// # Safety
///
/// `arg` points to a live `F`.
unsafe fn call<F: Fn(usize) -> bool + Sync>(arg: *const (), index: usize) -> bool {
    // SAFETY: the caller's contract.
    let f = unsafe { &*arg.cast::<F>() };
    f(index)
}

/// Run `f(i)` for `i` in `0..n` on `n` kernel threads (1 to 16) at the same
/// time and wait for all of them. Returns `true` when every call returned
/// `true` and every thread started.
///
/// The threads are workers of the unbound workqueue, which starts one for
/// every pending item, so the calls do run at once (on different CPUs when
/// there are several). Task context only: it sleeps.
pub fn run_threads<F: Fn(usize) -> bool + Sync>(n: usize, f: F) -> bool {
    if n == 0 || n > 16 {
        return false;
    }
    let done = match KBox::pin_init(
        pin_init!(Done {
            all_ran <- Completion::new(),
            left: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
        }),
        GFP_KERNEL,
    ) {
        Ok(done) => done,
        Err(_) => return false,
    };
    let mut started = true;
    for index in 0..n {
        done.left.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: `arg` and `done` live until `all_ran` completes: this
        // function waits for that below before `f` and `done` go.
        let job = Job { call: call::<F>, arg: ptr::from_ref(&f).cast(), index, done: &raw const *done };
        if workqueue::system_unbound().try_spawn(GFP_KERNEL, move || job.run()).is_err() {
            done.left.fetch_sub(1, Ordering::Relaxed);
            started = false;
            break;
        }
    }
    // Drop the starter's count; the last job to finish completes.
    if done.left.fetch_sub(1, Ordering::AcqRel) != 1 {
        done.all_ran.wait_for_completion();
    }
    started && !done.failed.load(Ordering::Relaxed)
}
