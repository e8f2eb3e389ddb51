use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore};
use vmspace::qcache::{QCacheConfig, MAX_CLASSES, MAX_QUANTUM};
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};

type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;
const TOP: usize = usize::MAX;

/// The largest quantum the caches take, at the top of the address
/// space: every class's smallest and largest size, a wrong size in the
/// same class, then everything back and the arena idle.
#[test]
fn largest_quantum_at_the_top() {
    let q = MAX_QUANTUM;
    let (mut t, mut h, mut c) = (vec![0u8; 1 << 18], vec![0u8; 1 << 16], vec![0u8; 1 << 18]);
    let mut a =
        Arena::new("q", Size(q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    // 2^36 at the top: room for a slab of every class (at most 2^31
    // each, aligned).
    let limit = TOP & !(q - 1);
    let span = 1usize << 36;
    a.add(Addr(limit - span), Size(span)).unwrap();
    let s: Shared<'_> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(MAX_CLASSES, SliceStore::new(&mut c)))
            .unwrap();
    assert_eq!(s.qcache_max(), Size(MAX_CLASSES * q));
    let before = s.with(|a| a.sizes());
    {
        let mut hd = CacheHandle::new(&s);
        let mut live = Vec::new();
        for k in 1..=MAX_CLASSES {
            for size in [(k - 1) * q + 1, k * q] {
                let x = hd.alloc(Size(size)).unwrap();
                assert!(x.0 >= limit - span && x.0 <= limit - size, "{x:?}");
                live.push((x, size));
            }
        }
        s.check().unwrap();
        for &(x, size) in &live {
            let other = if size % q == 0 { size - q + 1 } else { size + 1 };
            assert!(matches!(hd.free(x, Size(other)), Err(ArenaError::BadFree { .. })));
            assert!(matches!(s.free(x, Size(other)), Err(ArenaError::BadFree { .. })));
            assert!(hd.free(x, Size(TOP)).is_err());
            assert!(hd.free(x, Size(0)).is_err());
        }
        s.check().unwrap();
        for (x, size) in live {
            hd.free(x, Size(size)).unwrap();
        }
        for size in [0usize, TOP, TOP - q + 2, MAX_CLASSES * q + 1] {
            if let Ok(x) = hd.alloc(Size(size)) {
                hd.free(x, Size(size)).unwrap();
            }
            if let Ok(x) = s.alloc(Size(size), Policy::InstantFit, Wait::No) {
                s.free(x, Size(size)).unwrap();
            }
        }
    }
    s.reclaim();
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(st.slabs, 0);
    assert_eq!(s.with(|a| a.sizes()), before);
    // A quantum past the caches' largest: refused, or no caches.
    let (mut t2, mut h2, mut c2) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12], vec![0u8; 1 << 18]);
    let a2 = Arena::new(
        "q2",
        Size(2 * MAX_QUANTUM),
        SliceStore::new(&mut t2),
        SliceStore::new(&mut h2),
        NoSource,
    )
    .unwrap();
    let r: Result<Shared<'_>, _> =
        SyncArena::with_quantum_caches(a2, QCacheConfig::new(1, SliceStore::new(&mut c2)));
    if let Ok(s2) = r {
        assert_eq!(s2.qcache_max(), Size(0));
    }
}
