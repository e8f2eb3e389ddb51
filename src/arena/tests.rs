//! Unit tests of the arena as a whole (the parts have their own beside them).

extern crate std;

use core::cell::RefCell;
use std::vec;
use std::vec::Vec;

use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Range, Size};

use super::*;
use crate::sources::VmSource;

pub(super) const TAGS: usize = 64 << 10;

pub(super) fn slice_arena<'a>(
    tb: &'a mut [u8],
    hb: &'a mut [u8],
    quantum: usize,
) -> Arena<SliceStore<'a>, NoSource> {
    Arena::new("t", Size(quantum), SliceStore::new(tb), SliceStore::new(hb), NoSource).unwrap()
}

#[test]
fn alloc_free_coalesce_and_sizes() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(10), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(32), Policy::InstantFit).unwrap();
    let z = a.alloc(Size(16), Policy::FirstFit).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(16 + 32 + 16));
    assert_eq!(a.sizes().total, Size(0x1000));
    assert_eq!(a.live(), 3);
    assert_eq!(a.lookup(x), Some((Range::from_size(x, Size(16)).unwrap(), Size(10))));
    // Bad frees change nothing.
    let before = a.sizes();
    assert!(matches!(a.free(x, Size(16)), Err(ArenaError::BadFree { allocated: Some(_), .. })));
    assert!(matches!(a.free(Addr(0x5000), Size(16)), Err(ArenaError::BadFree { .. })));
    assert_eq!(a.sizes(), before);
    assert_eq!(a.counters().bad_frees, 2);
    a.check().unwrap();
    a.free(y, Size(32)).unwrap();
    a.free(x, Size(10)).unwrap();
    a.free(z, Size(16)).unwrap();
    a.check().unwrap();
    // Everything coalesced back into one free segment.
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
    assert_eq!(a.largest_free(), Size(0x1000));
    assert_eq!(a.fragmentation(), 0);
    assert!(a.free(x, Size(10)).is_err(), "double free");
}

#[test]
fn spans_add_extend_never_coalesce_across() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(100), Size(100)).unwrap();
    a.add(Addr(300), Size(100)).unwrap();
    assert!(matches!(a.add(Addr(150), Size(10)), Err(ArenaError::SpanOverlap(_))));
    assert!(matches!(a.add(Addr(50), Size(51)), Err(ArenaError::SpanOverlap(_))));
    a.add(Addr(200), Size(100)).unwrap(); // adjacent on both sides: still three spans
    a.check().unwrap();
    assert_eq!(a.span_count(), 3);
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 3);
    assert!(a.alloc(Size(150), Policy::InstantFit).is_err());
    // Extend: grow up, grow down, bridge.
    assert!(matches!(a.extend(Addr(1000), Size(10)), Err(ArenaError::NotAdjacent(_))));
    a.extend(Addr(400), Size(50)).unwrap();
    a.extend(Addr(90), Size(10)).unwrap();
    a.check().unwrap();
    a.add(Addr(500), Size(10)).unwrap();
    a.extend(Addr(450), Size(50)).unwrap(); // bridges [300,450) and [500,510)
    a.check().unwrap();
    assert_eq!(a.span_count(), 3);
    assert_eq!(a.sizes().total, Size(10 + 100 + 100 + 210));
    let big = a.alloc(Size(210), Policy::BestFit).unwrap();
    assert_eq!(big, Addr(300));
    a.check().unwrap();
    assert!(a.contains(Addr(90), Size(110)));
    assert!(!a.contains(Addr(90), Size(111)));
}

#[test]
fn policies_pick_as_documented() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(1000)).unwrap();
    // Make holes of 50 at 100, 20 at 300, 30 at 600.
    let mut held = Vec::new();
    for (base, size) in [(0, 100), (150, 150), (320, 280), (630, 370)] {
        let x = a.xalloc(&Constraints::new(Size(size)).exact(Addr(base))).unwrap();
        assert_eq!(x, Addr(base));
        held.push((x, size));
    }
    a.check().unwrap();
    assert_eq!(a.alloc(Size(20), Policy::BestFit).unwrap(), Addr(300));
    assert_eq!(a.alloc(Size(10), Policy::FirstFit).unwrap(), Addr(100));
    let top = a.xalloc(&Constraints::new(Size(5)).policy(Policy::FirstFit).from_top(true)).unwrap();
    assert_eq!(top, Addr(625));
    a.check().unwrap();
    // Next fit cycles: each allocation starts after the previous one.
    let n1 = a.alloc(Size(1), Policy::NextFit).unwrap();
    let n2 = a.alloc(Size(1), Policy::NextFit).unwrap();
    assert_eq!(n2.0, n1.0 + 1);
    a.free(n1, Size(1)).unwrap();
    let n3 = a.alloc(Size(1), Policy::NextFit).unwrap();
    assert_eq!(n3.0, n2.0 + 1, "next fit does not reuse the address just freed");
    a.check().unwrap();
}

#[test]
fn constrained_allocations_satisfy_their_constraints() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 16);
    a.add(Addr(0x10000), Size(0x10000)).unwrap();
    for policy in Policy::ALL {
        for top in [false, true] {
            let c = Constraints::new(Size(0x30))
                .align(Size(0x100))
                .phase(Size(0x40))
                .nocross(Size(0x200))
                .min_addr(Addr(0x12345))
                .max_addr(Addr(0x18000))
                .policy(policy)
                .from_top(top);
            let x = a.xalloc(&c).unwrap();
            assert_eq!(x.0 % 0x100, 0x40);
            assert!(x.0 >= 0x12345 && x.0 + 0x30 <= 0x18000);
            assert_eq!(x.0 / 0x200, (x.0 + 0x2f) / 0x200);
            a.check().unwrap();
        }
    }
    let c = Constraints::new(Size(0x30)).min_addr(Addr(0x30000));
    assert!(matches!(a.xalloc(&c), Err(ArenaError::NoSpace { .. })));
    let c = Constraints::new(Size(0x300)).nocross(Size(0x200));
    assert!(matches!(a.xalloc(&c), Err(ArenaError::OverConstrained(_))));
    a.check().unwrap();
}

#[test]
fn tag_exhaustion_fails_cleanly() {
    // Room for the arena's own tags + a span (2) + a handful of segments.
    let (mut tb, mut hb) = (vec![0u8; TAG_BYTES * (BASE_TAGS + 11) + 8], vec![0u8; 256]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(1000)).unwrap();
    let mut got = Vec::new();
    let err = loop {
        match a.xalloc(&Constraints::new(Size(1)).align(Size(4)).policy(Policy::FirstFit)) {
            Ok(x) => got.push(x),
            Err(e) => break e,
        }
        a.check().unwrap();
    };
    assert_eq!(err, ArenaError::TagsExhausted);
    let sizes = a.sizes();
    a.check().unwrap();
    for x in got {
        a.free(x, Size(1)).unwrap();
        a.check().unwrap();
    }
    assert_eq!(sizes.total, a.sizes().total);
    assert_eq!(a.sizes().allocated, Size(0));
}

#[test]
fn page_stores_grow_and_hash_doubles() {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    {
        let mut a = Arena::on_pages("pages", Size(8), &sim, 100_000, NoSource).unwrap();
        a.add(Addr(0x100000), Size(0x1000000)).unwrap();
        let mut xs = Vec::new();
        for i in 0..20_000 {
            xs.push((a.alloc(Size(8 + (i % 5) * 8), Policy::InstantFit).unwrap(), 8 + (i % 5) * 8));
        }
        a.check().unwrap();
        assert!(a.hash.buckets() * 2 >= a.live());
        assert!(sim.stats().mapped_pages > 10);
        for (x, s) in xs.drain(..).rev() {
            a.free(x, Size(s)).unwrap();
        }
        a.check().unwrap();
        assert_eq!(a.walk(SegmentKinds::ALL).count(), 2);
    }
    assert_eq!(sim.stats().reservations, 0, "stores released their pages");
}

#[test]
fn import_chain_gives_spans_back() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let vm = crate::vm::Vm::reserve(&sim, Size(1 << 20), Size(1 << 16)).unwrap();
    let vms = VmSource::new(
        vm,
        PageStore::new(&sim, Size(1 << 16)).unwrap(),
        PageStore::new(&sim, Size(1 << 12)).unwrap(),
    )
    .unwrap();
    let parent = RefCell::new(Arena::on_pages("parent", Size(4096), &sim, 4096, vms).unwrap());
    let mut child = Arena::on_pages("child", Size(64), &sim, 4096, &parent).unwrap();
    let x = child.alloc(Size(100), Policy::InstantFit).unwrap();
    let y = child.xalloc(&Constraints::new(Size(64)).align(Size(8192))).unwrap();
    assert_eq!(y.0 % 8192, 0);
    assert_eq!(child.counters().imports, 2);
    child.check().unwrap();
    parent.borrow().check().unwrap();
    parent.borrow().source().check().unwrap();
    assert!(parent.borrow().source().vm().mapped().0 >= 8192);
    // SAFETY-free check that imported memory is really mapped: write to it.
    assert!(parent.borrow().source().vm().is_mapped(x));
    child.free(x, Size(100)).unwrap();
    child.free(y, Size(64)).unwrap();
    assert_eq!(child.counters().exports, 2);
    assert_eq!(child.sizes().total, Size(0));
    assert_eq!(parent.borrow().sizes().allocated, Size(0));
    parent.borrow().source().check().unwrap();
    assert_eq!(parent.borrow().source().vm().mapped(), Size(0));
}

#[test]
fn import_failure_leaves_both_unchanged() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let faulty = FaultInjector::new(&sim);
    let vm = crate::vm::Vm::reserve(&faulty, Size(1 << 20), Size(1 << 16)).unwrap();
    let vms = VmSource::new(
        vm,
        PageStore::new(&sim, Size(1 << 16)).unwrap(),
        PageStore::new(&sim, Size(1 << 12)).unwrap(),
    )
    .unwrap();
    let mut child = Arena::on_pages("child", Size(64), &sim, 4096, vms).unwrap();
    faulty.fail_nth(1);
    assert!(child.alloc(Size(100), Policy::InstantFit).is_err());
    child.check().unwrap();
    child.source().check().unwrap();
    assert_eq!(child.sizes().total, Size(0));
    assert_eq!(child.source().space().sizes().allocated, Size(0));
    let x = child.alloc(Size(100), Policy::InstantFit).unwrap();
    // A failing give-back keeps the span, free, and the free succeeds.
    faulty.fail_nth(1);
    child.free(x, Size(100)).unwrap();
    assert_eq!(child.counters().export_failures, 1);
    child.check().unwrap();
    child.source().check().unwrap();
    assert_eq!(child.sizes().free, child.sizes().total);
}

#[test]
fn mtbf_injects_deterministically() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(1 << 20)).unwrap();
    a.set_mtbf(9, 4);
    let fails = (0..400).filter(|_| a.alloc(Size(3), Policy::InstantFit).is_err()).count();
    assert!(fails > 50 && fails < 150, "{fails}");
    assert_eq!(a.counters().injected, fails as u64);
    assert_eq!(a.counters().failures, fails as u64);
    a.check().unwrap();
}

#[test]
fn leak_hook_reports_live_allocations() {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static LEAKED: AtomicUsize = AtomicUsize::new(0);
    fn hook(_name: &'static str, r: Range) {
        LEAKED.fetch_add(r.size().0, Ordering::Relaxed);
    }
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    {
        let mut a = slice_arena(&mut tb, &mut hb, 1);
        a.set_leak_hook(Some(hook));
        a.add(Addr(0), Size(1000)).unwrap();
        a.alloc(Size(7), Policy::InstantFit).unwrap();
        let y = a.alloc(Size(9), Policy::InstantFit).unwrap();
        a.free(y, Size(9)).unwrap();
    }
    assert_eq!(LEAKED.load(Ordering::Relaxed), 7);
}

#[test]
fn histogram_and_fragmentation() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(1024)).unwrap();
    let xs: Vec<_> = (0..64).map(|_| a.alloc(Size(16), Policy::FirstFit).unwrap()).collect();
    for x in xs.iter().step_by(2) {
        a.free(*x, Size(16)).unwrap();
    }
    a.check().unwrap();
    let h = a.free_histogram();
    assert_eq!(h[4], 32);
    assert_eq!(h.iter().sum::<usize>(), 32);
    assert_eq!(a.largest_free(), Size(16));
    assert_eq!(a.fragmentation(), 1000 - 1000 / 32);
}

#[test]
fn instant_fit_takes_the_first_fitting_list_head_then_searches_smaller() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(400)).unwrap();
    // Free segments of 48 (list [32, 64)) and 80 (list [64, 128)), nothing
    // else free (sizes from 32 units have a list per power of two).
    let _x = a.alloc(Size(10), Policy::FirstFit).unwrap();
    let s48 = a.alloc(Size(48), Policy::FirstFit).unwrap();
    let _y = a.alloc(Size(10), Policy::FirstFit).unwrap();
    let s80 = a.alloc(Size(80), Policy::FirstFit).unwrap();
    let _rest = a.alloc(Size(252), Policy::FirstFit).unwrap();
    a.free(s48, Size(48)).unwrap();
    a.free(s80, Size(80)).unwrap();
    // 32 units: list [32, 64) holds it, its head (the 48) is taken at its
    // start.
    assert_eq!(a.alloc(Size(32), Policy::InstantFit), Ok(s48));
    a.free(s48, Size(32)).unwrap();
    // 33 units: only lists [64, 128) and up are sure to fit: the 80, not
    // the 48.
    assert_eq!(a.alloc(Size(33), Policy::InstantFit), Ok(s80));
    a.free(s80, Size(33)).unwrap();
    // From the top of the chosen segment.
    let top = a.xalloc(&Constraints::new(Size(33)).from_top(true)).unwrap();
    assert_eq!(top, Addr(s80.0 + 80 - 33));
    a.free(top, Size(33)).unwrap();
    // 70 units: nothing at list [128, 256) or up; the 80 on list [64, 128)
    // is found by search.
    assert_eq!(a.alloc(Size(70), Policy::InstantFit), Ok(s80));
    // 48 units: only the 48 is left, on list [32, 64) below the sure list.
    assert_eq!(a.alloc(Size(48), Policy::InstantFit), Ok(s48));
    // 10 units are left (of the 80): 11 do not fit anywhere.
    assert!(matches!(a.alloc(Size(11), Policy::InstantFit), Err(ArenaError::NoSpace { .. })));
    a.check().unwrap();
}

#[test]
fn instant_fit_of_a_small_size_takes_an_exact_fit_first() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 16);
    a.add(Addr(0), Size(16 * 100)).unwrap();
    // Free segments of 5 and 7 quanta and the 60-quantum rest.
    let five = a.alloc(Size(16 * 5), Policy::FirstFit).unwrap();
    let _x = a.alloc(Size(16), Policy::FirstFit).unwrap();
    let seven = a.alloc(Size(16 * 7), Policy::FirstFit).unwrap();
    let _y = a.alloc(Size(16), Policy::FirstFit).unwrap();
    a.free(five, Size(16 * 5)).unwrap();
    a.free(seven, Size(16 * 7)).unwrap();
    let (segments, _) = a.tags_in_use();
    // 7 quanta (asked as 100 units): the 7, exactly: no split, no new tag.
    assert_eq!(a.alloc(Size(100), Policy::InstantFit), Ok(seven));
    assert_eq!(a.tags_in_use().0, segments);
    // 4 quanta: no 4; the smallest list above with a member, the 5's.
    assert_eq!(a.alloc(Size(16 * 4), Policy::InstantFit), Ok(five));
    // 1 quantum: the one left of the 5, exactly.
    assert_eq!(a.alloc(Size(16), Policy::InstantFit), Ok(Addr(five.0 + 16 * 4)));
    a.check().unwrap();
}

/// A source that hands out the same range every time (a broken parent):
/// it records what it is given back.
struct SameRange {
    range: Range,
    released: Vec<Range>,
    refused: Vec<Range>,
}

impl Source for SameRange {
    fn quantum(&self) -> Size {
        Size(4096)
    }
    fn import(&mut self, _size: Size, _align: Size) -> Result<Range, ArenaError> {
        Ok(self.range)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.released.push(range);
        Ok(())
    }
    fn refused(&mut self, range: Range) {
        self.refused.push(range);
    }
}

#[test]
fn a_source_handing_out_a_live_span_again_does_not_make_the_child_release_it() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let range = Range::from_size(Addr(1 << 20), Size(4096)).unwrap();
    let source = SameRange { range, released: Vec::new(), refused: Vec::new() };
    let mut a =
        Arena::new("child", Size(16), SliceStore::new(&mut tb), SliceStore::new(&mut hb), source)
            .unwrap();
    let x = a.alloc(Size(4096), Policy::InstantFit).unwrap();
    assert_eq!(x, range.base());
    // The span is all allocated; the next import gets the same range back.
    assert_eq!(a.alloc(Size(16), Policy::InstantFit), Err(ArenaError::BadImport(range)));
    assert!(a.source().released.is_empty(), "the child gave away its own live span");
    assert_eq!(a.source().refused, [range], "the source was not told");
    assert_eq!(a.lookup(x).map(|(r, _)| r), Some(range));
    a.check().unwrap();
    // A range that overlaps the live span only in part is not released either.
    a.source_mut().range = Range::from_size(Addr((1 << 20) - 4096), Size(8192)).unwrap();
    let part = a.source().range;
    assert!(a.alloc(Size(16), Policy::InstantFit).is_err());
    assert!(a.source().released.is_empty());
    assert_eq!(a.source().refused, [range, part]);
    // A misshapen range that overlaps nothing of ours goes back.
    let stray = Range::from_size(Addr(1 << 24), Size(8192)).unwrap();
    a.source_mut().range = stray;
    assert_eq!(a.alloc(Size(16), Policy::InstantFit), Err(ArenaError::BadImport(stray)));
    assert_eq!(a.source().released, [stray]);
    assert_eq!(a.source().refused.len(), 2, "a range given back is not also refused");
    a.free(x, Size(4096)).unwrap();
    a.check().unwrap();
}

#[test]
fn one_rule_for_the_smallest_tag_store() {
    // `new` and `on_pages` agree: fewer than MIN_TAGS is an error, whatever
    // the store rounds up to; exactly MIN_TAGS works.
    for tags in [0, 1, 7, 8, BASE_TAGS - 1, BASE_TAGS, MIN_TAGS - 1] {
        let (mut tb, mut hb) = (vec![0u8; TAG_BYTES * tags + 8], vec![0u8; 256]);
        let r =
            Arena::new("t", Size(1), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
                .map_err(ArenaError::from);
        assert!(
            matches!(r, Err(ArenaError::InvalidArgument(_))),
            "new with {tags} tags: {:?}",
            r.err()
        );
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        let r = Arena::on_pages("t", Size(1), &sim, tags, NoSource).map_err(ArenaError::from);
        assert!(
            matches!(r, Err(ArenaError::InvalidArgument(_))),
            "on_pages with {tags} tags: {:?}",
            r.err()
        );
    }
    // More than MAX_TAGS (a tag index has 28 bits): refused before anything
    // is reserved, where it reserved address space for every tag asked for
    // and used MAX_TAGS of them.
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    for tags in [MAX_TAGS + 1, 1 << 36, usize::MAX / TAG_BYTES] {
        let r = Arena::on_pages("t", Size(1), &sim, tags, NoSource).map_err(ArenaError::from);
        assert!(matches!(r, Err(ArenaError::InvalidArgument(_))), "{tags:#x}: {:?}", r.err());
    }
    assert_eq!(sim.stats().reservations, 0);
    assert_eq!(MAX_TAGS, (1 << 28) - 1);
    let (mut tb, mut hb) = (vec![0u8; TAG_BYTES * MIN_TAGS + 8], vec![0u8; 256]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(64)).unwrap();
    let x = a.alloc(Size(1), Policy::InstantFit).unwrap();
    a.check().unwrap();
    a.free(x, Size(1)).unwrap();
    // `on_pages` keeps to the number asked for, not the page it rounds to.
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut a = Arena::on_pages("t", Size(1), &sim, MIN_TAGS, NoSource).unwrap();
    a.add(Addr(0), Size(64)).unwrap();
    let first = a.alloc(Size(1), Policy::InstantFit).unwrap();
    // A second allocation cannot reserve its four tags among MIN_TAGS,
    // although the page holds 128.
    assert_eq!(a.alloc(Size(1), Policy::InstantFit), Err(ArenaError::TagsExhausted));
    assert_eq!(a.tags_in_use().0 as usize, BASE_TAGS + 3);
    a.free(first, Size(1)).unwrap();
    a.check().unwrap();
}
