//! Outside review, round 42: `KeepFree` (src/sources/keep.rs) between two
//! user-space `SyncArena`s (`UserArena`: `ParkingLock`, `CondvarWaiter`),
//! with threads that wait (`Wait::Timeout`) for space in the child.
//!
//! Held (contract checked) if it passes: every waiting allocation ends
//! with space (frees in the child wake its waiters, src/sync/arena.rs:
//! "a waiter wakes when space comes back to the arena"), the adapter's
//! books balance at the end (every span it handed out is kept or given
//! back below: `imported + reused == kept + released`, keep.rs:104-118),
//! the parent holds exactly the kept spans, and nothing once the child
//! and its adapter are dropped (keep.rs:41-42, "Drop: every kept span goes
//! back to S").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vmspace::arena::{Arena, NoSource, Policy, SliceStore};
use vmspace::sources::KeepFree;
use vmspace::sync::Wait;
use vmspace::{Addr, Size};
use vmspace_user::UserArena;

const PAGE: usize = 4096;
const SPAN: usize = 2 * PAGE; // the adapter's quantum
const SPANS: usize = 6; // the parent's room, in spans
const THREADS: usize = 4;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize % n
    }
}

fn round(seed: u64, waited: &AtomicUsize) {
    let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p = Arena::new(
        "parent",
        Size(PAGE),
        SliceStore::new(&mut pt),
        SliceStore::new(&mut ph),
        NoSource,
    )
    .unwrap();
    p.add(Addr(1 << 20), Size(SPANS * SPAN)).unwrap();
    let parent: UserArena<SliceStore<'_>, NoSource> = UserArena::new(p);
    {
        let (mut ct, mut ch) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
        let source = KeepFree::<_, 4>::new(&parent, Size(SPAN));
        let c = Arena::new(
            "child",
            Size(16),
            SliceStore::new(&mut ct),
            SliceStore::new(&mut ch),
            source,
        )
        .unwrap();
        let child = UserArena::new(c);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let child = &child;
                s.spawn(move || {
                    let mut rng = Rng(seed * 131 + t as u64 + 1);
                    let mut held: Vec<(Addr, Size)> = Vec::new();
                    for _ in 0..300 {
                        if held.len() == 2 || (!held.is_empty() && rng.below(2) == 0) {
                            let (a, n) = held.swap_remove(rng.below(held.len()));
                            child.free(a, n).unwrap();
                        } else {
                            // More than half a span: each allocation its own span.
                            let n = Size(16 * (SPAN / 32 + 1 + rng.below(SPAN / 32)));
                            let mut a = child.alloc(n, Policy::InstantFit, Wait::No);
                            if a.is_err() {
                                waited.fetch_add(1, Ordering::Relaxed);
                                let wait = Wait::Timeout(Duration::from_secs(10));
                                a = child.alloc(n, Policy::InstantFit, wait);
                            }
                            std::thread::yield_now();
                            held.push((a.unwrap_or_else(|e| panic!("{n:?}: {e}")), n));
                        }
                    }
                    for (a, n) in held {
                        child.free(a, n).unwrap();
                    }
                });
            }
        });
        child.check().unwrap();
        let (counts, kept, kept_size) = child.with(|a| {
            let k = a.source();
            k.check().unwrap();
            (k.counts(), k.kept().len(), k.kept_size())
        });
        assert_eq!(child.with(|a| a.sizes().allocated), Size(0));
        assert_eq!(counts.release_failures, 0, "{counts:?}");
        assert_eq!(counts.imported + counts.reused, counts.kept + counts.released, "{counts:?}");
        assert!(kept <= 4);
        assert_eq!(parent.with(|a| a.sizes().allocated), kept_size, "{counts:?}");
    }
    parent.check().unwrap();
    assert_eq!(parent.with(|a| a.sizes().allocated), Size(0), "all given back on drop");
}

#[test]
fn waiting_threads_over_a_keeping_adapter_keep_the_books() {
    let waited = AtomicUsize::new(0);
    for seed in 0..20 {
        round(seed, &waited);
    }
    let waited = waited.into_inner();
    eprintln!("{waited} allocations waited");
    // Not asserted (threads that happen to run one after another wait for
    // nothing): hundreds to about 2200 of the 24000 allocations waited in
    // trial runs.
}
