//! Round 26: `Arena::flushed` now takes segments off the unflushed list one
//! at a time, so a source that panics in a give-back part way through
//! leaves the segments made free before it free in the arena. Space came
//! back, yet `SyncArena::flushed` (and `reclaim`) wake waiters only after
//! the whole call returns: a thread waiting for exactly that space is not
//! woken by the call that freed it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::sync::{SpinLock, SyncArena, Wait};
use vmspace::{Addr, Range, Size};
use vmspace_user::CondvarWaiter;

static PANICKY: AtomicBool = AtomicBool::new(false);

/// Two spans of 0x1000, then no more room; give-backs panic on demand.
struct TwoSpans {
    left: usize,
    next: usize,
}

impl Source for TwoSpans {
    fn quantum(&self) -> Size {
        Size(0x1000)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if self.left == 0 {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        self.left -= 1;
        let base = self.next.div_ceil(align.0) * align.0;
        self.next = base + size.0 + 0x10_0000;
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        if PANICKY.load(Ordering::SeqCst) {
            panic!("give-back panics (test)");
        }
        self.left += 1;
        Ok(())
    }
}

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// Span A holds a1 and a2, span B holds b1; a1 and b1 are freed deferred
/// (a1 last, so first on the list). A thread waits (up to 3 s) for a1's
/// room. `flushed()` frees a1 (span A keeps a2: the room stays in the
/// arena), then gives span B back: the source panics. The waiter should be
/// woken by the space that came back, not sleep out its timeout.
#[test]
fn a_flushed_that_panics_after_freeing_space_wakes_no_waiter() {
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let a = Arena::new(
        "w",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        TwoSpans { left: 2, next: 0x10_0000 },
    )
    .unwrap();
    let s: SyncArena<SpinLock, CondvarWaiter, _, _> = SyncArena::new(a);
    let a1 = s.alloc(Size(0x800), Policy::FirstFit, Wait::No).unwrap();
    let _a2 = s.alloc(Size(0x800), Policy::FirstFit, Wait::No).unwrap();
    let b1 = s.alloc(Size(0x1000), Policy::FirstFit, Wait::No).unwrap();
    assert!(s.alloc(Size(0x800), Policy::FirstFit, Wait::No).is_err(), "full");
    s.free_deferred(b1, Size(0x1000)).unwrap();
    s.free_deferred(a1, Size(0x800)).unwrap();
    let woke_after = thread::scope(|sc| {
        let w = sc.spawn(|| {
            let r = s.alloc(Size(0x800), Policy::FirstFit, Wait::Timeout(Duration::from_secs(20)));
            (r, Instant::now())
        });
        while s.waiting() == 0 {
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(50)); // asleep in the waiter
        PANICKY.store(true, Ordering::SeqCst);
        let flushed_at = Instant::now();
        assert!(catch_unwind(AssertUnwindSafe(|| s.flushed())).is_err(), "the source panicked");
        PANICKY.store(false, Ordering::SeqCst);
        s.check().unwrap();
        let (r, done) = w.join().unwrap();
        assert_eq!(r, Ok(a1), "the waiter got a1's room in the end");
        done - flushed_at
    });
    assert!(
        // A liveness bound, far from the waiter's own 20 s timeout.
        woke_after < Duration::from_secs(10),
        "space came back to the arena at the flush, but the waiter slept {woke_after:?} \
         (its timeout) before taking it"
    );
}
