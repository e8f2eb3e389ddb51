//! Round 26: edges of the failure-path changes: an allocation's reclaim
//! whose slab give-back is refused or stranded, a source whose quantum
//! stops being a power of two, a panicking source while other threads
//! free, and a source asked again for a range it stranded.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use vmspace::arena::{Arena, ArenaError, Policy, SegmentKinds, SliceStore, Source};
use vmspace::qcache::{QCacheConfig, OBJECTS};
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Range, ShimError, Size};
use vmspace_shim::Op;

mod outside_panicky_source;

use outside_panicky_source::{Scripted, PANIC, PANICS_HERE, REFUSE, STRAND, TAKE};

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// `SyncArena::alloc`: on NoSpace the caches are reclaimed and the
/// allocation retried "only if a reclaim gave slabs back". A slab whose
/// span give-back is refused is freed into the arena (span re-created), so
/// the retry must find that room.
#[test]
fn an_allocations_reclaim_with_a_refused_give_back_retries_into_the_span() {
    for mode in [REFUSE, STRAND] {
        static M: AtomicU8 = AtomicU8::new(TAKE);
        M.store(mode, Ordering::SeqCst);
        let slab = 16 * OBJECTS;
        let (mut tb, mut hb, mut qc) =
            (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 14]);
        let src = Scripted::counted(slab, 1, &M);
        let a = Arena::new(
            "p",
            Size(16),
            SliceStore::new(bytes(&mut tb)),
            SliceStore::new(bytes(&mut hb)),
            src,
        )
        .unwrap();
        let s: SyncArena<SpinLock, NoWait, _, _> = SyncArena::with_quantum_caches(
            a,
            QCacheConfig::new(1, SliceStore::new(bytes(&mut qc))),
        )
        .unwrap();
        {
            let mut h = CacheHandle::new(&s);
            let o = h.alloc(Size(16)).unwrap();
            h.free(o, Size(16)).unwrap();
        }
        assert_eq!(s.qcache_stats().slabs, 1);
        let before = s.with(|a| a.counters());
        let r = s.alloc(Size(slab), Policy::InstantFit, Wait::No);
        s.check().unwrap();
        let after = s.with(|a| a.counters());
        assert_eq!(after.export_failures, before.export_failures + 1, "mode {mode}");
        match mode {
            REFUSE => {
                let x = r.unwrap_or_else(|e| panic!("refused: the re-created span is free: {e:?}"));
                s.free(x, Size(slab)).unwrap();
            }
            _ => assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "stranded: {r:?}"),
        }
        s.check().unwrap();
        assert_eq!(s.qcache_stats().slabs, 0);
    }
}

/// A source whose quantum changes after the arena was made: a
/// non-power-of-two quantum at import time is refused (InvalidArgument),
/// counted as a failure, nothing else changes.
struct Shifty {
    q: &'static std::sync::atomic::AtomicUsize,
}

impl Source for Shifty {
    fn quantum(&self) -> Size {
        Size(self.q.load(Ordering::SeqCst))
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        Ok(Range::from_size(Addr(0x100_0000), size)?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        Ok(())
    }
}

#[test]
fn a_source_quantum_that_stops_being_a_power_of_two_is_refused() {
    static Q: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0x1000);
    let (mut tb, mut hb) = (vec![0u64; 1 << 10], vec![0u64; 1 << 8]);
    let mut a = Arena::new(
        "q",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        Shifty { q: &Q },
    )
    .unwrap();
    for bad in [0usize, 3, 0x1800, usize::MAX] {
        Q.store(bad, Ordering::SeqCst);
        let (sz, c) = (a.sizes(), a.counters());
        let r = a.alloc(Size(16), Policy::InstantFit);
        assert!(matches!(r, Err(ArenaError::InvalidArgument(_))), "quantum {bad:#x}: {r:?}");
        assert_eq!(a.sizes(), sz);
        assert_eq!(a.counters().failures, c.failures + 1);
        assert_eq!(a.counters().imports, c.imports);
        a.check().unwrap();
    }
    Q.store(0x1000, Ordering::SeqCst);
    let x = a.alloc(Size(16), Policy::InstantFit).unwrap();
    a.free(x, Size(16)).unwrap();
    a.check().unwrap();
}

/// A panic in a give-back during one thread's reclaim while other threads
/// free through their handles: the lock is released, the others carry on,
/// and the arena and caches stay consistent.
#[test]
fn a_panicking_give_back_during_reclaim_with_other_threads_freeing() {
    static M: AtomicU8 = AtomicU8::new(TAKE);
    let slab = 16 * OBJECTS;
    let (mut tb, mut hb, mut qc) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 14]);
    let src = Scripted::counted(slab, 64, &M);
    let a = Arena::new(
        "p",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        src,
    )
    .unwrap();
    let s: SyncArena<SpinLock, NoWait, _, _> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(2, SliceStore::new(bytes(&mut qc))))
            .unwrap();
    // The workers free until the main thread has seen enough reclaims
    // panic (at least 200 rounds each): how soon one does depends on the
    // scheduling, so neither side stops at a fixed count.
    let stop = AtomicBool::new(false);
    // Rounds the workers finished: past the first 400 reclaims the main
    // thread reclaims again only after one more (the spin lock is not
    // fair: a main thread reclaiming in a tight loop can keep the workers
    // off it on a loaded machine, and then no slab empties, no reclaim
    // panics, and the loop runs on to its cap for minutes).
    let rounds = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        let mut ts = Vec::new();
        for w in 0..3usize {
            let (s, stop, rounds) = (&s, &stop, &rounds);
            ts.push(sc.spawn(move || {
                let mut h = CacheHandle::new(s);
                let mut round = 0;
                while round < 200 || !stop.load(Ordering::SeqCst) {
                    round += 1;
                    let mut v = Vec::new();
                    for _ in 0..(70 + w) {
                        if let Ok(x) = h.alloc(Size(16 + 16 * (round % 2))) {
                            v.push(x);
                        }
                    }
                    for x in v {
                        h.free(x, Size(16 + 16 * (round % 2))).unwrap();
                    }
                    h.flush();
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        let s = &s;
        let mut panics = 0;
        PANICS_HERE.with(|p| p.set(true));
        // At least 400 reclaims, and on until 3 of them panicked (a cap of
        // a million, far beyond what any run needs, ends a broken one).
        let mut i = 0;
        while (i < 400 || panics < 3) && i < 1_000_000 {
            M.store(if i % 3 == 0 { PANIC } else { TAKE }, Ordering::SeqCst);
            if catch_unwind(AssertUnwindSafe(|| s.reclaim())).is_err() {
                panics += 1;
            }
            M.store(TAKE, Ordering::SeqCst);
            s.check().unwrap_or_else(|e| panic!("after reclaim {i}: {e:?}"));
            i += 1;
            let seen = rounds.load(Ordering::SeqCst);
            while i >= 400
                && rounds.load(Ordering::SeqCst) == seen
                && !ts.iter().all(|t| t.is_finished())
            {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::SeqCst);
        for t in ts {
            t.join().unwrap();
        }
        eprintln!("{panics} reclaims panicked");
        PANICS_HERE.with(|p| p.set(false));
        assert!(panics > 0, "no reclaim reached a panicking give-back");
    });
    s.reclaim();
    s.check().unwrap();
    s.with(|a| {
        a.check().unwrap();
        assert_eq!(a.live(), 0);
    });
}

/// A VmSource-like scripted source: the range it strands must never be
/// handed out again by it, even to another importer.
struct Keeper {
    out: Vec<Range>,
    stranded: Vec<Range>,
    next: usize,
    strand_next: Cell<bool>,
}

impl Source for Keeper {
    fn quantum(&self) -> Size {
        Size(0x1000)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let r = Range::from_size(Addr(self.next), size)?;
        self.next += size.0;
        self.out.push(r);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        let i = self.out.iter().position(|r| *r == range).expect("release of a range not out");
        if self.strand_next.replace(false) {
            self.stranded.push(range);
            return Err(ArenaError::Stranded {
                range,
                error: ShimError::Injected { op: Op::Protect },
            });
        }
        self.out.swap_remove(i);
        Ok(())
    }
}

#[test]
fn a_stranded_span_is_not_given_back_again_at_drop() {
    let mut k =
        Keeper { out: vec![], stranded: vec![], next: 0x40_0000, strand_next: Cell::new(false) };
    {
        let (mut tb, mut hb) = (vec![0u64; 1 << 10], vec![0u64; 1 << 8]);
        let mut a = Arena::new(
            "k",
            Size(0x1000),
            SliceStore::new(bytes(&mut tb)),
            SliceStore::new(bytes(&mut hb)),
            &mut k,
        )
        .unwrap();
        let x = a.alloc(Size(0x3000), Policy::InstantFit).unwrap();
        let y = a.alloc(Size(0x2000), Policy::InstantFit).unwrap();
        a.source().strand_next.set(true);
        a.free(x, Size(0x3000)).unwrap();
        a.check().unwrap();
        assert_eq!(a.span_count(), 1);
        assert!(a.walk(SegmentKinds::SPANS).all(|s| s.range.base() != x));
        let _ = y; // dropped live: its span goes back at drop
    }
    // Drop gave back y's span only; x's stayed stranded with the source.
    assert_eq!(k.out.len(), 1, "{:?}", k.out);
    assert_eq!(k.stranded.len(), 1);
    assert_eq!(k.out[0], k.stranded[0]);
}
