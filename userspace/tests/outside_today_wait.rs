//! Outside review of `SyncArena::wait_until` / `wait_for` (today): Break(Ok)
//! at once, Continue for ever with frees going on (the timeout still
//! rules), a panicking `again` (the waiter count after unwinding), a
//! timeout of zero, spurious wake-ups never ending a wait early, many
//! waiters each getting space and the count returning to zero.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::sync::Wait;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

const Q: usize = 4096;

type Shared = UserArena<PageStore<MmapBackend>, NoSource>;

/// An arena of `pages` pages, all allocated.
fn full(pages: usize) -> (Shared, Vec<Addr>) {
    let mut a = Arena::on_pages("full", Size(Q), MmapBackend::new(), 1 << 10, NoSource).unwrap();
    a.add(Addr(1 << 40), Size(pages * Q)).unwrap();
    let a = UserArena::new(a);
    let held =
        (0..pages).map(|_| a.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap()).collect();
    (a, held)
}

fn no_space(a: &Shared) -> ArenaError {
    a.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap_err()
}

#[test]
fn break_ok_at_once_ends_a_forever_wait_with_it() {
    let (a, _held) = full(1);
    let calls = Cell::new(0);
    let r = a.wait_until(Wait::Forever, Err(no_space(&a)), || {
        calls.set(calls.get() + 1);
        ControlFlow::Break(Ok(Addr(0x1234_5000)))
    });
    assert_eq!(r, Ok(Addr(0x1234_5000)));
    assert_eq!(calls.get(), 1);
    assert_eq!(a.waiting(), 0);
}

#[test]
fn a_panicking_again_leaves_no_waiter_counted_and_the_arena_usable() {
    let (a, held) = full(1);
    for wait in [Wait::Forever, Wait::Timeout(Duration::from_secs(30))] {
        let r = catch_unwind(AssertUnwindSafe(|| {
            a.wait_until(wait, Err(no_space(&a)), || panic!("again blew up"))
        }));
        assert!(r.is_err());
        assert_eq!(a.waiting(), 0, "{wait:?}");
        // wait_for's again too.
        let r = catch_unwind(AssertUnwindSafe(|| {
            a.wait_for(wait, Err(no_space(&a)), || panic!("again blew up"))
        }));
        assert!(r.is_err());
        assert_eq!(a.waiting(), 0, "{wait:?}");
    }
    // A panic after some waiting rounds, with frees waking it.
    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                a.wake_waiters();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let r = catch_unwind(AssertUnwindSafe(|| {
            a.wait_until(Wait::Forever, Err(no_space(&a)), || {
                if rounds.fetch_add(1, Ordering::SeqCst) == 5 {
                    panic!("late panic");
                }
                ControlFlow::Continue(ArenaError::NoSpace { size: Q })
            })
        }));
        stop.store(true, Ordering::SeqCst);
        assert!(r.is_err());
    });
    assert_eq!(a.waiting(), 0);
    a.free(held[0], Size(Q)).unwrap();
    assert!(a.alloc(Size(Q), Policy::InstantFit, Wait::Timeout(Duration::from_secs(1))).is_ok());
}

#[test]
fn continue_for_ever_with_frees_going_on_still_honours_the_timeout() {
    let (a, held) = full(4);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let x = held[i % 4];
                a.free(x, Size(Q)).unwrap();
                // Take it back (the waiter never takes it: it Continues).
                let y = a.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap();
                assert_eq!(y, x);
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let t0 = Instant::now();
        let calls = AtomicUsize::new(0);
        let r = a.wait_until(Wait::Timeout(Duration::from_millis(150)), Err(no_space(&a)), || {
            calls.fetch_add(1, Ordering::SeqCst);
            ControlFlow::Continue(ArenaError::NoSpace { size: 99 })
        });
        let waited = t0.elapsed();
        stop.store(true, Ordering::SeqCst);
        assert!(waited >= Duration::from_millis(150), "returned after {waited:?}");
        assert_eq!(r, Err(ArenaError::NoSpace { size: 99 }));
        assert!(calls.load(Ordering::SeqCst) >= 2);
    });
    assert_eq!(a.waiting(), 0);
}

#[test]
fn a_zero_timeout_tries_again_once_and_never_sleeps() {
    let (a, _held) = full(1);
    let calls = Cell::new(0);
    let t0 = Instant::now();
    let r = a.wait_until(Wait::Timeout(Duration::ZERO), Err(no_space(&a)), || {
        calls.set(calls.get() + 1);
        ControlFlow::Continue(ArenaError::NoSpace { size: 5 })
    });
    assert_eq!(r, Err(ArenaError::NoSpace { size: 5 }));
    assert!(calls.get() <= 1, "called {} times", calls.get());
    assert!(t0.elapsed() < Duration::from_secs(20), "a zero timeout slept");
    assert_eq!(a.waiting(), 0);
    // And the plain allocation with a zero timeout.
    let r = a.alloc(Size(Q), Policy::InstantFit, Wait::Timeout(Duration::ZERO));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })));
    assert_eq!(a.waiting(), 0);
}

#[test]
fn many_waiters_each_get_a_freed_page_and_the_count_returns_to_zero() {
    const N: usize = 12;
    let (a, held) = full(N);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    a.alloc(Size(Q), Policy::InstantFit, Wait::Timeout(Duration::from_secs(20)))
                })
            })
            .collect();
        let t0 = Instant::now();
        while a.waiting() < N && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        for &x in &held {
            a.free(x, Size(Q)).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut got: Vec<Addr> = hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
        got.sort();
        let mut want = held.clone();
        want.sort();
        assert_eq!(got, want);
    });
    assert_eq!(a.waiting(), 0);
    a.check().unwrap();
}
