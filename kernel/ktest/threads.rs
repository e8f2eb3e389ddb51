// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`run_threads`]: a closure on several kernel threads at once, as work
//! items of the kernel's default unbound workqueue (`system_dfl_wq`), for the
//! concurrency cases.
//!
//! The work item is a type of ours ([`Job`]) rather than the kernel crate's
//! `Queue::try_spawn`: that one is generic over the closure and names its
//! work's lockdep class with a constant string, whose address differs
//! between the instances of the generic function while the class key (a
//! static) is shared; lockdep then reports one key under two names ("found
//! a different class ... with the same key") as soon as two different
//! closures have run (found by `make kunit-debug`). Our name is a static.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kernel::bindings;
use kernel::c_str;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::{static_lock_class, Completion};
use kernel::workqueue::{impl_has_work, Queue, Work, WorkItem};

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

/// One thread's share of a [`run_threads`] call: a work item.
///
/// # Invariants
///
/// `arg` points to the closure `F` of the `run_threads` call that made the
/// job, `call` is `call::<F>`, and `done` to that call's [`Done`]; both live
/// until `done.all_ran` completes, which is not before this job has run.
#[pin_data]
struct Job {
    #[pin]
    work: Work<Job>,
    call: unsafe fn(*const (), usize) -> bool,
    arg: *const (),
    index: usize,
    done: *const Done,
}

impl_has_work! {
    impl HasWork<Self> for Job { self.work }
}

// SAFETY: a job only reaches `F` through a shared reference, and `F: Sync`
// (`run_threads`' bound), and `Done`, whose fields are made for sharing.
unsafe impl Send for Job {}

impl Job {
    /// A job calling `call(arg, index)` and counting down `done`, its work
    /// item in one lockdep class under one name.
    ///
    /// # Safety
    ///
    /// The fields meet the type invariants.
    unsafe fn new(call: unsafe fn(*const (), usize) -> bool, arg: *const (), index: usize, done: *const Done) -> impl PinInit<Self> {
        // A static, not a constant, for the name: lockdep wants one address
        // per class name (see `vmspace_kernel::new_kernel_mutex!`).
        static NAME: &CStr = c_str!("vmspace_ktest::run_threads");
        // INVARIANT: the caller's contract.
        pin_init!(Job { work <- Work::new(NAME, static_lock_class!()), call, arg, index, done })
    }
}

impl WorkItem for Job {
    type Pointer = Pin<KBox<Job>>;

    fn run(this: Pin<KBox<Job>>) {
        // SAFETY: `arg` is a live `&F` and `call` is `call::<F>` (type
        // invariant).
        let ok = unsafe { (this.call)(this.arg, this.index) };
        // SAFETY: `done` lives until `all_ran` completes (type invariant),
        // which is at the earliest the `complete_all` below.
        let done = unsafe { &*this.done };
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

/// The default unbound workqueue, `system_dfl_wq`. The kernel crate of 7.2
/// offers only `system_unbound()`, whose `system_unbound_wq` the kernel now
/// marks deprecated (and says so in the log on first use).
fn unbound() -> &'static Queue {
    // SAFETY: `system_dfl_wq` is set up before any initcall runs (KUnit
    // cases and modules run later) and is never freed.
    unsafe { Queue::from_raw(bindings::system_dfl_wq) }
}

/// Run `f(i)` for `i` in `0..n` on `n` kernel threads (1 to 16) at the same
/// time and wait for all of them. Returns `true` when every call returned
/// `true` and every thread started.
///
/// The threads are workers of an unbound workqueue, which starts one for
/// every pending item, so the calls do run at once (on different CPUs when
/// there are several). Task context only: it sleeps.
pub fn run_threads<F: Fn(usize) -> bool + Sync>(n: usize, f: F) -> bool {
    if n == 0 || n > 16 {
        return false;
    }
    let Ok(done) = KBox::pin_init(
        pin_init!(Done {
            all_ran <- Completion::new(),
            left: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
        }),
        GFP_KERNEL,
    ) else {
        return false;
    };
    let mut started = true;
    for index in 0..n {
        // SAFETY: `arg` is `&f` and `call` is `call::<F>`; `f` and `done`
        // live until `all_ran` completes: this function waits for that
        // below before they go.
        let job = unsafe { Job::new(call::<F>, ptr::from_ref(&f).cast(), index, &raw const *done) };
        let Ok(job) = KBox::pin_init(job, GFP_KERNEL) else {
            started = false;
            break;
        };
        done.left.fetch_add(1, Ordering::Relaxed);
        unbound().enqueue(job);
    }
    // Drop the starter's count; the last job to finish completes.
    if done.left.fetch_sub(1, Ordering::AcqRel) != 1 {
        done.all_ran.wait_for_completion();
    }
    started && !done.failed.load(Ordering::Relaxed)
}
