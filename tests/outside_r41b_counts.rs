//! Outside review of round 41b's `KeepFree` (src/sources/keep.rs): its
//! counts (`KeepCounts`) of unflushed give-backs, which it passes to the
//! source below.
//!
//! Tests marked "was a DEFECT" failed on the code reviewed and pass since
//! the fixes.

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

mod outside_keep_common;
use outside_keep_common::parent;

const PAGE: usize = 4096;

/// A child arena of quantum 16 over `source` allocates 16 bytes, frees them
/// deferred and is dropped with the free unflushed: its span goes back
/// through `release_unflushed`.
fn drop_child_with_a_deferred_free(source: impl Source) {
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut child =
        Arena::new("child", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), source)
            .unwrap();
    let x = child.alloc(Size(16), Policy::InstantFit).unwrap();
    child.free_deferred(x, Size(16)).unwrap();
}

/// Was a DEFECT (counts; fixed). An arena dropped with a deferred free gives its span
/// back through `release_unflushed`; the adapter passes it to the source
/// below but does not count it.
///
/// Expected: keep.rs:89-90, `released`: "Spans given back to the source
/// below (at once, or later from the kept ones)"; keep.rs:30-32 says an
/// unflushed give-back "goes to `S`".
/// Actual: `released` stays 0 although the parent took the span.
#[test]
fn defect_unflushed_give_back_is_not_counted_as_released() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut t, &mut h, 16);
    let mut k = KeepFree::<_, 2>::new(&p, Size(PAGE));
    drop_child_with_a_deferred_free(&mut k);
    assert!(k.kept().is_empty());
    assert_eq!(p.borrow().sizes().unflushed, Size(PAGE), "the parent took it, unflushed");
    let c = k.counts();
    assert_eq!((c.imported, c.kept), (1, 0));
    assert_eq!(c.released, 1, "a span given to the source below, not counted: {c:?}");
}

/// A source whose give-backs are all refused (`SourceBusy`, as the
/// default `release_unflushed` and a C import function without a release
/// function).
struct Refusing(usize);

impl Source for Refusing {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let r = Range::from_size(Addr(self.0), size)?;
        self.0 = r.limit().0;
        Ok(r)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        Err(ArenaError::SourceBusy)
    }
}

/// Was a DEFECT (counts; fixed). The unflushed give-back of an arena dropped with a
/// deferred free, refused by the source below, is not counted either.
///
/// Expected: keep.rs:92-93, `release_failures`: "Give-backs to the source
/// below that it refused (the span stays with its holder), or that
/// stranded the span"; the adapter passed the span on (keep.rs:30-32).
/// Actual: `release_failures` stays 0.
#[test]
fn defect_refused_unflushed_give_back_is_not_counted() {
    let mut k = KeepFree::<_, 2>::new(Refusing(1 << 20), Size(PAGE));
    drop_child_with_a_deferred_free(&mut k);
    let c = k.counts();
    assert!(k.kept().is_empty());
    assert_eq!(c.release_failures, 1, "a give-back refused below, not counted: {c:?}");
}
