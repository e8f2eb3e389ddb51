//! Round 28 (outside reviewer): `SyncArena` entry points whose give-back
//! reaches a source that panics in `release` (after taking the range back),
//! with a waiter asleep for that very space: the call unwinds, the lock is
//! released, the waiter wakes (within a generous 10 s) and gets the space
//! from the source, `waiting()` returns to 0, and `check()` passes.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, SpinLock, SyncArena, Wait, Waiter};
use vmspace::{Addr, Range, Size};
use vmspace_user::CondvarWaiter;

thread_local! {
    /// Releases on this thread panic after taking the range back.
    static PANIC_RELEASE: Cell<bool> = const { Cell::new(false) };
}

const SPAN: usize = 0x1_0000;
const BASE: usize = 0x4000_0000;

/// One range at `BASE` of up to `SPAN` bytes (as asked), out once at a
/// time; `release` takes it back, then panics on a thread that asked.
struct OneRange {
    out: bool,
}

impl Source for OneRange {
    fn quantum(&self) -> Size {
        Size(0x1000)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        if self.out || size.0 > SPAN {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        self.out = true;
        Ok(Range::from_size(Addr(BASE), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        assert_eq!(r.base(), Addr(BASE));
        self.out = false;
        if PANIC_RELEASE.with(|p| p.get()) {
            panic!("release panics (test)");
        }
        Ok(())
    }
}

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes, for the slice's lifetime.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

type A<'a> = SyncArena<SpinLock, CondvarWaiter, SliceStore<'a>, OneRange>;

/// With a waiter asleep for the whole range (Timeout 60 s, or Forever),
/// run `give_back` with releases panicking on this thread; the waiter must
/// get the range within 10 s of the panic.
fn with_waiter(s: &A<'_>, forever: bool, what: &str, give_back: impl FnOnce()) {
    thread::scope(|sc| {
        let w = sc.spawn(|| {
            let wait = if forever { Wait::Forever } else { Wait::Timeout(Duration::from_secs(60)) };
            let r = s.alloc(Size(SPAN), Policy::FirstFit, wait);
            (r, Instant::now())
        });
        let t = Instant::now();
        while s.waiting() != 1 {
            assert!(t.elapsed() < Duration::from_secs(10), "{what}: no waiter");
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(20));
        PANIC_RELEASE.with(|p| p.set(true));
        let r = catch_unwind(AssertUnwindSafe(give_back));
        PANIC_RELEASE.with(|p| p.set(false));
        let at = Instant::now();
        assert!(r.is_err(), "{what}: the release did not panic");
        // The lock is free.
        s.check().unwrap_or_else(|e| panic!("{what}: check {e:?}"));
        // Bounded join: if the waiter never wakes, fail instead of hanging
        // (a Forever waiter is then freed by a later free).
        let t = Instant::now();
        while !w.is_finished() {
            if t.elapsed() > Duration::from_secs(10) {
                // Unblock it so the scope can end, then fail.
                s.wake_waiters();
                let _ = s.with(|a| a.sizes());
                panic!("{what}: waiter still asleep 10 s after the panic");
            }
            thread::sleep(Duration::from_millis(5));
        }
        let (r, woke) = w.join().unwrap();
        let x = r.unwrap_or_else(|e| panic!("{what}: waiter got {e:?}"));
        assert_eq!(x, Addr(BASE), "{what}");
        assert!(woke.duration_since(at) < Duration::from_secs(10), "{what}");
        s.free(x, Size(SPAN)).unwrap();
    });
    assert_eq!(s.waiting(), 0, "{what}: waiting()");
    s.check().unwrap();
}

fn new_arena<'a>(t: &'a mut [u64], h: &'a mut [u64]) -> A<'a> {
    let a = Arena::new(
        "r28",
        Size(16),
        SliceStore::new(bytes(t)),
        SliceStore::new(bytes(h)),
        OneRange { out: false },
    )
    .unwrap();
    SyncArena::new(a)
}

#[test]
fn free_with_panicking_release_wakes_waiter() {
    for forever in [false, true] {
        let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let s = new_arena(&mut t, &mut h);
        let x = s.alloc(Size(0x100), Policy::FirstFit, Wait::No).unwrap();
        with_waiter(&s, forever, "free", || {
            let _ = s.free(x, Size(0x100));
        });
    }
}

#[test]
fn free_handle_with_panicking_release_wakes_waiter() {
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let s = new_arena(&mut t, &mut h);
    let hd = s.with(|a| a.alloc_handle(Size(0x100), Policy::FirstFit)).unwrap();
    with_waiter(&s, false, "free_handle", || {
        let _ = s.free_handle(hd);
    });
    let hd = s.with(|a| a.alloc_handle(Size(0x100), Policy::FirstFit)).unwrap();
    let (addr, tag) = (hd.addr(), hd.tag());
    with_waiter(&s, true, "free_handle_parts", || {
        let _ = s.free_handle_parts(addr, tag);
    });
}

#[test]
fn flushed_with_panicking_release_wakes_waiter() {
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let s = new_arena(&mut t, &mut h);
    let x = s.alloc(Size(0x100), Policy::FirstFit, Wait::No).unwrap();
    s.free_deferred(x, Size(0x100)).unwrap();
    with_waiter(&s, false, "flushed", || {
        s.flushed();
    });
}

#[test]
fn reclaim_with_panicking_release_stays_consistent() {
    for forever in [false, true] {
        let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let mut q = vec![0u64; 1 << 13];
        let a = Arena::new(
            "r28q",
            Size(16),
            SliceStore::new(bytes(&mut t)),
            SliceStore::new(bytes(&mut h)),
            OneRange { out: false },
        )
        .unwrap();
        let s: A<'_> =
            SyncArena::with_quantum_caches(a, QCacheConfig::new(4, SliceStore::new(bytes(&mut q))))
                .unwrap();
        {
            let mut c = CacheHandle::new(&s);
            let objs: Vec<Addr> = (0..10).map(|_| c.alloc(Size(32)).unwrap()).collect();
            for o in objs {
                c.free(o, Size(32)).unwrap();
            }
        }
        // The slab is wholly free (objects in the depot). A waiter's own
        // retry would reclaim it first (on its thread), so no waiter here:
        // the reclaim's give-back panics; the arena and caches must stay
        // consistent and usable.
        let _ = forever;
        PANIC_RELEASE.with(|p| p.set(true));
        let r = catch_unwind(AssertUnwindSafe(|| s.reclaim()));
        PANIC_RELEASE.with(|p| p.set(false));
        assert!(r.is_err(), "reclaim's give-back did not panic");
        s.check().unwrap();
        let x = s.alloc(Size(SPAN), Policy::FirstFit, Wait::No).unwrap();
        assert_eq!(x, Addr(BASE));
        s.free(x, Size(SPAN)).unwrap();
        {
            let mut c = CacheHandle::new(&s);
            let o = c.alloc(Size(32)).unwrap();
            assert!(o.0 >= BASE && o.0 < BASE + SPAN);
            c.free(o, Size(32)).unwrap();
        }
        s.reclaim();
        s.check().unwrap();
        assert_eq!(s.qcache_stats().slabs, 0);
    }
}

/// A second waiter on a smaller size, both asleep; the panicking free must
/// wake both (one takes the range, the other times out or gets it later).
#[test]
fn two_waiters_both_wake_after_panicking_free() {
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let s = new_arena(&mut t, &mut h);
    let x = s.alloc(Size(SPAN), Policy::FirstFit, Wait::No).unwrap();
    thread::scope(|sc| {
        let ws: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    let r = s.alloc(
                        Size(0x800),
                        Policy::FirstFit,
                        Wait::Timeout(Duration::from_secs(60)),
                    );
                    (r, Instant::now())
                })
            })
            .collect();
        let t = Instant::now();
        while s.waiting() != 2 {
            assert!(t.elapsed() < Duration::from_secs(10));
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(20));
        PANIC_RELEASE.with(|p| p.set(true));
        let r = catch_unwind(AssertUnwindSafe(|| s.free(x, Size(SPAN))));
        PANIC_RELEASE.with(|p| p.set(false));
        let at = Instant::now();
        assert!(r.is_err());
        let mut got = Vec::new();
        for w in ws {
            let (r, woke) = w.join().unwrap();
            let a = r.unwrap();
            assert!(woke.duration_since(at) < Duration::from_secs(10));
            got.push(a);
        }
        assert_ne!(got[0], got[1]);
        for a in got {
            s.free(a, Size(0x800)).unwrap();
        }
    });
    assert_eq!(s.waiting(), 0);
    s.check().unwrap();
}

/// "Space that `f` gives back ... wakes no waiting allocation by itself":
/// a `with` that returns normally (the guard forgotten) moves no epoch,
/// even with a waiter asleep; `wake_waiters` then does, and the waiter
/// gets the space.
#[test]
fn with_returning_normally_wakes_no_one() {
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let s = new_arena(&mut t, &mut h);
    let x = s.alloc(Size(SPAN), Policy::FirstFit, Wait::No).unwrap();
    thread::scope(|sc| {
        let w = sc.spawn(|| {
            s.alloc(Size(SPAN), Policy::FirstFit, Wait::Timeout(Duration::from_secs(60)))
        });
        let t = Instant::now();
        while s.waiting() != 1 {
            assert!(t.elapsed() < Duration::from_secs(10));
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(20));
        let e0 = s.waiter().epoch();
        for _ in 0..100 {
            s.with(|a| a.sizes());
        }
        let e1 = s.waiter().epoch();
        // Free inside `with`: the span goes back to the source; no wake.
        s.with(|a| a.free(x, Size(SPAN))).unwrap();
        let e2 = s.waiter().epoch();
        assert_eq!((e0, e0), (e1, e2), "a normal return from with() woke the waiters");
        s.wake_waiters();
        let r = w.join().unwrap();
        assert_eq!(r, Ok(Addr(BASE)));
        s.free(Addr(BASE), Size(SPAN)).unwrap();
    });
    assert_eq!(s.waiting(), 0);
    s.check().unwrap();
}

/// A child `SyncArena` importing from a parent `SyncArena` (`&SyncArena`
/// as its source); the parent's own source panics in `release` when the
/// child's free cascades down. Both locks are released, both arenas check,
/// a waiter on the child wakes (within 10 s), and the range is live in
/// exactly one place afterwards.
#[test]
fn nested_sync_arenas_panicking_grandparent_release() {
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let parent = new_arena(&mut t, &mut h);
    let (mut t2, mut h2) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let child_arena = Arena::new(
        "child",
        Size(0x1000),
        SliceStore::new(bytes(&mut t2)),
        SliceStore::new(bytes(&mut h2)),
        &parent,
    )
    .unwrap();
    let child: SyncArena<SpinLock, CondvarWaiter, _, _> = SyncArena::new(child_arena);
    let x = child.alloc(Size(SPAN), Policy::FirstFit, Wait::No).unwrap();
    assert_eq!(x, Addr(BASE));
    thread::scope(|sc| {
        let w = sc.spawn(|| {
            let r =
                child.alloc(Size(SPAN), Policy::FirstFit, Wait::Timeout(Duration::from_secs(60)));
            (r, Instant::now())
        });
        let t = Instant::now();
        while child.waiting() != 1 {
            assert!(t.elapsed() < Duration::from_secs(10));
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(20));
        PANIC_RELEASE.with(|p| p.set(true));
        let r = catch_unwind(AssertUnwindSafe(|| child.free(x, Size(SPAN))));
        PANIC_RELEASE.with(|p| p.set(false));
        let at = Instant::now();
        assert!(r.is_err(), "the grandparent's release did not panic");
        parent.check().unwrap();
        child.check().unwrap();
        let (r, woke) = w.join().unwrap();
        let y = r.unwrap();
        assert_eq!(y, Addr(BASE));
        assert!(woke.duration_since(at) < Duration::from_secs(10));
        // Live once: in the child as an allocation, in the parent as the
        // child's span (an allocation of the parent).
        assert_eq!(child.with(|a| a.sizes().allocated), Size(SPAN));
        assert_eq!(parent.with(|a| a.sizes().allocated), Size(SPAN));
        child.free(y, Size(SPAN)).unwrap();
    });
    parent.check().unwrap();
    child.check().unwrap();
    assert_eq!(parent.with(|a| a.sizes().allocated), Size(0));
}
