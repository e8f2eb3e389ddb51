//! Round 65 (outside reviewer): what `Source for VmArena` returns from
//! `release` for a range it never handed out.
//!
//! src/sources/vmarena.rs (the impl's docs): "anything else is refused and
//! changes nothing (a range not all imported from here, or outside the
//! arena, with BadFree)"; `stranded`'s docs: "a range that is not (all)
//! imported from here (free, a client's, or outside the arena) a BadFree";
//! NoSource (src/arena/source.rs): "a bad free, as any source of this
//! crate says of a range it did not hand out". CHANGELOG today: "A release
//! of a range a source never handed out is ArenaError::BadFree".
//! A range outside the arena that is not page-aligned, or an empty one, is
//! refused with Misaligned / InvalidArgument instead (the tract-index check
//! runs before the ownership check), where KeepFree and NoSource say BadFree.

use vmspace::arena::{ArenaError, NoSource, Source};
use vmspace::sources::KeepFree;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Range, Size};

fn is_bad_free(r: &Result<(), ArenaError>) -> bool {
    matches!(r, Err(ArenaError::BadFree { .. }))
}

#[test]
fn baseline_aligned_free_and_outside_ranges_are_bad_free() {
    let mut buffer = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buffer, 4096).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(2 << 20))).unwrap();
    let inside = Range::from_size(a.range().base(), Size(4096)).unwrap();
    let r = Source::release(&mut a, inside);
    assert!(is_bad_free(&r), "free tracts: {r:?}");
    let outside = Range::from_size(Addr(a.range().limit().0 + (1 << 20)), Size(4096)).unwrap();
    let r = Source::release(&mut a, outside);
    assert!(is_bad_free(&r), "outside, aligned: {r:?}");
}

/// Was a DEFECT (fixed in `stranded`): a range outside the arena (never handed out) that is not on
/// a page boundary is not a BadFree.
#[test]
fn misaligned_range_outside_the_arena_is_bad_free() {
    let mut buffer = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buffer, 4096).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(2 << 20))).unwrap();
    let outside = Range::from_size(Addr(a.range().limit().0 + (1 << 20) + 16), Size(100)).unwrap();
    assert!(!a.range().overlaps(&outside));
    let r = Source::release(&mut a, outside);
    assert!(is_bad_free(&r), "VmArena release of {outside} (outside the arena): {r:?}");
}

/// Was a DEFECT (fixed in `stranded`): an empty range (never handed out) is not a BadFree for
/// VmArena, where NoSource and KeepFree<NoSource> say BadFree.
#[test]
fn empty_range_is_bad_free_like_other_sources() {
    let e = Range::empty(Addr(1 << 40));
    assert!(is_bad_free(&NoSource.release(e)));
    let mut k: KeepFree<NoSource, 4> = KeepFree::new(NoSource, Size(16));
    assert!(is_bad_free(&k.release(e)));
    let mut buffer = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buffer, 4096).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(2 << 20))).unwrap();
    let e = Range::empty(a.range().base());
    let r = Source::release(&mut a, e);
    assert!(is_bad_free(&r), "VmArena release of an empty range: {r:?}");
}
