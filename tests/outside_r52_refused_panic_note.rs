//! Round 52 (outside review): a `KeepFree` whose source below panicked
//! keeps a note of it (no give-back reaches the source until a call into it
//! returns). A refused `Arena::new` / `on_pages` asked the source its
//! questions (`can_import`, `quantum`) before its own arguments and stores
//! were checked, and a returned question clears the note: the `KeepFree`
//! came back changed (fixed: the source is asked last).

use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace::arena::{Arena, ArenaError, SliceStore, Source, STORE_ALIGN, TAG_BYTES};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};

const PAGE: usize = 4096;

/// A bump source that panics in `import` while `panicky` is set.
struct Bump {
    next: usize,
    panicky: bool,
}

impl Source for Bump {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        assert!(!self.panicky, "below panics");
        let r = Range::from_size(Addr(self.next), size)?;
        self.next += size.0;
        Ok(r)
    }
    fn release(&mut self, _range: Range) -> Result<(), ArenaError> {
        Ok(())
    }
}

type Kf = KeepFree<Bump, 4>;

/// A `KeepFree` over `Bump` with one span handed out, whose last call
/// below panicked (and the source below calm again).
fn noted() -> (Kf, Range) {
    let mut kf: Kf = KeepFree::new(Bump { next: 1 << 30, panicky: false }, Size(PAGE));
    let a = kf.import(Size(PAGE), Size(PAGE)).unwrap();
    kf.inner_mut().panicky = true;
    assert!(catch_unwind(AssertUnwindSafe(|| kf.import(Size(2 * PAGE), Size(PAGE)))).is_err());
    kf.inner_mut().panicky = false;
    (kf, a)
}

/// The note, seen as `release` refusing as busy (it calls nothing below
/// then, so looking does not clear it).
fn still_noted(kf: &mut Kf, a: Range) -> bool {
    match kf.release(a) {
        Err(ArenaError::SourceBusy) => true,
        Ok(()) => false,
        Err(e) => panic!("{e}"),
    }
}

/// Baseline: a refusal that asks the source nothing (the arena's own
/// quantum, checked first) leaves the note.
#[test]
fn a_refusal_for_the_arenas_quantum_keeps_the_note() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let (kf, a) = noted();
    let r = Arena::on_pages("k", Size(3), &sim, 4096, kf);
    let mut kf = r.err().expect("quantum 3").into_inner();
    assert!(still_noted(&mut kf, a), "the note kept");
    assert!(still_noted(&mut kf, a), "looking keeps it");
}

/// A store failing at its first map: refused after the source's questions.
// Was a DEFECT (fixed: the source is asked last). src/arena/mod.rs:222 (and :439) promise "Refused, it gives
// `source` back untouched"; CHANGELOG: "a `KeepFree` and its kept spans".
// The refusal comes after `with_max_tags` asked `can_import`/`quantum`,
// which returned and cleared the KeepFree's panic note, so its next
// give-back reaches the source below that panicked (here: `a` is taken
// and kept instead of refused as busy).
#[test]
fn a_refusal_at_a_store_map_keeps_a_keep_free_panic_note() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    let (kf, a) = noted();
    inj.only(&[Op::Map]);
    inj.fail_nth(1);
    let r = Arena::on_pages("k", Size(PAGE), &inj, 4096, kf);
    inj.clear();
    let refused = r.err().expect("the tag table's first map fails");
    assert!(matches!(refused.error(), ArenaError::Backing(_)), "{refused}");
    let mut kf = refused.into_inner();
    assert!(still_noted(&mut kf, a), "the KeepFree came back with its panic note cleared");
}

/// A tag store too small (checked after the source's questions).
// Was a DEFECT (fixed: the source is asked last). As above (src/arena/mod.rs:222): `MIN_TAGS` is checked after
// the source was asked its quantum, clearing the note.
#[test]
fn a_refusal_for_too_few_tags_keeps_a_keep_free_panic_note() {
    let (kf, a) = noted();
    let mut tb = vec![0u8; 4 * TAG_BYTES + STORE_ALIGN];
    let mut hb = vec![0u8; 4096];
    let r = Arena::new("k", Size(PAGE), SliceStore::new(&mut tb), SliceStore::new(&mut hb), kf);
    let refused = r.err().expect("fewer than MIN_TAGS");
    assert!(matches!(refused.error(), ArenaError::InvalidArgument(_)));
    let mut kf = refused.into_inner();
    assert!(still_noted(&mut kf, a), "the KeepFree came back with its panic note cleared");
}
