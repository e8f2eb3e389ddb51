//! Round 63a (outside reviewer): the Counters claims of src/arena/stats.rs
//! and the resize/free_part docs (src/arena/resize.rs): which counter each
//! refused call lands in, deferred frees and flushes, nothing else moved.

use vmspace::arena::{Constraints, NoSource, PageStore};
use vmspace::{Addr, Arena, ArenaError, Policy, Size};
use vmspace_user::MmapBackend;

fn arena() -> Arena<PageStore<MmapBackend>, NoSource> {
    let s = || PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let mut a = Arena::new("c", Size(16), s(), s(), NoSource).unwrap();
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    a
}

#[test]
fn each_refusal_lands_in_its_counter() {
    let mut a = arena();
    let x = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
    let c0 = a.counters();
    let sz0 = a.sizes();
    // Failures: resize to zero, to an unroundable size, growing without room;
    // alloc of zero; xalloc over-constrained; add overlapping; extend detached.
    assert!(matches!(a.resize(x, Size(0x20), Size(0)), Err(ArenaError::InvalidArgument(_))));
    assert_eq!(a.resize(x, Size(0x20), Size(usize::MAX)), Err(ArenaError::Overflow));
    assert!(matches!(a.resize(x, Size(0x20), Size(0x2000)), Err(ArenaError::NoSpace { .. })));
    assert!(a.alloc(Size(0), Policy::InstantFit).is_err());
    assert!(a.xalloc(&Constraints::new(Size(0x40)).nocross(Size(0x20))).is_err());
    assert!(a.add(Addr(0x1800), Size(0x100)).is_err());
    assert!(a.extend(Addr(0x9000), Size(0x100)).is_err());
    let c1 = a.counters();
    assert_eq!((c1.failures - c0.failures, c1.bad_frees - c0.bad_frees), (7, 0), "{c1:?}");
    // Bad claims: wrong size, interior address, bad piece, free of free space.
    assert!(a.resize(x, Size(0x10), Size(0x30)).is_err());
    assert!(a.resize(Addr(x.0 + 16), Size(0x10), Size(0x30)).is_err());
    assert!(a.free_part(x, Size(8), Size(8)).is_err());
    assert!(a.free(Addr(0x1800), Size(0x10)).is_err());
    assert!(a.free_deferred(x, Size(0x21)).is_err());
    let c2 = a.counters();
    assert_eq!((c2.failures - c1.failures, c2.bad_frees - c1.bad_frees), (0, 5), "{c2:?}");
    assert_eq!(a.sizes(), sz0, "nothing changed");
    assert_eq!((c2.allocs, c2.frees), (c0.allocs, c0.frees));
    a.check().unwrap();
    // A deferred free counts a free and a deferred free; the flush one flush;
    // an empty flush none.
    a.free_deferred(x, Size(0x20)).unwrap();
    let c3 = a.counters();
    assert_eq!((c3.frees - c2.frees, c3.deferred_frees - c2.deferred_frees), (1, 1));
    assert_eq!(a.flushed(), Size(0x20));
    assert_eq!(a.flushed(), Size(0));
    let c4 = a.counters();
    assert_eq!((c4.flushes - c3.flushes, c4.frees), (1, c3.frees));
    // A partial free counts no free; freeing the whole through free_part counts one.
    let y = a.alloc(Size(0x40), Policy::FirstFit).unwrap();
    a.free_part(y, Size(0x10), Size(0x10)).unwrap();
    assert_eq!(a.counters().frees, c4.frees);
    a.free_part(y, Size(0), Size(0x10)).unwrap();
    assert_eq!(a.counters().frees, c4.frees + 1);
    a.free(Addr(y.0 + 0x20), Size(0x20)).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
}
