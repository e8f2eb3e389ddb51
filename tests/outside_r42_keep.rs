//! Outside review, round 42: `KeepFree` (src/sources/keep.rs) after round
//! 41b's fixes: give-backs twice, counts of a refused range from below,
//! `N = MAX_KEPT`, unflushed give-backs over a `VmSource` and the VM back
//! through `into_vm` afterwards.

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy, SliceStore, Source};
use vmspace::sources::{KeepFree, VmSource, MAX_KEPT};
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;

mod outside_keep_common;
use outside_keep_common::{parent, vmsource};

const PAGE: usize = 4096;

/// Was a DEFECT (fixed). A span given back twice, the first time to the source below
/// (all `N` slots full), the second time while a slot is free, is kept:
/// the next import of its size hands it out, unmapped, while the
/// `VmSource` below counts it free and hands it out too.
///
/// Expected: keep.rs:35-36, a range that "overlaps a kept one (given back
/// twice), is refused"; keep.rs:44-45, "A kept span is as its last user
/// left it: over a `VmSource`, still mapped"; the invariant at
/// keep.rs:90-91, "`kept[..len]` are ranges `S` imported, which this
/// source handed out and was given back since, each once". The
/// `VmSource` alone refuses the same second give-back (vm.rs:117-129,
/// `handed_out`), so the adapter turns a refused double free into a
/// range owned twice.
/// Actual: the second give-back returns `Ok`, and the adapter's next
/// import of the size returns the unmapped range that the `VmSource`
/// then hands out again as well.
#[test]
fn a_span_given_back_twice_after_it_went_below_is_not_kept() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut k = KeepFree::<_, 1>::new(vmsource(&sim, 64), Size(PAGE));
    let a = k.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let b = k.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    k.release(a).unwrap(); // kept
    k.release(b).unwrap(); // the one slot is full: to the VmSource, unmapped
    assert!(!k.inner().vm().is_mapped(b.base()));
    assert_eq!(k.import(Size(4 * PAGE), Size(PAGE)).unwrap(), a, "a taken back");
    // Without the adapter, the VmSource refuses this second give-back.
    let second = k.release(b);
    let next = k.import(Size(4 * PAGE), Size(PAGE));
    eprintln!("second give-back of {b}: {second:?}; next import {next:?}");
    assert!(matches!(second, Err(ArenaError::BadFree { .. })), "second give-back: {second:?}");
    let next = next.unwrap();
    assert!(k.inner().vm().is_mapped(next.base()), "import {next} handed out unmapped");
}

/// Was a DEFECT (fixed; the same as above, over a parent arena). The span given back
/// twice, the first time to the parent, is kept by the adapter, and both
/// the parent (to its own caller) and the adapter (to its next import)
/// hand it out: one range owned twice. The parent arena alone refuses the
/// second give-back (a bad free).
#[test]
fn a_span_given_back_twice_over_a_parent_arena_is_owned_twice() {
    let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let parent = parent(&mut pt, &mut ph, 64);
    let mut k = KeepFree::<_, 1>::new(&parent, Size(PAGE));
    let a = k.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    let b = k.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap(); // to the parent
    assert_eq!(k.import(Size(2 * PAGE), Size(PAGE)).unwrap(), a);
    let second = k.release(b);
    // The parent's own caller now gets b.
    let mine = parent.borrow_mut().alloc(Size(2 * PAGE), Policy::FirstFit).unwrap();
    let next = k.import(Size(2 * PAGE), Size(PAGE));
    eprintln!("second give-back {second:?}; parent gave {mine:?}; adapter gave {next:?}");
    assert!(matches!(second, Err(ArenaError::BadFree { .. })), "second give-back: {second:?}");
    let mine = Range::from_size(mine, Size(2 * PAGE)).unwrap();
    assert!(next.is_ok_and(|r| !r.overlaps(&mine)), "the parent and the adapter both hand out {b}");
}

/// A source whose first import returns a range one quantum off the
/// alignment asked (breaking the contract), then behaves.
struct OffByOne {
    next: usize,
    imports: usize,
    releases: usize,
}

impl Source for OffByOne {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let mut base = self.next.next_multiple_of(align.0);
        if self.imports == 0 {
            base += PAGE;
        }
        self.next = base + size.0;
        self.imports += 1;
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        self.releases += 1;
        Ok(())
    }
}

/// Was a DEFECT (counts; fixed). A range from below that is not what was asked goes
/// back below and the import fails with `BadImport` (keep.rs:30-33). The
/// counts then say 0 imports from below but 1 span given back to it: the
/// books (`imported + reused` handed out, `kept + released` given back)
/// no longer balance, and the source below did see 1 import and 1
/// give-back.
///
/// Expected: keep.rs:107, `imported`: "Imports from the source
/// below"; keep.rs:113-114, `released`: "Spans given back to the source
/// below (at once, unflushed, or later from the kept ones)" -- the range
/// refused is none of those three; either both are counted or neither.
/// Actual: `(imported, released) == (0, 1)`.
#[test]
fn a_refused_range_from_below_is_counted_on_both_sides_or_neither() {
    let mut k =
        KeepFree::<_, 2>::new(OffByOne { next: 1 << 20, imports: 0, releases: 0 }, Size(PAGE));
    let bad = k.import(Size(PAGE), Size(16 * PAGE));
    assert!(matches!(bad, Err(ArenaError::BadImport(_))), "{bad:?}");
    assert_eq!((k.inner().imports, k.inner().releases), (1, 1), "given back below");
    let good = k.import(Size(PAGE), Size(16 * PAGE)).unwrap();
    k.release(good).unwrap();
    let c = k.counts();
    eprintln!("{c:?}");
    assert_eq!(
        c.imported + c.reused,
        c.kept + c.released,
        "everything handed out came back: the counts must balance ({c:?})"
    );
}

/// Held (contract checked): `N = MAX_KEPT` over a parent arena: exactly
/// `MAX_KEPT` spans kept, the next one given below, every import after
/// served from the kept spans last kept first, `trim` gives all back, and
/// the counts are exact.
#[test]
fn max_kept_counts_exactly() {
    let n = MAX_KEPT + 1;
    let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
    let mut parent = Arena::new(
        "parent",
        Size(PAGE),
        SliceStore::new(&mut t),
        SliceStore::new(&mut h),
        NoSource,
    )
    .unwrap();
    parent.add(Addr(1 << 30), Size(2 * n * PAGE)).unwrap();
    let mut k = Box::new(KeepFree::<_, MAX_KEPT>::new(&mut parent, Size(PAGE)));
    let spans: Vec<Range> = (0..n).map(|_| k.import(Size(PAGE), Size(PAGE)).unwrap()).collect();
    for r in &spans {
        k.release(*r).unwrap();
    }
    assert_eq!(k.kept().len(), MAX_KEPT);
    assert_eq!(k.kept(), &spans[..MAX_KEPT]);
    k.check().unwrap();
    for i in (0..MAX_KEPT).rev() {
        assert_eq!(k.import(Size(PAGE), Size(PAGE)).unwrap(), spans[i]);
    }
    for r in &spans[..MAX_KEPT] {
        k.release(*r).unwrap();
    }
    let c = k.counts();
    let m = MAX_KEPT as u64;
    assert_eq!((c.imported, c.reused, c.kept, c.released), (m + 1, m, 2 * m, 1));
    assert_eq!(k.trim(), Size(MAX_KEPT * PAGE));
    assert_eq!(k.counts().released, m + 1);
    drop(k);
    assert!(parent.sizes().allocated.is_zero());
}

/// Held (contract checked): an arena over the adapter over a batched
/// `VmSource`, dropped with a deferred free, gives its span back unflushed;
/// the adapter keeps none of it (keep.rs:37-40), the next importer does
/// not get it before a flush (vm.rs:19-24), and once the adapter is gone
/// `into_vm` flushes and gives the VM back unmapped (vm.rs:98-102), ready
/// for a new source.
#[test]
fn unflushed_give_back_then_the_vm_back() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vs = vmsource(&sim, 64);
    vs.set_flush_threshold(1000).unwrap();
    let first;
    {
        let mut k = KeepFree::<_, 4>::new(&mut vs, Size(4 * PAGE));
        {
            let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
            let (ts, hs) = (SliceStore::new(&mut t), SliceStore::new(&mut h));
            let mut heap = Arena::new("heap", Size(16), ts, hs, &mut k).unwrap();
            let x = heap.alloc(Size(64), Policy::InstantFit).unwrap();
            let y = heap.alloc(Size(64), Policy::InstantFit).unwrap();
            heap.free(y, Size(64)).unwrap();
            heap.free_deferred(x, Size(64)).unwrap();
            first = Range::from_size(Addr(x.0 & !(4 * PAGE - 1)), Size(4 * PAGE)).unwrap();
        }
        assert!(k.kept().is_empty(), "unflushed: never kept");
        assert_eq!(k.counts().released, 1);
        let again = k.import(Size(4 * PAGE), Size(4 * PAGE)).unwrap();
        assert!(!again.overlaps(&first), "{again} handed out before the flush");
        k.release(again).unwrap();
        assert_eq!(k.kept(), &[again]);
        k.check().unwrap();
    }
    vs.check().unwrap();
    assert!(!vs.space().sizes().unflushed.is_zero(), "still waits for a flush");
    let vm = vs.into_vm().unwrap_or_else(|_| panic!("nothing imported"));
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(sim.stats().unflushed_pages, 0, "flushed on the way out");
    vm.check().unwrap();
    let (t, h) =
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap());
    let mut reused = VmSource::new(vm, t, h).unwrap();
    // The whole reservation free again, the first span's place with it.
    let whole = reused.vm().range();
    let r = reused.import(whole.size(), Size(PAGE)).unwrap();
    assert!(r == whole && r.contains(&first), "{r} {whole} {first}");
    reused.release(r).unwrap();
    reused.check().unwrap();
}

/// Held (contract checked): over a `VmArena` with room for spare pages, a
/// heap dropped with one span wholly free and one with a deferred free
/// leaves the first kept by the adapter (still allocated to
/// `IMPORT_OWNER`, committed) and gives the second back unflushed: its
/// tracts freed with none kept spare (src/sources/vmarena.rs, "its tracts
/// are freed and every page of them unmapped (none kept spare)"). Once the
/// adapter is dropped, the kept span goes back as an ordinary free (spare).
#[test]
fn over_a_vm_arena_unflushed_tracts_are_not_kept_spare() {
    use vmspace::sources::IMPORT_OWNER;
    use vmspace::vmarena::{VmArena, VmArenaConfig};
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cfg = VmArenaConfig::new(Size(256 * PAGE)).spare_limit(64);
    let mut va = VmArena::new(&sim, cfg).unwrap();
    let (kept_span, gone);
    {
        let mut k = KeepFree::<_, 2>::new(&mut va, Size(4 * PAGE));
        {
            let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
            let (ts, hs) = (SliceStore::new(&mut t), SliceStore::new(&mut h));
            let mut heap = Arena::new("heap", Size(16), ts, hs, &mut k).unwrap();
            let x = heap.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
            let y = heap.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
            heap.free(x, Size(4 * PAGE)).unwrap(); // wholly free: kept
            heap.free_deferred(y, Size(4 * PAGE)).unwrap();
            kept_span = Range::from_size(x, Size(4 * PAGE)).unwrap();
            gone = Range::from_size(y, Size(4 * PAGE)).unwrap();
        }
        assert_eq!(k.kept(), &[kept_span]);
        let c = k.counts();
        assert_eq!((c.imported, c.kept, c.released, c.release_failures), (2, 1, 1, 0));
        k.check().unwrap();
        assert_eq!(k.inner().tract(kept_span.base()).map(|t| t.owner), Some(IMPORT_OWNER));
        assert_eq!(k.inner().spare(), Size(0), "nothing spare while the span is kept");
    }
    va.check().unwrap();
    assert_eq!(va.spare(), Size(4 * PAGE), "the kept span, freed on drop, is spare");
    assert!(!va.is_allocated(gone.base()) && !va.is_allocated(kept_span.base()));
    assert!(!va.vm().is_mapped(gone.base()), "the unflushed span was unmapped, not kept spare");
}
