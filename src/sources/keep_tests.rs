//! Unit tests of [`KeepFree`](super::keep::KeepFree) over a recording mock source.

use super::keep::*;
use crate::arena::{check_import, ArenaError, Source};
use crate::vm::VmError;
use vmspace_shim::{Addr, Op, Range, ShimError, Size};

/// A source handing out consecutive ranges and recording give-backs;
/// `room` imports at most (then `full`, `NoSpace` unless set), `refuse`
/// fails give-backs with that error.
struct Mock {
    quantum: Size,
    full: Option<ArenaError>,
    next: usize,
    room: usize,
    imports: usize,
    released: usize,
    unflushed: usize,
    refuse: Option<ArenaError>,
}

fn mock(quantum: usize, room: usize) -> Mock {
    Mock {
        quantum: Size(quantum),
        full: None,
        next: 1 << 20,
        room,
        imports: 0,
        released: 0,
        unflushed: 0,
        refuse: None,
    }
}

impl Source for Mock {
    fn quantum(&self) -> Size {
        self.quantum
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        check_import(self.quantum, size, align)?;
        if self.imports - self.released >= self.room {
            return Err(self.full.unwrap_or(ArenaError::NoSpace { size: size.0 }));
        }
        let base = self.next.next_multiple_of(align.0);
        self.next = base + size.0;
        self.imports += 1;
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        if let Some(e) = self.refuse {
            return Err(e);
        }
        let _ = range;
        self.released += 1;
        Ok(())
    }
    fn release_unflushed(&mut self, _: Range) -> Result<(), ArenaError> {
        self.unflushed += 1;
        Ok(())
    }
}

const Q: usize = 4096;

#[test]
fn quantum_is_the_larger() {
    assert_eq!(KeepFree::<_, 1>::new(mock(Q, 9), Size(16 * Q)).quantum(), Size(16 * Q));
    assert_eq!(KeepFree::<_, 1>::new(mock(Q, 9), Size(16)).quantum(), Size(Q));
    let mut k = KeepFree::<_, 1>::new(mock(Q, 9), Size(4 * Q));
    assert!(matches!(k.import(Size(Q), Size(4 * Q)), Err(ArenaError::Misaligned { .. })));
    assert_eq!(k.inner().imports, 0, "refused before the source below is asked");
}

#[test]
fn keeps_n_then_gives_back_and_reuses_the_last_kept_of_the_size() {
    let mut k = KeepFree::<_, 2>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(2 * Q), Size(Q)).unwrap();
    let c = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap();
    k.release(c).unwrap();
    assert_eq!(k.kept(), &[a, b], "two kept");
    assert_eq!(k.inner().released, 1, "the third went below");
    k.check().unwrap();
    // Exact size: b for 2Q; a for Q (c went below).
    assert_eq!(k.import(Size(Q), Size(Q)).unwrap(), a);
    assert_eq!(k.import(Size(2 * Q), Size(Q)).unwrap(), b);
    assert_eq!(k.inner().imports, 3);
    // A size kept by none, or an alignment the kept span lacks: below.
    k.release(a).unwrap();
    let aligned = k.import(Size(Q), Size(1 << 30)).unwrap();
    assert!(aligned.base().is_aligned(Size(1 << 30)) && aligned != a);
    assert_eq!(k.kept(), &[a]);
    let c = k.counts();
    assert_eq!((c.imported, c.reused, c.kept, c.released, c.release_failures), (4, 2, 3, 1, 0));
}

#[test]
fn refuses_a_range_given_back_twice_or_not_whole_quanta() {
    let mut k = KeepFree::<_, 4>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(2 * Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    let inside = Range::from_size(Addr(a.base().0 + Q), Size(Q)).unwrap();
    let odd = Range::from_size(Addr(a.limit().0 + 16), Size(Q)).unwrap();
    for r in [a, inside, odd, Range::empty(Addr(0))] {
        assert!(matches!(k.release(r), Err(ArenaError::BadFree { .. })), "{r}");
    }
    for r in [a, inside] {
        let unflushed = k.release_unflushed(r);
        assert!(matches!(unflushed, Err(ArenaError::BadFree { .. })), "{r}");
    }
    assert_eq!(k.inner().unflushed, 0, "no second give-back went below");
    assert_eq!(k.kept(), &[a]);
    let c = k.counts();
    assert_eq!((c.kept, c.released, c.release_failures), (1, 0, 0));
    k.check().unwrap();
}

#[test]
fn a_range_from_below_that_is_not_what_was_asked_goes_back() {
    let mut k = KeepFree::<_, 4>::new(mock(Q, 9), Size(Q));
    k.inner_mut().next = (1 << 20) + Q;
    // The mock aligns as asked; one that does not is caught here.
    struct Sloppy(Mock);
    impl Source for Sloppy {
        fn quantum(&self) -> Size {
            self.0.quantum
        }
        fn import(&mut self, size: Size, _: Size) -> Result<Range, ArenaError> {
            self.0.import(size, self.0.quantum)
        }
        fn release(&mut self, range: Range) -> Result<(), ArenaError> {
            self.0.release(range)
        }
    }
    let mut k2 = KeepFree::<_, 4>::new(Sloppy(mock(Q, 9)), Size(Q));
    k2.inner_mut().0.next = (1 << 20) + Q;
    let got = k2.import(Size(Q), Size(16 * Q));
    assert!(matches!(got, Err(ArenaError::BadImport(_))), "{got:?}");
    assert_eq!((k2.inner().0.imports, k2.inner().0.released), (1, 1), "given back below");
    let c = k2.counts();
    assert_eq!((c.imported, c.released), (1, 1), "counted both ways: the books balance");
    // Given back again: never handed out here, so never kept; the source
    // below judges it.
    let bad = match got {
        Err(ArenaError::BadImport(r)) => r,
        _ => unreachable!(),
    };
    k2.release(bad).unwrap();
    assert!(k2.kept().is_empty());
    assert_eq!(k2.inner().0.released, 2);
    assert!(k.import(Size(Q), Size(16 * Q)).unwrap().base().is_aligned(Size(16 * Q)));
}

#[test]
fn only_a_span_handed_out_here_and_not_back_since_is_kept() {
    let mut k = KeepFree::<_, 1>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap(); // the one slot is full: below
    assert_eq!(k.import(Size(Q), Size(Q)).unwrap(), a);
    // A second give-back of b goes below for the source to judge (here
    // it refuses, as every source of this crate would): never kept,
    // though the slot is free.
    let refusal = ArenaError::BadFree { addr: b.base(), size: b.size(), allocated: None };
    k.inner_mut().refuse = Some(refusal);
    assert_eq!(k.release(b), Err(refusal));
    let part = Range::from_size(b.base(), Size(Q / 2)).unwrap();
    assert!(matches!(k.release(part), Err(ArenaError::BadFree { .. })), "not whole quanta");
    assert!(k.kept().is_empty());
    k.inner_mut().refuse = None;
    k.check().unwrap();
    // The source hands it out here again: ours to give back once more.
    k.inner_mut().next = b.base().0;
    assert_eq!(k.import(Size(Q), Size(Q)).unwrap(), b);
    k.release(b).unwrap();
    assert_eq!(k.kept(), &[b]);
    // Of three handed out in a row, the first is no longer among the
    // last `2 N`: not kept, though the slot is free.
    let mut k = KeepFree::<_, 1>::new(mock(Q, 9), Size(Q));
    let r: [Range; 3] = core::array::from_fn(|_| k.import(Size(Q), Size(Q)).unwrap());
    k.release(r[0]).unwrap();
    assert!(k.kept().is_empty());
    k.release(r[2]).unwrap();
    assert_eq!(k.kept(), &[r[2]]);
    k.check().unwrap();
}

#[test]
fn no_room_below_gives_the_kept_spans_back_and_asks_again() {
    let mut k = KeepFree::<_, 2>::new(mock(Q, 2), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap();
    // Not of a kept size: the source below is full until both go back.
    let c = k.import(Size(2 * Q), Size(Q)).unwrap();
    assert_eq!(c.size(), Size(2 * Q));
    assert!(k.kept().is_empty());
    assert_eq!((k.inner().released, k.counts().released), (2, 2));
    // Full with nothing kept: the error as the source below gave it.
    let _d = k.import(Size(Q), Size(Q)).unwrap();
    assert!(matches!(k.import(Size(Q), Size(Q)), Err(ArenaError::NoSpace { .. })));
}

#[test]
fn any_shortage_below_gives_the_kept_spans_back_and_asks_again() {
    let r = Range::from_size(Addr(1 << 20), Size(Q)).unwrap();
    let oom = ShimError::OutOfMemory(r);
    let no_space = ShimError::OutOfAddressSpace { size: Q };
    let shortages = [
        ArenaError::TagsExhausted,
        ArenaError::Backing(oom),
        ArenaError::Backing(no_space),
        ArenaError::Vm(VmError::Backend(oom)),
        ArenaError::Vm(VmError::Backend(no_space)),
    ];
    let others = [
        ArenaError::Backing(ShimError::Os { op: Op::Map, errno: 1 }),
        ArenaError::Backing(ShimError::Injected { op: Op::Map }),
        ArenaError::Vm(VmError::NotMapped(r)),
        ArenaError::SourceBusy,
        ArenaError::Injected,
    ];
    for (e, short) in shortages.iter().map(|e| (e, true)).chain(others.iter().map(|e| (e, false))) {
        let mut below = mock(Q, 1);
        below.full = Some(*e);
        let mut k = KeepFree::<_, 2>::new(below, Size(Q));
        let a = k.import(Size(Q), Size(Q)).unwrap();
        k.release(a).unwrap();
        // Not the kept size: the source below is full until `a` goes back.
        let got = k.import(Size(2 * Q), Size(Q));
        if short {
            assert_eq!(got.unwrap().size(), Size(2 * Q), "{e}");
            assert!(k.kept().is_empty(), "{e}");
            assert_eq!(k.counts().released, 1, "{e}");
        } else {
            assert_eq!(got, Err(*e));
            assert_eq!(k.kept(), [a], "{e}");
            assert_eq!(k.counts().released, 0, "{e}");
        }
        k.check().unwrap();
    }
}

#[test]
fn unflushed_give_backs_are_never_kept() {
    let mut k = KeepFree::<_, 2>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    k.release_unflushed(a).unwrap();
    assert!(k.kept().is_empty());
    assert_eq!(k.inner().unflushed, 1);
    assert_eq!(k.counts().released, 1, "given back below, counted");
    // Nor handed out again from here.
    assert_ne!(k.import(Size(Q), Size(Q)).unwrap(), a);
}

#[test]
fn an_unflushed_give_back_not_whole_quanta_is_refused_here() {
    let mut k = KeepFree::<_, 2>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(2 * Q), Size(Q)).unwrap();
    let part = Range::from_size(a.base(), Size(Q + 1)).unwrap();
    let empty = Range::from_size(a.base(), Size(0)).unwrap();
    for r in [part, empty] {
        assert!(matches!(k.release_unflushed(r), Err(ArenaError::BadFree { .. })), "{r:?}");
    }
    assert_eq!(k.inner().unflushed, 0, "not passed below");
    assert_eq!((k.counts().released, k.counts().release_failures), (0, 0));
}

/// A give-back `S` refuses leaves the span noted as handed out here, so
/// that the same span given back again once there is room is kept (before
/// round 73, the note went before `S` answered).
#[test]
fn a_give_back_refused_below_changes_nothing_here() {
    let mut k = KeepFree::<_, 1>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    assert_eq!(k.kept(), &[a], "kept: the one place is taken");
    k.inner_mut().refuse = Some(ArenaError::SourceBusy);
    assert_eq!(k.release(b), Err(ArenaError::SourceBusy), "no room here: below, refused");
    assert_eq!(k.release_unflushed(b), Ok(()), "the mock takes unflushed ones");
    let c = k.import(Size(Q), Size(Q)).unwrap();
    assert_eq!(c, a, "the kept span, reused");
    assert_eq!(k.release(b), Err(ArenaError::SourceBusy), "b went below unflushed: forgotten");
    // And one refused below, then given back with room: kept.
    let d = k.import(Size(Q), Size(Q)).unwrap();
    assert_eq!(k.release(c), Ok(()), "kept");
    assert_eq!(k.release(d), Err(ArenaError::SourceBusy));
    k.inner_mut().refuse = None;
    assert_eq!(k.trim(), Size(Q), "c given back below");
    assert_eq!(k.release(d), Ok(()));
    assert_eq!(k.kept(), &[d], "still noted after the refusal: kept");
}

#[test]
fn trim_keeps_what_the_source_refuses_and_drops_what_it_strands() {
    let mut k = KeepFree::<_, 2>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    k.inner_mut().refuse = Some(ArenaError::SourceBusy);
    assert_eq!(k.trim(), Size(0));
    assert_eq!(k.kept(), &[a], "refused: still kept, usable");
    let stranded = ArenaError::Stranded { range: a, error: vmspace_shim::ShimError::Overflow };
    k.inner_mut().refuse = Some(stranded);
    assert_eq!(k.trim(), Size(0));
    assert!(k.kept().is_empty(), "stranded: the source below keeps it");
    assert_eq!(k.counts().release_failures, 2);
    // A give-back the source below refuses when nothing can be kept
    // goes back to the caller.
    let mut k = KeepFree::<_, 0>::new(mock(Q, 9), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    k.inner_mut().refuse = Some(ArenaError::SourceBusy);
    assert_eq!(k.release(a), Err(ArenaError::SourceBusy));
    assert_eq!(k.counts().release_failures, 1);
}

#[test]
fn drop_gives_the_kept_spans_back() {
    let mut inner = mock(Q, 9);
    {
        let mut k = KeepFree::<_, 3>::new(&mut inner, Size(Q));
        for _ in 0..3 {
            let r = k.import(Size(Q), Size(Q)).unwrap();
            k.release(r).unwrap();
            let r = k.import(Size(2 * Q), Size(Q)).unwrap();
            k.release(r).unwrap();
        }
        assert_eq!(k.kept().len(), 2, "each size kept and taken back");
        assert_eq!(k.kept_size(), Size(3 * Q));
    }
    assert_eq!((inner.imports, inner.released), (2, 2));
}

#[test]
fn into_inner_gives_the_kept_spans_back_first() {
    let mut k = KeepFree::<_, 2>::new(mock(Q, 4), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    k.inner_mut().refuse = Some(ArenaError::SourceBusy);
    // Refused: the adapter back, `a` still kept.
    let refused = k.into_inner().err().expect("a refused span keeps the adapter");
    assert_eq!(
        refused.error(),
        ArenaError::InUse { what: "kept spans not given back", size: Size(Q) }
    );
    let mut k = refused.into_inner();
    assert_eq!(k.kept(), [a]);
    k.inner_mut().refuse = None;
    let below = k.into_inner().expect("nothing kept");
    assert_eq!((below.imports, below.released), (2, 1));
    let _ = b;
}

#[test]
fn into_inner_moves_the_source_out_once() {
    use core::cell::Cell;
    struct Counted<'a>(Mock, &'a Cell<u32>);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }
    impl Source for Counted<'_> {
        fn quantum(&self) -> Size {
            self.0.quantum()
        }
        fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
            self.0.import(size, align)
        }
        fn release(&mut self, range: Range) -> Result<(), ArenaError> {
            self.0.release(range)
        }
    }
    let drops = Cell::new(0);
    let mut k = KeepFree::<_, 1>::new(Counted(mock(Q, 4), &drops), Size(Q));
    let a = k.import(Size(Q), Size(Q)).unwrap();
    k.release(a).unwrap();
    let below = k.into_inner().ok().unwrap();
    assert_eq!((drops.get(), below.0.released), (0, 1));
    drop(below);
    assert_eq!(drops.get(), 1);
}
