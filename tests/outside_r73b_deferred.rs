//! Outside review r73b: the freed-but-not-flushed state's statistics,
//! walks, flush results, bad frees at the type's extremes, and the
//! limits (mtbf, tags) frees must not be subject to.

use vmspace::arena::{Constraints, NoSource, PageStore, SegmentKind, SegmentKinds};
use vmspace::{Addr, Arena, ArenaError, Policy, Size};
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;
fn mstore() -> MStore {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}
fn arena(q: usize) -> Arena<MStore, NoSource> {
    Arena::new("r73b", Size(q), mstore(), mstore(), NoSource).unwrap()
}

const BASE: usize = 0x10_0000;

/// Sizes, walk, lookups, live count, histogram and largest free all see an
/// unflushed segment as neither allocated nor free.
#[test]
fn statistics_and_walk_of_unflushed_segments() {
    let mut a = arena(16);
    a.add(Addr(BASE), Size(0x1000)).unwrap();
    let h = a.xalloc_handle(&Constraints::new(Size(0x35)).exact(Addr(BASE))).unwrap();
    let x = a.xalloc(&Constraints::new(Size(0x100)).exact(Addr(BASE + 0x40))).unwrap();
    let _keep = a.xalloc(&Constraints::new(Size(0x10)).exact(Addr(BASE + 0x140))).unwrap();
    let before = a.counters();
    assert_eq!(a.live(), 3);
    assert_eq!(a.free_handle_deferred(h), Ok(Size(0x35)));
    a.free_deferred(x, Size(0x100)).unwrap();
    let s = a.sizes();
    assert_eq!(s.unflushed, Size(0x140), "rounded sizes");
    assert_eq!(s.allocated, Size(0x10));
    assert_eq!(s.free, Size(0x1000 - 0x150));
    assert_eq!(s.total.0, s.allocated.0 + s.free.0 + s.unflushed.0);
    assert_eq!(a.live(), 1);
    assert_eq!(a.unflushed_segments(), 2);
    assert_eq!(a.lookup(x), None);
    assert_eq!(a.lookup_handle(h), None);
    let c = a.counters();
    assert_eq!(c.frees, before.frees + 2);
    assert_eq!(c.deferred_frees, before.deferred_frees + 2);
    assert_eq!(c.flushes, before.flushes);
    // Walk: two unflushed segments, not coalesced, requested = range size.
    let un: Vec<_> = a.walk(SegmentKinds::UNFLUSHED).collect();
    assert_eq!(un.len(), 2);
    for seg in &un {
        assert_eq!(seg.kind, SegmentKind::Unflushed);
        assert_eq!(seg.requested, seg.range.size());
        assert!(!seg.held && !seg.imported);
    }
    assert_eq!(un[0].range.base(), Addr(BASE));
    assert_eq!(un[0].range.size(), Size(0x40));
    assert_eq!(un[1].range.base(), Addr(BASE + 0x40));
    // The walk of ALL shows them in address order among the rest.
    let kinds: Vec<_> = a.walk(SegmentKinds::ALL).map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SegmentKind::Span,
            SegmentKind::Unflushed,
            SegmentKind::Unflushed,
            SegmentKind::Allocated,
            SegmentKind::Free
        ]
    );
    // Not free space: one free segment, its size the largest.
    assert_eq!(a.largest_free(), Size(0x1000 - 0x150));
    assert_eq!(a.free_histogram().iter().sum::<usize>(), 1);
    assert_eq!(a.fragmentation(), 0);
    assert!(a.contains(Addr(BASE), Size(0x40)));
    a.check().unwrap();
    // Flush: returns the rounded bytes, counts one flush, and the two
    // coalesce with each other (but not across the live one).
    assert_eq!(a.flushed(), Size(0x140));
    let c2 = a.counters();
    assert_eq!(c2.flushes, c.flushes + 1);
    assert_eq!(c2.frees, c.frees, "a flush is no free");
    let free: Vec<_> =
        a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.size().0)).collect();
    assert_eq!(free, [(BASE, 0x140), (BASE + 0x150, 0x1000 - 0x150)]);
    assert_eq!(a.unflushed_segments(), 0);
    assert_eq!(a.sizes().unflushed, Size(0));
    // Nothing unflushed: zero, no flush counted.
    assert_eq!(a.flushed(), Size(0));
    assert_eq!(a.counters().flushes, c2.flushes);
    a.check().unwrap();
}

/// Bad deferred frees at the extremes of the types: refused, and nothing
/// changes but `bad_frees` (and `lookups` for the by-address ones).
#[test]
fn bad_deferred_frees_at_the_extremes_change_nothing() {
    let mut a = arena(16);
    let mut b = arena(16);
    a.add(Addr(BASE), Size(0x1000)).unwrap();
    b.add(Addr(BASE), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
    let h = a.alloc_handle(Size(0x20), Policy::FirstFit).unwrap();
    let hb = b.alloc_handle(Size(0x20), Policy::FirstFit).unwrap();
    // b's handle names the same tag index as a's twin allocation would:
    // allocate identically in b so the tag and address can match.
    let _ = hb;
    let d = a.alloc(Size(0x30), Policy::FirstFit).unwrap();
    a.free_deferred(d, Size(0x30)).unwrap();
    let sizes = a.sizes();
    let c0 = a.counters();
    let walk0: Vec<_> = a.walk(SegmentKinds::ALL).collect();
    let mut bad = 0;
    let mut lookups = 0;
    let mut by_addr = |a: &mut Arena<MStore, NoSource>, addr: Addr, size: Size| {
        let r = a.free_deferred(addr, size);
        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{addr:?} {size:?}: {r:?}");
        bad += 1;
        lookups += 1;
    };
    by_addr(&mut a, x, Size(usize::MAX));
    by_addr(&mut a, x, Size(0));
    by_addr(&mut a, x, Size(0x21));
    by_addr(&mut a, x, Size(0x1f));
    by_addr(&mut a, Addr(usize::MAX), Size(0x20));
    by_addr(&mut a, Addr(0), Size(0x20));
    by_addr(&mut a, Addr(x.0 + 0x10), Size(0x10));
    // The unflushed one: again, by either free.
    by_addr(&mut a, d, Size(0x30));
    // The held one by address.
    by_addr(&mut a, h.addr(), Size(0x20));
    assert_eq!(
        a.free(d, Size(0x30)),
        Err(ArenaError::BadFree { addr: d, size: Size(0x30), allocated: None })
    );
    bad += 1;
    lookups += 1;
    // Handles: another arena's (same address and tag), a forged one, a
    // by-address allocation's tag.
    for hh in [
        hb,
        vmspace::arena::Handle::from_parts(h.addr(), u32::MAX, h.arena()).unwrap(),
        vmspace::arena::Handle::from_parts(h.addr(), h.tag(), h.arena() ^ 1).unwrap(),
        vmspace::arena::Handle::from_parts(Addr(h.addr().0 + 16), h.tag(), h.arena()).unwrap(),
    ] {
        let r = a.free_handle_deferred(hh);
        assert!(matches!(r, Err(ArenaError::BadHandle { .. })), "{hh:?}: {r:?}");
        bad += 1;
    }
    assert_eq!(a.sizes(), sizes);
    let c = a.counters();
    assert_eq!(c.bad_frees, c0.bad_frees + bad);
    assert_eq!(c.lookups, c0.lookups + lookups);
    assert_eq!(
        (c.frees, c.deferred_frees, c.allocs, c.failures, c.flushes),
        (c0.frees, c0.deferred_frees, c0.allocs, c0.failures, c0.flushes)
    );
    let walk: Vec<_> = a.walk(SegmentKinds::ALL).collect();
    assert_eq!(walk, walk0);
    a.check().unwrap();
    // The handle deferred, then freed again by handle: BadHandle.
    assert_eq!(a.free_handle_deferred(h), Ok(Size(0x20)));
    assert!(matches!(a.free_handle(h), Err(ArenaError::BadHandle { .. })));
    assert!(matches!(a.free_handle_deferred(h), Err(ArenaError::BadHandle { .. })));
    assert_eq!(a.flushed(), Size(0x50));
    a.free(x, Size(0x20)).unwrap();
    a.check().unwrap();
}

/// Deferred frees and flushes are frees: no injected fault (mtbf 1 fails
/// every allocating operation) stops them.
#[test]
fn mtbf_does_not_stop_deferred_frees_or_flushes() {
    let mut a = arena(16);
    a.add(Addr(BASE), Size(0x10000)).unwrap();
    let xs: Vec<_> = (0..64).map(|_| a.alloc(Size(0x10), Policy::NextFit).unwrap()).collect();
    a.set_mtbf(7, 1);
    assert!(a.alloc(Size(0x10), Policy::InstantFit).is_err());
    for (k, &x) in xs.iter().enumerate() {
        if k % 2 == 0 {
            a.free_deferred(x, Size(0x10)).unwrap();
        }
    }
    assert_eq!(a.flushed(), Size(32 * 0x10));
    for (k, &x) in xs.iter().enumerate() {
        if k % 2 == 1 {
            a.free_deferred(x, Size(0x10)).unwrap();
        }
    }
    assert_eq!(a.flushed(), Size(32 * 0x10));
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
    a.check().unwrap();
}

/// Every policy and every constraint shape, from the bottom and the top,
/// after a deferred free that leaves the only room unflushed: nothing is
/// handed out inside the unflushed range; after the flush each fits.
#[test]
fn no_policy_or_constraint_reaches_an_unflushed_range() {
    let q = 16;
    let mut a = arena(q);
    a.add(Addr(BASE), Size(0x400)).unwrap();
    let all = a.alloc(Size(0x400), Policy::NextFit).unwrap();
    a.free_deferred(all, Size(0x400)).unwrap();
    let reqs = |p: Policy, top: bool| {
        [
            Constraints::new(Size(0x10)),
            Constraints::new(Size(0x400)),
            Constraints::new(Size(0x10)).align(Size(0x100)),
            Constraints::new(Size(0x10)).align(Size(0x100)).phase(Size(0x30)),
            Constraints::new(Size(0x20)).nocross(Size(0x40)),
            Constraints::new(Size(0x10)).exact(Addr(BASE)),
            Constraints::new(Size(0x10)).exact(Addr(BASE + 0x3f0)),
            Constraints::new(Size(0x10)).min_addr(Addr(BASE + 0x100)).max_addr(Addr(BASE + 0x200)),
            Constraints::new(Size(1)).min_addr(Addr(0)).max_addr(Addr(usize::MAX)),
        ]
        .map(|c| c.policy(p).from_top(top))
    };
    for p in Policy::ALL {
        for top in [false, true] {
            for c in reqs(p, top) {
                let r = a.xalloc(&c);
                assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{c:?}: {r:?}");
                let r = a.xalloc_handle(&c);
                assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{c:?}: {r:?}");
            }
            let r = a.alloc(Size(1), p);
            assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{p:?}: {r:?}");
            let r = a.alloc_handle(Size(1), p);
            assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{p:?}: {r:?}");
        }
    }
    a.check().unwrap();
    assert_eq!(a.flushed(), Size(0x400));
    for p in Policy::ALL {
        for top in [false, true] {
            for c in reqs(p, top) {
                let x = a.xalloc(&c).unwrap_or_else(|e| panic!("{c:?}: {e:?}"));
                a.free_deferred(x, c.size()).unwrap();
                assert_eq!(a.flushed(), a.quantum().max(Size(c.size().0.div_ceil(q) * q)));
            }
        }
    }
    a.check().unwrap();
}

/// The leak hook at drop hears each unflushed segment whole (a handle's
/// rounded segment, not its asked size) and each live allocation as asked.
#[test]
fn leak_hook_reports_unflushed_segments_whole() {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
    fn hook(_: &'static str, r: vmspace::Range) {
        SEEN.lock().unwrap().push((r.base().0, r.size().0));
    }
    {
        let mut a = arena(16);
        a.add(Addr(BASE), Size(0x1000)).unwrap();
        a.set_leak_hook(Some(hook));
        let h = a.xalloc_handle(&Constraints::new(Size(0x35)).exact(Addr(BASE))).unwrap();
        let y = a.xalloc(&Constraints::new(Size(0x21)).exact(Addr(BASE + 0x40))).unwrap();
        let z = a.xalloc(&Constraints::new(Size(0x21)).exact(Addr(BASE + 0x80))).unwrap();
        a.free_handle_deferred(h).unwrap();
        a.free_deferred(y, Size(0x21)).unwrap();
        let _ = z;
    }
    let mut seen = SEEN.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, [(BASE, 0x40), (BASE + 0x40, 0x30), (BASE + 0x80, 0x21)]);
}
