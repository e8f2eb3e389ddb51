//! Round 63a (outside reviewer): the arena over the whole address space
//! (quantum 1, span [0, usize::MAX)) and at the top with the largest
//! quantum: every operation at the edges, check() after each.

use vmspace::arena::{Constraints, NoSource, PageStore, SegmentKinds};
use vmspace::{Addr, Arena, ArenaError, Policy, Size};
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;
type A = Arena<MStore, NoSource>;

fn arena(q: usize) -> A {
    let s = || PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    Arena::new("x", Size(q), s(), s(), NoSource).unwrap()
}

#[test]
fn whole_address_space_quantum_one() {
    let mut a = arena(1);
    a.add(Addr(0), Size(usize::MAX)).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().total, Size(usize::MAX));
    assert_eq!(a.largest_free(), Size(usize::MAX));
    for p in Policy::ALL {
        let x = a.alloc(Size(usize::MAX), p).unwrap();
        assert_eq!(x, Addr(0));
        a.check().unwrap();
        assert_eq!(a.sizes().allocated, Size(usize::MAX));
        assert_eq!(a.sizes().free, Size(0));
        assert!(matches!(a.alloc(Size(1), p), Err(ArenaError::NoSpace { .. })));
        // Shrink to 1, grow back to everything.
        a.resize(x, Size(usize::MAX), Size(1)).unwrap();
        a.check().unwrap();
        assert_eq!(a.largest_free(), Size(usize::MAX - 1));
        a.resize(x, Size(1), Size(usize::MAX)).unwrap();
        a.check().unwrap();
        // Free the middle, then the ends.
        a.free_part(x, Size(1), Size(usize::MAX - 2)).unwrap();
        a.check().unwrap();
        assert_eq!(a.sizes().allocated, Size(2));
        assert_eq!(
            a.lookup(Addr(usize::MAX - 1)).map(|(r, s)| (r.size(), s)),
            Some((Size(1), Size(1)))
        );
        a.free(Addr(usize::MAX - 1), Size(1)).unwrap();
        a.free(x, Size(1)).unwrap();
        a.check().unwrap();
        assert_eq!(a.sizes().free, Size(usize::MAX));
    }
    // The last byte from the top, exactly, and deferred.
    let top = a.xalloc(&Constraints::new(Size(1)).from_top(true).policy(Policy::FirstFit)).unwrap();
    assert_eq!(top, Addr(usize::MAX - 1));
    let ex = a.xalloc(&Constraints::new(Size(1)).exact(Addr(usize::MAX - 2))).unwrap();
    assert_eq!(ex, Addr(usize::MAX - 2));
    a.free_deferred(top, Size(1)).unwrap();
    a.check().unwrap();
    assert!(a.xalloc(&Constraints::new(Size(1)).exact(top)).is_err());
    // Growing into unflushed space: refused.
    assert!(matches!(a.resize(ex, Size(1), Size(2)), Err(ArenaError::NoSpace { .. })));
    assert_eq!(a.flushed(), Size(1));
    a.resize(ex, Size(1), Size(2)).unwrap();
    a.check().unwrap();
    // Growing past the top of the address space.
    assert!(matches!(a.resize(ex, Size(2), Size(3)), Err(ArenaError::NoSpace { .. })));
    assert!(matches!(a.resize(ex, Size(2), Size(usize::MAX)), Err(ArenaError::NoSpace { .. })));
    a.free(ex, Size(2)).unwrap();
    a.check().unwrap();
    // Aligned at the top.
    let c =
        Constraints::new(Size(1)).align(Size(1 << 63)).phase(Size((1 << 63) - 1)).from_top(true);
    let x = a.xalloc(&c).unwrap();
    // 2^64 - 1 would end past usize::MAX: the only placement is 2^63 - 1.
    assert_eq!(x, Addr((1 << 63) - 1));
    a.free(x, Size(1)).unwrap();
    let c =
        Constraints::new(Size(2)).nocross(Size(1 << 63)).from_top(true).policy(Policy::FirstFit);
    let x = a.xalloc(&c).unwrap();
    assert_eq!(x, Addr(usize::MAX - 2));
    a.free(x, Size(2)).unwrap();
    let c = Constraints::new(Size(2))
        .nocross(Size(1 << 63))
        .min_addr(Addr((1 << 63) - 1))
        .max_addr(Addr((1 << 63) + 1));
    assert!(a.xalloc(&c).is_err(), "only one placement, and it crosses");
    a.check().unwrap();
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
}

#[test]
fn sizes_that_cannot_round() {
    let mut a = arena(1 << 27);
    let top = usize::MAX - (1 << 27) + 1; // the last quantum
    let base = top - (1 << 30);
    a.add(Addr(base), Size(1 << 30)).unwrap();
    for p in Policy::ALL {
        let r = a.alloc(Size(usize::MAX), p);
        assert!(matches!(r, Err(ArenaError::Overflow) | Err(ArenaError::NoSpace { .. })), "{r:?}");
        let r = a.alloc(Size(usize::MAX - (1 << 27) + 2), p);
        assert!(r.is_err(), "{r:?}");
    }
    let x = a.xalloc(&Constraints::new(Size(1)).from_top(true)).unwrap();
    assert_eq!(x, Addr(top - (1 << 27)));
    a.check().unwrap();
    assert!(a.resize(x, Size(1), Size((1 << 27) + 1)).is_err(), "past the span's end");
    let r = a.resize(x, Size(1), Size(usize::MAX));
    assert!(matches!(r, Err(ArenaError::Overflow)), "{r:?}");
    assert_eq!(a.lookup(x).map(|(_, s)| s), Some(Size(1)));
    a.free_part(x, Size(0), Size(1)).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
}
