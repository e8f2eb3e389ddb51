//! Outside review (round 25): Source's rustdoc (src/arena/source.rs): "A
//! source may panic; the arena is left consistent (and a SyncArena's lock
//! released) as the panic unwinds." Checked for a source whose `release`
//! panics, on every path that gives a span back: free, flushed, and the
//! quantum caches' reclaim.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};

use vmspace::arena::{Arena, Policy, SegmentKinds, SliceStore};
use vmspace::qcache::{QCacheConfig, OBJECTS};
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};

mod outside_panicky_source;

use outside_panicky_source::{Scripted, PANIC, TAKE};

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// Run `f`, catching the source's panic (its message is printed).
fn quiet<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(f))
}

/// A panic in `release` during a free: the arena stays consistent (the
/// span stays, free, as if refused).
#[test]
fn a_release_panicking_in_free_leaves_the_arena_consistent() {
    static P: AtomicU8 = AtomicU8::new(TAKE);
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let src = Scripted::panicky(0x1000, &P);
    let mut a = Arena::new(
        "p",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        src,
    )
    .unwrap();
    let x = a.alloc(Size(0x100), Policy::InstantFit).unwrap();
    P.store(PANIC, Ordering::SeqCst);
    assert!(quiet(|| a.free(x, Size(0x100))).is_err());
    P.store(TAKE, Ordering::SeqCst);
    a.check().unwrap();
    let t = a.sizes();
    assert_eq!(t.total.0, t.allocated.0 + t.free.0 + t.unflushed.0);
}

/// A panic in `release` during `flushed()`: the unflushed segments not yet
/// processed must stay accounted for (on the unflushed list, or free), and
/// `check()` must pass.
///
/// `flushed` empties the unflushed list (head NIL, count 0) before it walks
/// it; a panic in the first span's give-back leaves every later segment
/// unflushed but on no list: `check()` reports corruption and no later
/// `flushed()` ever frees them.
#[test]
fn a_release_panicking_in_flushed_leaves_the_arena_consistent() {
    static P: AtomicU8 = AtomicU8::new(TAKE);
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let src = Scripted::panicky(0x1000, &P);
    let mut a = Arena::new(
        "p",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        src,
    )
    .unwrap();
    // Three imported spans, each wholly taken by one allocation.
    let xs: Vec<Addr> =
        (0..3).map(|_| a.alloc(Size(0x1000), Policy::InstantFit).unwrap()).collect();
    assert_eq!(a.span_count(), 3);
    for &x in &xs {
        a.free_deferred(x, Size(0x1000)).unwrap();
    }
    a.check().unwrap();
    P.store(PANIC, Ordering::SeqCst);
    assert!(quiet(|| a.flushed()).is_err(), "the source panicked");
    P.store(TAKE, Ordering::SeqCst);
    let check = a.check();
    let unflushed_walked = a.walk(SegmentKinds::UNFLUSHED).count();
    eprintln!(
        "after the panic: check {check:?}; unflushed segments in the walk {unflushed_walked}, \
         on the list {}; sizes {:?}",
        a.unflushed_segments(),
        a.sizes()
    );
    assert_eq!(check, Ok(()), "a panicking source left the arena inconsistent");
    // And the rest can still be flushed back.
    a.flushed();
    assert_eq!(a.walk(SegmentKinds::UNFLUSHED).count(), 0, "unflushed segments stranded");
}

/// A panic in `release` while `SyncArena::reclaim` gives a wholly free slab
/// back: the lock is released (the next call does not deadlock), and the
/// arena and its caches stay consistent: in particular no range is both
/// free in the arena and a registered slab whose objects the caches hand
/// out.
#[test]
fn a_release_panicking_in_reclaim_leaves_the_caches_consistent() {
    static P: AtomicU8 = AtomicU8::new(TAKE);
    let (mut tb, mut hb, mut qc) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 14]);
    let slab = 16 * OBJECTS; // class 0's slab: one import each
    let src = Scripted::panicky(slab, &P);
    let a = Arena::new(
        "p",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        src,
    )
    .unwrap();
    let s: SyncArena<SpinLock, NoWait, _, _> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(1, SliceStore::new(bytes(&mut qc))))
            .unwrap();
    {
        let mut h = CacheHandle::new(&s);
        let o = h.alloc(Size(16)).unwrap();
        h.free(o, Size(16)).unwrap();
    } // flushed: every object back in its slab, which is wholly free
    assert_eq!(s.qcache_stats().slabs, 1);
    s.check().unwrap();
    P.store(PANIC, Ordering::SeqCst);
    assert!(quiet(|| s.reclaim()).is_err(), "the source panicked");
    P.store(TAKE, Ordering::SeqCst);
    // The lock was released.
    let check = s.check();
    let st = s.qcache_stats();
    eprintln!("after the panic: check {check:?}; {st:?}");
    // Show the consequence: the arena hands out the slab's range while the
    // caches still hand out its objects.
    let big = s.alloc(Size(slab), Policy::FirstFit, Wait::No);
    let mut h = CacheHandle::new(&s);
    let obj = h.alloc(Size(16));
    eprintln!("arena allocation {big:?}, cached object {obj:?}");
    if let (Ok(b), Ok(o)) = (big, obj) {
        assert!(
            !(b.0 <= o.0 && o.0 < b.0 + slab),
            "double allocation: object {o:?} lies inside arena allocation {b:?}"
        );
    }
    assert_eq!(check, Ok(()), "a panicking source left the caches inconsistent");
}

/// A chain: a child arena imports from a parent arena (shared through a
/// RefCell), which imports from a source whose `release` panics. The
/// child's free gives its span back (`parent.free`), the parent's own
/// give-back panics: the parent has already freed the range, but the child
/// keeps it as its span. Each arena passes `check()`, yet both hand the same
/// range out at once.
#[test]
fn a_release_panicking_under_a_parent_arena_leaves_one_range_in_two_arenas() {
    static P: AtomicU8 = AtomicU8::new(TAKE);
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let (mut tc, mut hc) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let src = Scripted::panicky(0x1000, &P);
    let parent = std::cell::RefCell::new(
        Arena::new(
            "parent",
            Size(16),
            SliceStore::new(bytes(&mut tb)),
            SliceStore::new(bytes(&mut hb)),
            src,
        )
        .unwrap(),
    );
    let mut child = Arena::new(
        "child",
        Size(16),
        SliceStore::new(bytes(&mut tc)),
        SliceStore::new(bytes(&mut hc)),
        &parent,
    )
    .unwrap();
    let x = child.alloc(Size(0x1000), Policy::InstantFit).unwrap();
    P.store(PANIC, Ordering::SeqCst);
    assert!(quiet(|| child.free(x, Size(0x1000))).is_err(), "the source panicked");
    P.store(TAKE, Ordering::SeqCst);
    child.check().unwrap();
    parent.borrow().check().unwrap();
    let in_child = child.alloc(Size(0x1000), Policy::InstantFit).unwrap();
    let in_parent = parent.borrow_mut().alloc(Size(0x1000), Policy::InstantFit).unwrap();
    eprintln!(
        "child spans {}, child live {}; child got {in_child:?}, parent got {in_parent:?}",
        child.span_count(),
        child.live()
    );
    assert_ne!(in_child, in_parent, "the same range live in the child and in its parent");
}

/// The same, reached without calling reclaim: an allocation that finds no
/// space reclaims the caches first (SyncArena::alloc's docs), and the
/// source's give-back of the emptied slab panics.
#[test]
fn a_release_panicking_in_an_allocations_reclaim_leaves_the_caches_consistent() {
    static P: AtomicU8 = AtomicU8::new(TAKE);
    let (mut tb, mut hb, mut qc) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 14]);
    let slab = 16 * OBJECTS;
    let src = Scripted::panicky(slab, &P);
    let a = Arena::new(
        "p",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        src,
    )
    .unwrap();
    let s: SyncArena<SpinLock, NoWait, _, _> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(1, SliceStore::new(bytes(&mut qc))))
            .unwrap();
    {
        let mut h = CacheHandle::new(&s);
        let o = h.alloc(Size(16)).unwrap();
        h.free(o, Size(16)).unwrap();
    }
    P.store(PANIC, Ordering::SeqCst);
    // Too big for the source: NoSpace, so the caches are reclaimed first.
    assert!(
        quiet(|| s.alloc(Size(0x20_0000), Policy::InstantFit, Wait::No)).is_err(),
        "the source panicked"
    );
    P.store(TAKE, Ordering::SeqCst);
    assert_eq!(s.check(), Ok(()), "a panicking source left the caches inconsistent");
}
