//! An arena whose source panics is dropped as that panic unwinds (a local
//! of the frame the panic leaves): its drop must not call the source again,
//! where a second panic would abort the process. Each scenario runs in a
//! child process (an abort cannot be caught).

mod child_process;
use child_process::run_child;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const CHILD: &str = "VMSPACE_SOURCE_PANICS_CHILD";

/// Hands out consecutive spans; panics in every give-back once `panics`.
#[derive(Clone)]
struct Panicky {
    next: Rc<Cell<usize>>,
    panics: Rc<Cell<bool>>,
    releases: Rc<Cell<usize>>,
}

impl Source for Panicky {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, _: Size) -> Result<Range, ArenaError> {
        let base = self.next.get();
        self.next.set(base + size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        self.releases.set(self.releases.get() + 1);
        assert!(!self.panics.get(), "the source panics");
        Ok(())
    }
}

/// Two imported spans; the free that empties one panics in its give-back,
/// and the arena (the closure's local) is dropped as the panic unwinds,
/// still holding the other.
fn scenario() -> usize {
    let s = Panicky {
        next: Rc::new(Cell::new(1 << 20)),
        panics: Rc::new(Cell::new(false)),
        releases: Rc::new(Cell::new(0)),
    };
    let (panics, releases) = (s.panics.clone(), s.releases.clone());
    let r = catch_unwind(AssertUnwindSafe(move || {
        let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut heap =
            Arena::new("heap", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), s)
                .unwrap();
        let a = heap.alloc(Size(Q), Policy::InstantFit).unwrap();
        let _b = heap.alloc(Size(Q), Policy::InstantFit).unwrap();
        panics.set(true);
        let _ = heap.free(a, Size(Q));
    }));
    assert!(r.is_err(), "the give-back panicked");
    releases.get()
}

#[test]
fn an_arena_dropped_as_its_sources_panic_unwinds_does_not_call_it_again() {
    let name = "an_arena_dropped_as_its_sources_panic_unwinds_does_not_call_it_again";
    if std::env::var(CHILD).as_deref() == Ok("run") {
        // One give-back: the free's, which panicked.
        assert_eq!(scenario(), 1);
        return;
    }
    let status = run_child(name, CHILD, "run");
    assert!(status.success(), "child ended with {status:?} (an abort: a panic while panicking)");
}

/// After a give-back panicked, the arena gives its source nothing back
/// (a wholly free span stays, free) until a call into it returns again: the
/// next import. Then give-backs resume, the span kept meanwhile with the
/// first free (round 48: it stayed for the arena's life); every `check()`
/// holds throughout.
#[test]
fn give_backs_resume_after_a_call_into_the_source_returns() {
    let s = Panicky {
        next: Rc::new(Cell::new(1 << 20)),
        panics: Rc::new(Cell::new(false)),
        releases: Rc::new(Cell::new(0)),
    };
    let (panics, releases) = (s.panics.clone(), s.releases.clone());
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), s).unwrap();
    let a = heap.alloc(Size(Q), Policy::InstantFit).unwrap();
    let b = heap.alloc(Size(Q), Policy::InstantFit).unwrap();
    panics.set(true);
    let freed = catch_unwind(AssertUnwindSafe(|| heap.free(a, Size(Q))));
    assert!(freed.is_err());
    panics.set(false);
    heap.check().unwrap();
    // The span `a` was in left with the source (off the books first).
    assert_eq!((releases.get(), heap.sizes().imported), (1, Size(Q)));
    // `b`'s span, wholly free now, stays: no call into the source yet.
    heap.free(b, Size(Q)).unwrap();
    heap.check().unwrap();
    assert_eq!((releases.get(), heap.sizes().imported, heap.sizes().free), (1, Size(Q), Size(Q)));
    // An import returns: give-backs resume, `b`'s span with the first free.
    let c = heap.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    assert_eq!(releases.get(), 1);
    heap.free(c, Size(2 * Q)).unwrap();
    heap.check().unwrap();
    assert_eq!((releases.get(), heap.sizes().imported), (3, Size(0)));
    drop(heap);
    assert_eq!(releases.get(), 3, "nothing left for the drop");
}
