//! Outside review r74: `KeepFree`'s give-back through `give_below`: what
//! it notes again after the source below refuses, in particular after
//! `ArenaError::Stranded` (the source keeps the range for good, the caller
//! must not use it again).

use vmspace::arena::{ArenaError, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

/// A bump source that can be told how to answer the next give-backs.
#[derive(Default)]
struct Mock {
    next: usize,
    /// Ranges handed out and not taken back (stranded ones stay here).
    out: Vec<Range>,
    /// Ranges stranded: taken for good.
    stranded: Vec<Range>,
    /// Answer every release with Stranded while set.
    strand: bool,
    released: Vec<Range>,
}

impl Source for Mock {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let r = Range::from_size(Addr(0x10_0000 + self.next), size).unwrap();
        self.next += size.0;
        self.out.push(r);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        if self.stranded.contains(&range) {
            // As a VmSource would: still imported on its books, so it
            // tries again; here it strands it again.
            return Err(ArenaError::Stranded { range, error: vmspace_shim::ShimError::Overflow });
        }
        let Some(i) = self.out.iter().position(|r| *r == range) else {
            return Err(ArenaError::BadFree {
                addr: range.base(),
                size: range.size(),
                allocated: None,
            });
        };
        if self.strand {
            self.stranded.push(range);
            return Err(ArenaError::Stranded { range, error: vmspace_shim::ShimError::Overflow });
        }
        self.out.remove(i);
        self.released.push(range);
        Ok(())
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.release(range)
    }
}

/// A span the source below stranded (taken for good, unusable) must never
/// be kept and handed out again by the adapter. `give_below` notes it
/// again as handed out after *any* error, `Stranded` included, so a
/// second give-back of it (the case the docs cover: "a span given back
/// twice is refused there") is kept here and reissued.
#[test]
fn a_stranded_span_is_never_kept_nor_reissued() {
    let mut k = KeepFree::<Mock, 1>::new(Mock::default(), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(Q), Size(Q)).unwrap();
    k.release(b).unwrap(); // kept: the one slot is full
    k.inner_mut().strand = true;
    // Goes below (nothing more can be kept): stranded.
    assert!(matches!(k.release(a), Err(ArenaError::Stranded { .. })));
    k.inner_mut().strand = false;
    k.check().unwrap();
    // The slot is emptied by an import of b.
    assert_eq!(k.import(Size(Q), Size(Q)).unwrap(), b);
    // The same (stranded) range given back a second time: the source
    // below would say Stranded again; the adapter must not vouch for it.
    let second = k.release(a);
    assert!(
        !k.kept().contains(&a),
        "stranded range {a:?} kept by the adapter (release said {second:?}, counts {:?})",
        k.counts()
    );
    let c = k.import(Size(Q), Size(Q)).unwrap();
    assert_ne!(c, a, "a range the source below stranded was handed out again");
}

/// The same through `release_unflushed`.
#[test]
fn an_unflushed_give_back_stranded_is_not_noted_again() {
    let mut k = KeepFree::<Mock, 1>::new(Mock::default(), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    k.inner_mut().strand = true;
    assert!(matches!(k.release_unflushed(a), Err(ArenaError::Stranded { .. })));
    k.inner_mut().strand = false;
    let second = k.release(a);
    assert!(k.kept().is_empty(), "stranded (unflushed) range kept: release said {second:?}");
}

/// Refused with an ordinary error, the note is put back where it was:
/// still vouched for (kept at the next give-back), in its place in the
/// ring (the oldest forgotten first).
#[test]
fn a_refused_give_back_keeps_its_place_in_the_ring() {
    let mut k = KeepFree::<Mock, 1>::new(Mock::default(), Size(Q));
    // Notes: x0, x1 (2 N = 2).
    let x0 = k.import(Size(Q), Size(Q)).unwrap();
    let x1 = k.import(Size(Q), Size(Q)).unwrap();
    let y = k.import(Size(2 * Q), Size(Q)).unwrap(); // forgets x0: notes x1, y
    k.release(y).unwrap(); // kept; notes x1
                           // x0 is no longer noted: goes below, taken.
    k.release(x0).unwrap();
    assert_eq!(k.inner().released, vec![x0]);
    // x1 below while full, refused (unknown to the mock? no: BadFree for
    // a range not out) -- make the mock refuse by pretending it is not out.
    let idx = k.inner().out.iter().position(|r| *r == x1).unwrap();
    let saved = k.inner_mut().out.remove(idx);
    assert!(matches!(k.release(x1), Err(ArenaError::BadFree { .. })));
    k.inner_mut().out.push(saved);
    k.check().unwrap();
    // Still noted: kept once room is made.
    assert_eq!(k.import(Size(2 * Q), Size(Q)).unwrap(), y);
    k.release(x1).unwrap();
    assert_eq!(k.kept(), &[x1]);
    k.check().unwrap();
}

/// An unflushed give-back that is not whole quanta is refused with
/// BadFree, changing nothing (the source below is not called).
#[test]
fn unflushed_not_whole_quanta_refused_without_a_call() {
    let mut k = KeepFree::<Mock, 2>::new(Mock::default(), Size(2 * Q));
    let a = k.import(Size(2 * Q), Size(2 * Q)).unwrap();
    let half = Range::from_size(a.base(), Size(Q)).unwrap();
    assert!(matches!(k.release_unflushed(half), Err(ArenaError::BadFree { .. })));
    assert!(k.inner().released.is_empty());
    // a still noted: kept on its give-back.
    k.release(a).unwrap();
    assert_eq!(k.kept(), &[a]);
}
