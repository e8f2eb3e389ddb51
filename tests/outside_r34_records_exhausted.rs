//! Outside review, round 34: `CpuCaches::alloc_retrying` for a class whose
//! slab records are all taken (objects past them come from the arena
//! itself), retried after a free of such an arena-served object (held).
//!
//! Contracts (quoted):
//! - src/sync/retrying.rs:10-15 (`Retrying`): "[`again`](Self::again)
//!   tries it again, this CPU's magazines first, then the depot, the slabs
//!   and the arena. The allocation counts once in the statistics: a hit
//!   when a magazine served it, else a miss".
//! - src/qcache/slab.rs:30-31: `SLABS`, "Slab records per class
//!   (direct-mapped by address)".
//! - src/sync/arena.rs (`SyncArena::free`): "A bad free is an error and
//!   changes nothing": here none is bad; every object comes back.
//!
//! Deterministic: one thread, `NoWait`, the loop is the test's code.

use std::collections::HashSet;

use vmspace::arena::ArenaError;
use vmspace::qcache::{SlotFlag, OBJECTS, SLABS};
use vmspace::sync::CpuCaches;
use vmspace::Size;

mod pins;
use pins::{OneSlot, Setup, Slices};

const Q: usize = 16;
/// Room for twice the objects the slab records can hold.
const SPAN: usize = 2 * SLABS * OBJECTS * Q;

#[test]
fn retrying_past_the_slab_records_counts_once_and_loses_nothing() {
    // Metadata for the many objects of `SPAN`; caches for one quantum.
    let mut slices = Slices::new(Setup { meta: 1 << 20, classes: 1, ..Setup::new("r34", Q, SPAN) });
    let (s, mags) = slices.shared();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), mags).unwrap();
    let mut made = 0u64;
    let mut live = Vec::new();
    loop {
        made += 1;
        match cpu.alloc(Size(Q)) {
            Ok(x) => live.push(x),
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    let distinct: HashSet<usize> = live.iter().map(|a| a.0).collect();
    assert_eq!(distinct.len(), live.len(), "an object handed out twice");
    assert_eq!(live.len(), SPAN / Q, "every quantum of the span, slabs' or the arena's");
    let st = s.qcache_stats();
    assert!(st.slabs <= SLABS, "{st:?}");
    // Objects past the records: the arena's own (outside every slab). The
    // last one allocated is one, the slabs having been made first.
    let arena_served = *live.last().unwrap();
    // Full: the retrying allocation fails, and fails again.
    made += 1;
    let mut r = cpu.alloc_retrying(Size(Q)).expect("a cached size");
    assert!(matches!(r.first(), Err(ArenaError::NoSpace { .. })), "{:?}", r.first());
    for _ in 0..100 {
        assert!(matches!(r.again(), Err(ArenaError::NoSpace { .. })));
    }
    // An arena-served object back: the next try gets that space.
    let gone = live.pop().unwrap();
    assert_eq!(gone, arena_served);
    cpu.free(gone, Size(Q)).unwrap();
    let got = r.again().expect("the freed space");
    drop(r);
    assert_eq!(got, gone);
    live.push(got);
    for x in live {
        cpu.free(x, Size(Q)).unwrap();
    }
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
    assert_eq!(st.bad_frees, 0, "{st:?}");
    s.reclaim();
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(st.slabs, 0, "every slab back after the reclaim: {st:?}");
}
