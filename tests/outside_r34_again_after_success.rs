//! Outside review, round 34: `Retrying::again` called after the allocation
//! has already succeeded.
//!
//! Contract: `Retrying::again` said "once one has succeeded, a further
//! call allocates again, uncounted", which `QCacheStats::hits` ("each
//! allocation of a cached size counts once, a hit or a miss") contradicts,
//! and a call after a first try served by a slab even took that miss away
//! (found by the first test). Now (src/sync/retrying.rs, `again`): "once
//! one has succeeded, a call is a new allocation, counted as
//! `CpuCaches::alloc` counts one (the allocation this value stands for
//! keeps its own count)". Counts are read after the caches are dropped
//! (they flush).

use vmspace::qcache::QCacheStats;
use vmspace::{Addr, Size};

mod pins;
use pins::{with_one_slot, Cpu, Setup, Shared};

const Q: usize = 16;
const SPAN: usize = 1 << 16;

fn with_caches<R>(f: impl FnOnce(&Shared<'_>, &Cpu<'_, '_>) -> R) -> (R, QCacheStats) {
    with_one_slot(Setup::new("r34", Q, SPAN), f)
}

/// First try a miss that succeeded (empty magazines: a refill from the
/// slabs), then `again` (now served by the magazine the refill installed):
/// the allocation is one miss, the further call an allocation of its own.
#[test]
fn again_after_a_missed_success_keeps_the_miss() {
    let (((), (), ()), st) = with_caches(|_, cpu| {
        let mut r = cpu.alloc_retrying(Size(Q)).expect("a cached size");
        let first = r.first().expect("fresh caches have space");
        let second = r.again().expect("the refilled magazine has more");
        assert_ne!(first, second, "handed out twice");
        drop(r);
        cpu.free(first, Size(Q)).unwrap();
        cpu.free(second, Size(Q)).unwrap();
        ((), (), ())
    });
    // The first allocation was served by a slab, not a magazine: a miss;
    // the second, an allocation of its own, served by the magazine the
    // refill installed: a hit.
    assert_eq!(st.misses, 1, "the first try's slab-served allocation is a miss: {st:?}");
    assert_eq!(st.hits, 1, "{st:?}");
}

/// First try a hit (a magazine held objects), then `again` a few times
/// (served by the magazine too): the first allocation one hit, and each
/// further call an allocation of its own, counted once.
#[test]
fn again_after_a_hit_is_an_allocation_of_its_own() {
    let (made, st) = with_caches(|_, cpu| {
        // Fill the magazine: two misses-then-hits ... simply allocate and
        // free a few objects (each allocation counted once).
        let xs: Vec<Addr> = (0..4).map(|_| cpu.alloc(Size(Q)).unwrap()).collect();
        let made = xs.len() as u64;
        for &x in &xs {
            cpu.free(x, Size(Q)).unwrap();
        }
        let mut r = cpu.alloc_retrying(Size(Q)).expect("a cached size");
        let first = r.first().expect("a magazine holds objects");
        let more: Vec<Addr> = (0..3).map(|_| r.again().unwrap()).collect();
        drop(r);
        let mut all = more.clone();
        all.push(first);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4, "handed out twice: {first:?} {more:?}");
        for x in all {
            cpu.free(x, Size(Q)).unwrap();
        }
        made + 1 + more.len() as u64
    });
    assert_eq!(st.hits + st.misses, made, "each allocation once: {st:?}");
}
