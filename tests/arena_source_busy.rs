//! A give-back refused with `SourceBusy` (a `&RefCell` source borrowed
//! elsewhere, a `KeepFree` whose source panicked) leaves the span in the
//! arena, free, and offers it again at the next free, then after 2, 4, ...
//! up to 1,024 frees while the source stays busy: a source busy for good
//! costs a walk of the spans that often, not at every free, and a source
//! that takes give-backs again gets the span back within 1,025 frees.

use std::cell::Cell;
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, Constraints, Policy, SliceStore, Source};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

/// Hands out consecutive spans; refuses give-backs as busy while `busy`.
#[derive(Clone, Default)]
struct Busy {
    next: Rc<Cell<usize>>,
    busy: Rc<Cell<bool>>,
    releases: Rc<Cell<usize>>,
}

impl Source for Busy {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, _: Size) -> Result<Range, ArenaError> {
        let base = self.next.get().max(1 << 20);
        self.next.set(base + size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        self.releases.set(self.releases.get() + 1);
        if self.busy.get() {
            return Err(ArenaError::SourceBusy);
        }
        Ok(())
    }
}

/// Free the small allocation at `addr` and take the same place again (its
/// span is never wholly free, so only the walk for held spans can call the
/// source).
fn churn_in_place(a: &mut Arena<SliceStore<'_>, Busy>, addr: Addr) {
    a.free(addr, Size(16)).unwrap();
    let again = a.xalloc(&Constraints::new(Size(16)).exact(addr)).unwrap();
    assert_eq!(again, addr);
}

#[test]
fn a_span_refused_as_busy_is_offered_again_ever_less_often_until_taken() {
    let src = Busy::default();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a =
        Arena::new("busy", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), src.clone())
            .unwrap();
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    let smalls: Vec<Addr> =
        (0..Q / 16).map(|_| a.alloc(Size(16), Policy::InstantFit).unwrap()).collect();
    assert_eq!(a.sizes().imported, Size(2 * Q));

    src.busy.set(true);
    a.free(x, Size(Q)).unwrap();
    assert_eq!(src.releases.get(), 1);
    assert_eq!(a.sizes().imported, Size(2 * Q), "refused: still the arena's, free");
    a.check().unwrap();

    // Busy for good: 20,000 frees offer it again about 28 times (eleven
    // waits doubling to 1,024, then one every 1,025 frees), not 20,000.
    for i in 0..20_000 {
        churn_in_place(&mut a, smalls[i % smalls.len()]);
    }
    let tries = src.releases.get() - 1;
    assert!((20..=40).contains(&tries), "offered again {tries} times in 20,000 frees");
    assert_eq!(a.sizes().imported, Size(2 * Q));
    a.check().unwrap();

    // Takes give-backs again: back within the longest wait, 1,025 frees.
    src.busy.set(false);
    let mut frees = 0;
    while a.sizes().imported != Size(Q) {
        assert!(frees <= 1025, "not given back after {frees} frees");
        churn_in_place(&mut a, smalls[frees % smalls.len()]);
        frees += 1;
    }
    a.check().unwrap();

    // The wait starts again from one free after a span is taken.
    let y = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    src.busy.set(true);
    a.free(y, Size(Q)).unwrap();
    src.busy.set(false);
    let before = src.releases.get();
    churn_in_place(&mut a, smalls[0]);
    assert_eq!(src.releases.get(), before + 1, "offered at the next free");
    assert_eq!(a.sizes().imported, Size(Q));
    a.check().unwrap();
}

/// `give_back_free_spans` offers a held span at once, without waiting for
/// frees: refused again while the source is busy (0 bytes, the span still
/// free and usable), given back once it is not.
#[test]
fn give_back_free_spans_offers_held_spans_now() {
    let src = Busy::default();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a =
        Arena::new("busy", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), src.clone())
            .unwrap();
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(16), Policy::InstantFit).unwrap();
    assert_eq!(a.sizes().imported, Size(2 * Q));
    assert_eq!(a.give_back_free_spans(), Size(0), "nothing wholly free");
    assert_eq!(src.releases.get(), 0);
    src.busy.set(true);
    a.free(x, Size(Q)).unwrap();
    assert_eq!((src.releases.get(), a.sizes().imported), (1, Size(2 * Q)), "held");
    assert_eq!(a.give_back_free_spans(), Size(0), "busy still");
    assert_eq!(src.releases.get(), 2, "offered at once, not after frees");
    a.check().unwrap();
    src.busy.set(false);
    assert_eq!(a.give_back_free_spans(), Size(Q));
    assert_eq!((src.releases.get(), a.sizes().imported), (3, Size(Q)), "y's span stays");
    assert_eq!(a.counters().exports, 1);
    a.check().unwrap();
    a.free(y, Size(16)).unwrap();
    assert_eq!(a.sizes().imported, Size(0));
}
