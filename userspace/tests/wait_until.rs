//! `SyncArena::wait_until`: the wait whose `again` decides when it ends.
//! `Break` ends it at once with its result, even a `NoSpace` under
//! `Wait::Forever` (how the C API's waits change to polling); `Continue`
//! waits on, and the last failure it gave is the result when time runs out;
//! a free wakes it. The waiter count goes back to zero however it ends.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::sync::Wait;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

const Q: usize = 4096;

type Shared = UserArena<PageStore<MmapBackend>, NoSource>;

/// A one-page arena with its page allocated.
fn full() -> (Shared, Addr) {
    let mut a = Arena::on_pages("full", Size(Q), MmapBackend::new(), 1 << 10, NoSource).unwrap();
    a.add(Addr(1 << 40), Size(Q)).unwrap();
    let a = UserArena::new(a);
    let held = a.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap();
    (a, held)
}

fn no_space(a: &Shared) -> ArenaError {
    a.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap_err()
}

#[test]
fn break_with_no_space_ends_a_forever_wait_at_once() {
    let (a, _held) = full();
    let first = Err(no_space(&a));
    let calls = Cell::new(0);
    let t0 = Instant::now();
    let r = a.wait_until(Wait::Forever, first, || {
        calls.set(calls.get() + 1);
        ControlFlow::Break(Err(ArenaError::NoSpace { size: 7 }))
    });
    assert_eq!(r, Err(ArenaError::NoSpace { size: 7 }));
    assert_eq!(calls.get(), 1, "again is called once, at once");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(a.waiting(), 0);
}

#[test]
fn continue_waits_until_the_timeout_and_returns_its_last_failure() {
    let (a, _held) = full();
    let first = Err(no_space(&a));
    let calls = Cell::new(0usize);
    let t0 = Instant::now();
    let r = a.wait_until(Wait::Timeout(Duration::from_millis(50)), first, || {
        calls.set(calls.get() + 1);
        ControlFlow::Continue(ArenaError::NoSpace { size: calls.get() })
    });
    assert!(t0.elapsed() >= Duration::from_millis(50), "returned before its timeout");
    assert_eq!(r, Err(ArenaError::NoSpace { size: calls.get() }));
    assert!(calls.get() >= 2, "tried at once and once more at the timeout");
    assert_eq!(a.waiting(), 0);
}

#[test]
fn a_first_result_that_is_not_no_space_is_returned_without_calling_again() {
    let (a, held) = full();
    for first in [Ok(Addr(4096)), Err(ArenaError::SourceBusy)] {
        let r = a.wait_until(Wait::Forever, first, || panic!("again called"));
        assert_eq!(r, first);
    }
    let _ = held;
}

#[test]
fn a_free_wakes_a_continuing_wait_which_breaks_with_the_space() {
    let (a, held) = full();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let attempt = || a.alloc(Size(Q), Policy::InstantFit, Wait::No);
            a.wait_until(Wait::Timeout(Duration::from_secs(20)), attempt(), || match attempt() {
                Err(e @ ArenaError::NoSpace { .. }) => ControlFlow::Continue(e),
                r => ControlFlow::Break(r),
            })
        });
        while a.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let t0 = Instant::now();
        a.free(held, Size(Q)).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(held));
        assert!(t0.elapsed() < Duration::from_secs(10), "woken by the free, not the timeout");
    });
    assert_eq!(a.waiting(), 0);
}
