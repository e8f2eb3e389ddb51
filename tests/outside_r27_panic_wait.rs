//! Round 27 (outside reviewer): `SyncArena::with` releasing the lock and
//! waking waiters when its closure panics (`WakeOnUnwind`), with waiters
//! asleep (Forever and Timeout), imports that panic in a waiter's own retry
//! or in another thread's allocation, and cache handles' refills.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Range, Size};
use vmspace_user::CondvarWaiter;

thread_local! {
    /// Imports made on this thread panic (only the thread that sets it).
    static PANIC_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// One span of 0x1000 on demand; imports panic on threads that ask.
struct OneSpan {
    left: usize,
}

impl Source for OneSpan {
    fn quantum(&self) -> Size {
        Size(0x1000)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        if PANIC_HERE.with(|p| p.get()) {
            panic!("import panics (test)");
        }
        if self.left == 0 {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        self.left -= 1;
        Ok(Range::from_size(Addr(0x10_0000), Size(0x1000))?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        self.left += 1;
        Ok(())
    }
}

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

fn wait_for_waiters(s: &SyncArena<SpinLock, CondvarWaiter, SliceStore<'_>, OneSpan>, n: usize) {
    let t = Instant::now();
    while s.waiting() != n {
        assert!(t.elapsed() < Duration::from_secs(10), "waiting() = {} not {n}", s.waiting());
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(30));
}

/// Two waiters (Forever and Timeout) asleep; a third thread's allocation
/// asks the source, which panics; then a `with` frees and panics; then a
/// waiter's own retry import panics. The counts stay right throughout and
/// the surviving waiter gets the space freed before the panic promptly.
#[test]
fn panics_in_with_and_imports_keep_waiters_right() {
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let a = Arena::new(
        "w",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        OneSpan { left: 1 },
    )
    .unwrap();
    let s: SyncArena<SpinLock, CondvarWaiter, _, _> = SyncArena::new(a);
    let x = s.alloc(Size(0x1000), Policy::FirstFit, Wait::No).unwrap();
    // When a waiter first got x. Both waiters' timeouts are far beyond
    // anything the main thread does (which a loaded machine may delay by
    // seconds); the one not served by the free is served by a second free
    // of x once the other has it, rather than left to its timeout.
    let served_at: Mutex<Option<Instant>> = Mutex::new(None);
    let served = |r: &Result<Addr, ArenaError>| {
        if *r == Ok(x) {
            served_at.lock().unwrap().get_or_insert(Instant::now());
        }
    };
    thread::scope(|sc| {
        let forever = sc.spawn(|| {
            // Forever, but bounded for the test.
            let r = s.alloc(Size(0x1000), Policy::FirstFit, Wait::Timeout(Duration::from_secs(60)));
            let at = Instant::now();
            served(&r);
            (r, at)
        });
        let timed = sc.spawn(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let r =
                    s.alloc(Size(0x1000), Policy::FirstFit, Wait::Timeout(Duration::from_secs(30)));
                served(&r);
                r
            }))
        });
        wait_for_waiters(&s, 2);
        // A third thread's allocation: its import panics.
        let third = sc
            .spawn(|| {
                PANIC_HERE.with(|p| p.set(true));
                s.alloc(Size(0x1000), Policy::FirstFit, Wait::No)
            })
            .join();
        assert!(third.is_err(), "the import panicked");
        // Waiters were woken (the with() unwound); each retried: one or
        // both of their own imports panic now: the timed one may die.
        thread::sleep(Duration::from_millis(100));
        // Whoever is left still counted, and the lock is free.
        let left = s.waiting();
        s.check().unwrap();
        // A free inside `with` that then panics: the space must reach a
        // waiter promptly.
        let freed_at = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| {
            s.with(|a| {
                a.free(x, Size(0x1000)).unwrap();
                panic!("after the free (test)")
            })
        }));
        assert!(r.is_err());
        // Until a waiter has x (a liveness bound only); then x again for
        // the other one if it still waits.
        let waited = Instant::now();
        while served_at.lock().unwrap().is_none() && waited.elapsed() < Duration::from_secs(30) {
            thread::sleep(Duration::from_millis(1));
        }
        let first_served = *served_at.lock().unwrap();
        if first_served.is_some() && s.waiting() == 1 {
            s.free(x, Size(0x1000)).unwrap();
        }
        let t = timed.join().unwrap();
        let (f, at) = forever.join().unwrap();
        println!("waiting after the import panic: {left}; timed: {t:?}; forever: {f:?}");
        assert_eq!(left, 2, "both waiters still counted after another thread's import panicked");
        assert!(matches!(t, Ok(Ok(_)) | Ok(Err(ArenaError::NoSpace { .. }))), "{t:?}");
        let timed_got = matches!(t, Ok(Ok(a)) if a == x);
        assert!(f == Ok(x) || timed_got, "x freed but no waiter took it: {f:?} {t:?}");
        // The space freed before the panic reached a waiter promptly (a
        // liveness bound, far from the waiters' own 30 and 60 s timeouts).
        let first = first_served.expect("x freed but no waiter took it");
        assert!(first - freed_at < Duration::from_secs(10), "waiter slept {:?}", first - freed_at);
        if f == Ok(x) {
            assert!(at - freed_at < Duration::from_secs(10), "waiter slept {:?}", at - freed_at);
        }
        assert_eq!(s.waiting(), 0, "waiter count after everything");
    });
    s.check().unwrap();
}

/// Cache handles refilling through `with_caches` while the source panics,
/// with a waiter asleep on the arena: lock released, count right, and a
/// later free wakes the waiter.
#[test]
fn cache_refill_import_panic_with_waiter() {
    let (mut tb, mut hb, mut qc) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 12]);
    let a = Arena::new(
        "q",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        OneSpan { left: 1 },
    )
    .unwrap();
    let s: SyncArena<SpinLock, CondvarWaiter, _, _> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(2, SliceStore::new(bytes(&mut qc))))
            .unwrap();
    let big = s.alloc(Size(0x1000), Policy::FirstFit, Wait::No).unwrap();
    thread::scope(|sc| {
        let w = sc.spawn(|| {
            let r = s.alloc(Size(0x1000), Policy::FirstFit, Wait::Timeout(Duration::from_secs(20)));
            (r, Instant::now())
        });
        wait_for_waiters(&s, 1);
        let h = sc
            .spawn(|| {
                PANIC_HERE.with(|p| p.set(true));
                let mut h = CacheHandle::new(&s);
                h.alloc(Size(16))
            })
            .join();
        println!("handle alloc with panicking import: {:?}", h.as_ref().map_err(|_| "panicked"));
        assert_eq!(s.waiting(), 1, "the sleeping waiter still counted");
        s.check().unwrap();
        let at = Instant::now();
        s.free(big, Size(0x1000)).unwrap();
        let (r, done) = w.join().unwrap();
        assert_eq!(r, Ok(big));
        // A liveness bound, far from the waiter's own 20 s timeout.
        assert!(done - at < Duration::from_secs(10));
    });
    assert_eq!(s.waiting(), 0);
    s.check().unwrap();
}
