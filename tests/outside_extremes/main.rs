//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the largest and smallest values the types hold, through
//! every public entry point (spans at 0 and at the top of the address
//! space, sizes of 0, 1 and `usize::MAX`, constraints at their largest,
//! imports from a parent at the top, quantum-cache class boundaries, the VM
//! layer, the VM arena and the chunk map at their extremes). Every call with
//! caller input must succeed or return a documented error; afterwards
//! `check()` holds and what was allocated frees again.

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::{Addr, Size};

const TOP: usize = usize::MAX;

struct Bufs {
    tags: Vec<u8>,
    hash: Vec<u8>,
}

fn bufs() -> Bufs {
    Bufs { tags: vec![0; 1 << 16], hash: vec![0; 1 << 12] }
}

fn arena(b: &mut Bufs, q: usize) -> Arena<SliceStore<'_>, NoSource> {
    Arena::new("x", Size(q), SliceStore::new(&mut b.tags), SliceStore::new(&mut b.hash), NoSource)
        .unwrap()
}

/// The arena is consistent, holds nothing allocated and its sizes add up.
fn idle<S: vmspace::arena::Store, I: vmspace::arena::Source>(a: &Arena<S, I>) {
    a.check().unwrap();
    let s = a.sizes();
    assert_eq!(s.allocated, Size(0), "allocated after freeing everything");
    assert_eq!(s.unflushed, Size(0));
    assert_eq!(s.free.0 + s.allocated.0 + s.unflushed.0, s.total.0);
    assert_eq!(a.live(), 0);
}

// ---------------------------------------------------------------- arena

#[test]
fn quantum_domain() {
    for q in [0usize, 3, 5, 6, 1 << 28, 1 << 63, TOP, TOP - 1, (1 << 27) + 1] {
        let mut b = bufs();
        let r = Arena::new(
            "q",
            Size(q),
            SliceStore::new(&mut b.tags),
            SliceStore::new(&mut b.hash),
            NoSource,
        );
        assert!(
            matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))),
            "quantum {q:#x}"
        );
    }
    for q in [1usize, 2, 1 << 27] {
        let mut b = bufs();
        let a = arena(&mut b, q);
        assert_eq!(a.quantum(), Size(q));
        a.check().unwrap();
    }
}

/// The largest span an arena can hold, `[0, usize::MAX)`, handed out whole
/// under every policy, by address and by handle, then freed.
#[test]
fn the_largest_span_and_allocation() {
    for p in Policy::ALL {
        let mut b = bufs();
        let mut a = arena(&mut b, 1);
        a.add(Addr(0), Size(TOP)).unwrap();
        assert_eq!(a.sizes().total, Size(TOP));
        assert_eq!(a.largest_free(), Size(TOP));
        assert_eq!(a.fragmentation(), 0);
        let h = a.free_histogram();
        assert_eq!(h[63], 1, "a free segment of 2^64 - 1 units is in [2^63, 2^64)");
        assert_eq!(h.iter().sum::<usize>(), 1);
        let x = a.alloc(Size(TOP), p).unwrap();
        assert_eq!(x, Addr(0), "{p:?}");
        a.check().unwrap();
        assert_eq!(a.sizes().allocated, Size(TOP));
        assert_eq!(a.sizes().free, Size(0));
        assert_eq!(
            a.lookup(Addr(0)),
            Some((vmspace::Range::new(Addr(0), Addr(TOP)).unwrap(), Size(TOP)))
        );
        let segs: Vec<_> = a.walk(SegmentKinds::ALLOCATED).collect();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].requested, Size(TOP));
        // Nothing more fits.
        assert!(matches!(a.alloc(Size(1), p), Err(ArenaError::NoSpace { .. })));
        // Wrong sizes are bad frees that change nothing.
        for s in [0usize, 1, TOP - 1] {
            assert!(matches!(a.free(x, Size(s)), Err(ArenaError::BadFree { .. })), "{s}");
        }
        a.free(x, Size(TOP)).unwrap();
        idle(&a);
        assert_eq!(a.sizes().free, Size(TOP));
        let c = a.counters();
        assert_eq!((c.allocs, c.frees), (1, 1));

        // By handle, deferred.
        let h = a.alloc_handle(Size(TOP), p).unwrap();
        assert_eq!(h.addr(), Addr(0));
        assert_eq!(a.free_handle_deferred(h), Ok(Size(TOP)));
        assert_eq!(a.sizes().unflushed, Size(TOP));
        a.check().unwrap();
        assert!(a.alloc(Size(1), p).is_err(), "unflushed is not allocatable");
        assert_eq!(a.flushed(), Size(TOP));
        idle(&a);
        // Constrained, the whole span.
        let x = a
            .xalloc(&Constraints::new(Size(TOP)).policy(p).min_addr(Addr(0)).max_addr(Addr(TOP)))
            .unwrap();
        assert_eq!(x, Addr(0));
        a.free_deferred(x, Size(TOP)).unwrap();
        assert_eq!(a.flushed(), Size(TOP));
        idle(&a);
    }
}

/// Sizes that cannot be rounded to the quantum, or are zero, are errors
/// through every allocating entry point; nothing changes but the failure
/// counter.
#[test]
fn absurd_sizes_are_errors() {
    for q in [1usize, 16, 1 << 27] {
        let mut b = bufs();
        let mut a = arena(&mut b, q);
        a.add(Addr(q), Size(64 * q)).unwrap();
        let before = a.sizes();
        for s in [0usize, TOP, TOP - 1, TOP - q + 1, 1 << 63, (1 << 63) + 1] {
            for p in Policy::ALL {
                assert!(a.alloc(Size(s), p).is_err(), "alloc {s:#x} q {q}");
                assert!(a.alloc_handle(Size(s), p).is_err(), "alloc_handle {s:#x} q {q}");
                assert!(a.xalloc(&Constraints::new(Size(s)).policy(p)).is_err());
                assert!(a.xalloc_handle(&Constraints::new(Size(s)).policy(p)).is_err());
                assert!(a
                    .xalloc(
                        &Constraints::new(Size(s)).policy(p).from_top(true).align(Size(1 << 63))
                    )
                    .is_err());
            }
            assert!(a.free(Addr(q), Size(s)).is_err());
            assert!(a.free_deferred(Addr(q), Size(s)).is_err());
            a.check().unwrap();
        }
        assert_eq!(a.sizes(), before);
        // The largest size that rounds to the quantum, when it fits no span.
        let s = TOP - q + 1;
        assert!(matches!(a.alloc(Size(s), Policy::BestFit), Err(ArenaError::NoSpace { .. })));
        idle(&a);
    }
}

mod placement;

/// Sizes, counters and the histogram after the largest allocation at the
/// top and many small ones; everything balances after freeing.
#[test]
fn statistics_balance_at_the_extremes() {
    let mut b = bufs();
    let mut a = arena(&mut b, 1);
    a.add(Addr(0), Size(1 << 63)).unwrap();
    a.add(Addr(1 << 63), Size(TOP - (1 << 63))).unwrap();
    assert_eq!(a.sizes().total, Size(TOP));
    assert_eq!(a.fragmentation(), 500, "two free halves, 2^63 and 2^63 - 1");
    let x = a.alloc(Size(1 << 63), Policy::BestFit).unwrap();
    let y = a.alloc(Size(TOP - (1 << 63)), Policy::BestFit).unwrap();
    assert_eq!(a.sizes().allocated, Size(TOP));
    assert_eq!(a.fragmentation(), 0);
    assert_eq!(a.largest_free(), Size(0));
    assert_eq!(a.free_histogram().iter().sum::<usize>(), 0);
    a.free(x, Size(1 << 63)).unwrap();
    a.free(y, Size(TOP - (1 << 63))).unwrap();
    idle(&a);
    let c = a.counters();
    assert_eq!((c.allocs, c.frees, c.failures, c.bad_frees), (2, 2, 0, 0));
    let segs: Vec<_> = a.walk(SegmentKinds::ALL).collect();
    assert_eq!(segs.len(), 4);
    assert!(segs.iter().any(|s| s.kind == SegmentKind::Free && s.range.limit() == Addr(TOP)));
}

// ---------------------------------------------------------------- VM layer

mod vm_layer;

// ---------------------------------------------------------------- VM arena

mod vm_arena;

// ---------------------------------------------------------------- chunk map

mod chunk_map;

// ---------------------------------------------------------------- more arena

/// "The number of free segments with size in `[2^k, 2^(k+1))`, for each
/// `k`" (arena/stats.rs): sizes are in units, whatever the quantum.
#[test]
fn histogram_counts_units_at_every_quantum() {
    for shift in [0u32, 4, 12, 27] {
        let q = 1usize << shift;
        let mut b = bufs();
        let mut a = arena(&mut b, q);
        // Free segments of q, 3q, 2^40 (or q) and the rest of the top
        // half, in separate spans.
        let big = (1usize << 40).max(q);
        a.add(Addr(0), Size(q)).unwrap();
        a.add(Addr(1 << 32), Size(3 * q)).unwrap();
        a.add(Addr(1 << 48), Size(big)).unwrap();
        let limit = TOP & !(q - 1);
        a.add(Addr(1 << 63), Size(limit - (1 << 63))).unwrap();
        let mut want = [0usize; 64];
        for s in [q, 3 * q, big, limit - (1 << 63)] {
            want[(usize::BITS - 1 - s.leading_zeros()) as usize] += 1;
        }
        let h = a.free_histogram();
        assert_eq!(&h[..], &want[..], "q {q}");
        assert_eq!(a.largest_free(), Size(limit - (1 << 63)));
        let total = q + 3 * q + big + (limit - (1 << 63));
        assert_eq!(a.sizes().free, Size(total));
        let f = a.fragmentation();
        let exact = 1000 - ((limit - (1 << 63)) as u128 * 1000 / total as u128) as u32;
        assert_eq!(f, exact, "q {q}");
        a.check().unwrap();
    }
}

/// Allocations whose addresses differ only in their highest bits (every
/// one lands in one hash bucket if the hash looks at low bits): frees stay
/// exact, the hash stays consistent.
#[test]
fn allocations_differing_only_in_high_bits() {
    let q = 4096usize;
    let mut b = Bufs { tags: vec![0; 1 << 16], hash: vec![0; 256] };
    let mut a = arena(&mut b, q);
    let mut live = Vec::new();
    for k in 0..15usize {
        let base = (k + 1) << 60;
        a.add(Addr(base), Size(4 * q)).unwrap();
        for j in 0..4 {
            let x = a.xalloc(&Constraints::new(Size(q)).exact(Addr(base + j * q))).unwrap();
            live.push(x);
        }
    }
    a.check().unwrap();
    assert_eq!(a.live(), 60);
    for (i, x) in live.iter().enumerate() {
        assert_eq!(a.lookup(*x).map(|l| l.1), Some(Size(q)), "{i}");
        assert!(a.free(*x, Size(q - 1)).is_err());
    }
    for x in live {
        a.free(x, Size(q)).unwrap();
    }
    idle(&a);
}

#[test]
fn stores_at_their_extremes() {
    let mut buf = vec![0u8; 4096];
    for pm in [0usize, 1, 999, 1000, 1001, usize::MAX] {
        let (t, h) = SliceStore::split(&mut buf, pm);
        let _ = Arena::new("s", Size(16), t, h, NoSource);
    }
    let mut empty: [u8; 0] = [];
    let mut e2: [u8; 0] = [];
    assert!(Arena::new(
        "e",
        Size(16),
        SliceStore::new(&mut empty),
        SliceStore::new(&mut e2),
        NoSource
    )
    .is_err());
    let mut sbuf = vec![0u8; 1 << 20];
    let sim = vmspace_shim::sim::SimBackend::new(&mut sbuf, 64).unwrap();
    for m in [0usize, 1, vmspace::arena::MIN_TAGS - 1, usize::MAX, 1 << 62, 1 << 59, 1 << 40] {
        assert!(Arena::on_pages("p", Size(16), &sim, m, NoSource).is_err(), "max_tags {m:#x}");
    }
    for s in [usize::MAX, 1 << 63, usize::MAX - 62] {
        assert!(vmspace::arena::PageStore::new(&sim, Size(s)).is_err(), "{s:#x}");
    }
    assert_eq!(sim.stats().reservations, 0);
    let mut a = Arena::on_pages("p", Size(16), &sim, vmspace::arena::MIN_TAGS, NoSource).unwrap();
    a.add(Addr(TOP & !15), Size(0)).unwrap_err();
    a.add(Addr((TOP & !15) - 16), Size(16)).unwrap();
    let x = a.alloc(Size(16), Policy::NextFit).unwrap();
    a.free(x, Size(16)).unwrap();
    idle(&a);
}

// ---------------------------------------------------------------- sources

mod sources;

// ---------------------------------------------------------------- quantum caches

mod qcaches;

// ---------------------------------------------------------------- shim

mod shim_math;

mod zones_and_handles;
