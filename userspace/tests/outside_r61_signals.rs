//! Round 61 (outside reviewer): a signal handler that itself allocates and
//! frees through the per-CPU caches (`UserCpuCaches`), while the thread it
//! interrupts is using the same caches.
//!
//! Nothing in README.md, src/sync/percpu.rs, src/qcache/pin.rs or
//! userspace/src/{pin.rs,rseq/mod.rs} says whether a handler may use the
//! caches. The rseq module docs say a sequence "signalled" before its commit
//! is restarted, which reads as if signal handlers were accounted for; the
//! `CpuPin` contract (src/qcache/pin.rs) says no other `pin` "from any thread
//! or context" may return a pinned slot, and the kernel pin only pins "from
//! task context".
//!
//! What the tests show:
//!
//! - `rseq_hits_in_a_handler_are_safe` (PASSES, sharp): with `RseqPin`
//!   (restartable sequences), a handler whose calls are all hits (its class
//!   warmed on every CPU beforehand, never touched by the interrupted
//!   thread, which uses another class) interrupts thousands of the
//!   thread's own sequences; no object is handed out twice, nothing is
//!   lost, `check()` holds. The hit path is reentrant: the kernel aborts the
//!   interrupted sequence before the handler runs, and it restarts after.
//!
//! - Two more cases hung a child: a handler whose call misses while the
//!   interrupted thread holds the arena lock (a deadlock on `ParkingLock`),
//!   and, with `SchedPin` and one slot, a handler that finds the slot taken
//!   by the thread it interrupted (`SchedPin::pin` never returns). Was a
//!   doc DEFECT (fixed: `CpuCaches`' docs and the README say the caches are
//!   not async-signal-safe); the hanging cases, which only showed the
//!   documented prohibition, are not kept.
//!
//! At fault: the docs (no word on signal context). Proposed fix: state in
//! `CpuCaches`' and `RseqPin`'s docs that the caches are not
//! async-signal-safe (a handler must not call `alloc`/`free`, whatever the
//! pin: the miss path takes the arena lock and the waiter's mutex, and
//! `SchedPin` holds a try-lock across the operation), or, if handler use is
//! wanted, give the handler a path that never blocks (e.g. a `try_lock`
//! on the arena lock and `SlotFlag::take_any` once, failing with
//! `NoSpace`/`Again` instead of waiting).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vmspace::arena::NoSource;
use vmspace::qcache::CpuPin;
use vmspace::{Addr, Size};
use vmspace_user::{allowed_cpus, run_only_on, RseqPin, UserCpuCaches};

mod outside_r61_common;

use outside_r61_common::*;

/// One owner word per quantum of the span: 0 free, else an owner id.
/// Lock-free, so it adds no serialization between threads or contexts.
struct Shadow(Vec<AtomicUsize>);

impl Shadow {
    fn new() -> Self {
        Shadow((0..SPAN / Q).map(|_| AtomicUsize::new(0)).collect())
    }
    fn take(&self, a: Addr, size: Size, who: usize) {
        assert!(a.0 >= BASE && a.0 + size.0 <= BASE + SPAN, "{a} outside the span");
        let first = (a.0 - BASE) / Q;
        for q in first..first + size.0.div_ceil(Q) {
            if let Err(was) =
                self.0[q].compare_exchange(0, who, Ordering::AcqRel, Ordering::Acquire)
            {
                fail(&format!("{a}+{size:?}: quantum {q} already owned by {was} (now {who})"));
            }
        }
    }
    fn give(&self, a: Addr, size: Size, who: usize) {
        let first = (a.0 - BASE) / Q;
        for q in first..first + size.0.div_ceil(Q) {
            if let Err(was) =
                self.0[q].compare_exchange(who, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                fail(&format!("{a}: quantum {q} owned by {was}, not {who}"));
            }
        }
    }
}

/// A failure inside a handler must not unwind through the signal frame.
fn fail(msg: &str) -> ! {
    eprintln!("FAILURE: {msg}");
    std::process::abort();
}

// The handler's view of the test's objects (a signal handler takes no
// arguments). Set before the handler is installed, cleared after it is
// removed.
static CTX: AtomicUsize = AtomicUsize::new(0);
static IN_HANDLER: AtomicU64 = AtomicU64::new(0);
static HANDLER_OPS: AtomicU64 = AtomicU64::new(0);

struct Ctx<'a, P: CpuPin> {
    caches: &'a UserCpuCaches<'a, Store, NoSource, P>,
    shadow: &'a Shadow,
    /// The size the handler allocates (and how many at a time).
    size: Size,
    burst: usize,
}

extern "C" fn on_signal<P: CpuPin>(_: libc::c_int) {
    let p = CTX.load(Ordering::Acquire);
    if p == 0 {
        return;
    }
    // SAFETY: CTX points at a live Ctx<P> while the handler is installed.
    let ctx = unsafe { &*(p as *const Ctx<'_, P>) };
    IN_HANDLER.fetch_add(1, Ordering::Relaxed);
    let mut got = [Addr(0); 64];
    for slot in got.iter_mut().take(ctx.burst) {
        match ctx.caches.alloc(ctx.size) {
            Ok(a) => {
                ctx.shadow.take(a, ctx.size, usize::MAX);
                *slot = a;
            }
            Err(e) => fail(&format!("handler alloc: {e:?}")),
        }
    }
    for &a in got.iter().take(ctx.burst) {
        ctx.shadow.give(a, ctx.size, usize::MAX);
        if let Err(e) = ctx.caches.free(a, ctx.size) {
            fail(&format!("handler free {a}: {e:?}"));
        }
    }
    HANDLER_OPS.fetch_add(ctx.burst as u64, Ordering::Relaxed);
    IN_HANDLER.fetch_sub(1, Ordering::Relaxed);
}

fn install<P: CpuPin>(sig: libc::c_int) {
    // SAFETY: a zeroed sigaction is valid; SA_RESTART keeps the test's own
    // system calls going; the handler is an extern "C" fn.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_signal::<P> as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(sig, &sa, core::ptr::null_mut()), 0);
    }
}

fn uninstall(sig: libc::c_int) {
    // SAFETY: restoring the default action.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// A thread that sends `sig` to `target` (a pthread) every `every` until
/// `stop`.
fn pelt(target: libc::pthread_t, sig: libc::c_int, every: Duration, stop: &AtomicBool) -> u64 {
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the target thread is alive until `stop` is set (the
        // caller joins this thread before the target ends).
        unsafe { libc::pthread_kill(target, sig) };
        sent += 1;
        std::thread::sleep(every);
    }
    sent
}

/// The victim's pthread, once it has published it.
fn target(me: &AtomicUsize) -> libc::pthread_t {
    loop {
        let t = me.load(Ordering::Acquire);
        if t != 0 {
            return t as libc::pthread_t;
        }
        std::thread::yield_now();
    }
}

/// The interrupted thread: hops between CPUs, allocating and freeing
/// objects of `size` through the caches (and, with `lock_heavy`, plain
/// arena allocations that hold the arena lock).
fn victim<P: CpuPin>(
    c: &UserCpuCaches<'_, Store, NoSource, P>,
    shadow: &Shadow,
    size: Size,
    lock_heavy: bool,
    run: Duration,
) -> u64 {
    let cpus = allowed_cpus().unwrap();
    let start = Instant::now();
    let mut held: Vec<Addr> = Vec::new();
    let mut ops = 0u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while start.elapsed() < run {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if ops % 997 == 0 {
            let _ = run_only_on(cpus[(x as usize >> 5) % cpus.len()]);
        }
        if lock_heavy && x % 3 == 0 {
            // Holds the arena lock for the whole call.
            let a = c.arena().alloc(
                Size(4 * Q * 9),
                vmspace::arena::Policy::InstantFit,
                Default::default(),
            );
            if let Ok(a) = a {
                c.arena().free(a, Size(4 * Q * 9)).unwrap();
            }
        }
        if held.len() < 100 && (x % 2 == 0 || held.is_empty()) {
            let a = c.alloc(size).unwrap_or_else(|e| fail(&format!("victim alloc {e:?}")));
            shadow.take(a, size, 1);
            held.push(a);
        } else {
            let a = held.swap_remove((x as usize >> 11) % held.len());
            shadow.give(a, size, 1);
            c.free(a, size).unwrap_or_else(|e| fail(&format!("victim free {a}: {e:?}")));
        }
        ops += 1;
    }
    for a in held {
        shadow.give(a, size, 1);
        c.free(a, size).unwrap();
    }
    ops
}

#[test]
fn rseq_hits_in_a_handler_are_safe() {
    let pin = RseqPin::new();
    if !pin.uses_rseq() {
        eprintln!("no rseq here: skipped");
        return;
    }
    let s = shared();
    let c = caches(&s, pin);
    let shadow = Shadow::new();
    let hsize = Size(3 * Q);
    // Warm the handler's class on every CPU: one object alloc'd and freed
    // on each leaves a loaded magazine there, so handler calls (1 alloc, 1
    // free) always hit.
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for &cpu in &allowed_cpus().unwrap() {
                run_only_on(cpu).unwrap();
                let a = c.alloc(hsize).unwrap();
                c.free(a, hsize).unwrap();
            }
        });
    });
    let ctx = Ctx { caches: &c, shadow: &shadow, size: hsize, burst: 1 };
    CTX.store(&ctx as *const Ctx<'_, RseqPin> as usize, Ordering::Release);
    install::<RseqPin>(libc::SIGUSR1);
    let stop = &AtomicBool::new(false);
    let me = AtomicUsize::new(0);
    let (ops, sent) = std::thread::scope(|sc| {
        let v = sc.spawn(|| {
            // SAFETY: no preconditions.
            me.store(unsafe { libc::pthread_self() } as usize, Ordering::Release);
            let ops = victim(&c, &shadow, Size(Q), false, Duration::from_secs(3));
            stop.store(true, Ordering::Relaxed);
            ops
        });
        // The victim stays joinable (its pthread_t valid) until the pelter
        // is joined.
        let t = target(&me);
        let sent = sc.spawn(move || pelt(t, libc::SIGUSR1, Duration::from_micros(50), stop)).join();
        (v.join().unwrap(), sent.unwrap())
    });
    uninstall(libc::SIGUSR1);
    CTX.store(0, Ordering::Release);
    eprintln!(
        "victim ops {ops}, signals sent {sent}, handler ops {}",
        HANDLER_OPS.load(Ordering::Relaxed)
    );
    assert!(HANDLER_OPS.load(Ordering::Relaxed) > 100, "too few signals handled");
    drop(c);
    s.check().unwrap();
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "objects lost");
}
