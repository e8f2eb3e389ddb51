//! The arena at the ends of the address space: spans ending at the top and
//! starting at 0, constraints at their largest, frees, resizes and imports there.

use super::*;

/// A span whose last unit is the last address a `usize` range can reach
/// (its limit `usize::MAX`, or the highest multiple of the quantum), at
/// every quantum: allocation of its last quantum under every policy and
/// from the top, constrained placements at the top, free, free_part and
/// resize of the last quantum.
#[test]
fn span_ending_at_the_top_every_quantum() {
    for shift in [0u32, 1, 4, 12, 20, 27] {
        let q = 1usize << shift;
        // The highest limit that is a multiple of q and <= usize::MAX.
        let limit = TOP & !(q - 1);
        let base = limit - 8 * q;
        for p in Policy::ALL {
            let mut b = bufs();
            let mut a = arena(&mut b, q);
            a.add(Addr(base), Size(8 * q)).unwrap();
            assert!(a.contains(Addr(base), Size(8 * q)));
            assert!(a.contains(Addr(limit - q), Size(q)));
            assert!(!a.contains(Addr(limit - q), Size(q + 1)));
            assert!(!a.contains(Addr(limit), Size(TOP)));
            // The top quantum, from the top.
            let x = a.xalloc(&Constraints::new(Size(q)).policy(p).from_top(true)).unwrap();
            assert_eq!(x, Addr(limit - q), "q {q} {p:?} from the top");
            a.check().unwrap();
            // Exact at the top.
            a.free(x, Size(q)).unwrap();
            let y = a.xalloc(&Constraints::new(Size(q)).policy(p).exact(Addr(limit - q))).unwrap();
            assert_eq!(y, Addr(limit - q));
            a.free(y, Size(q)).unwrap();
            // A max_addr at the limit and a min_addr at the last quantum.
            let z = a
                .xalloc(
                    &Constraints::new(Size(q))
                        .policy(p)
                        .min_addr(Addr(limit - q))
                        .max_addr(Addr(limit)),
                )
                .unwrap();
            assert_eq!(z, Addr(limit - q));
            a.free(z, Size(q)).unwrap();
            // The whole span, then its last quantum freed by free_part, then
            // regrown by resize, then shrunk to one quantum.
            let w = a.alloc(Size(8 * q), p).unwrap();
            assert_eq!(w, Addr(base));
            a.free_part(w, Size(7 * q), Size(q)).unwrap();
            a.check().unwrap();
            assert_eq!(a.sizes().allocated, Size(7 * q));
            assert_eq!(a.lookup(w).map(|l| l.1), Some(Size(7 * q)));
            a.resize(w, Size(7 * q), Size(8 * q)).unwrap();
            a.check().unwrap();
            // Growing past the top of the span (and of the address space)
            // is NoSpace, nothing changed.
            for n in [8 * q + 1, 9 * q, TOP - base + 1, TOP - q + 1] {
                assert!(
                    matches!(a.resize(w, Size(8 * q), Size(n)), Err(ArenaError::NoSpace { .. })),
                    "q {q} grow to {n:#x}"
                );
            }
            // A size that cannot be rounded to the quantum: Overflow (q > 1).
            if q > 1 {
                assert_eq!(a.resize(w, Size(8 * q), Size(TOP)), Err(ArenaError::Overflow));
            }
            a.check().unwrap();
            a.resize(w, Size(8 * q), Size(1)).unwrap();
            a.check().unwrap();
            assert_eq!(a.sizes().allocated, Size(q));
            a.free(w, Size(1)).unwrap();
            idle(&a);
            // Last quantum, requested size not a multiple of the quantum.
            if q > 1 {
                let v = a.xalloc(&Constraints::new(Size(q - 1)).policy(p).from_top(true)).unwrap();
                assert_eq!(v, Addr(limit - q));
                a.free(v, Size(q - 1)).unwrap();
            }
            idle(&a);
        }
    }
}

/// A span at address 0: allocation at 0, constraints with a window at 0,
/// exact 0, and frees of address 0.
#[test]
fn span_at_zero() {
    for shift in [0u32, 4, 27] {
        let q = 1usize << shift;
        for p in Policy::ALL {
            let mut b = bufs();
            let mut a = arena(&mut b, q);
            a.add(Addr(0), Size(4 * q)).unwrap();
            let x = a.alloc(Size(1), p).unwrap();
            assert_eq!(x, Addr(0));
            assert_eq!(a.lookup(Addr(0)).map(|l| l.1), Some(Size(1)));
            a.free(Addr(0), Size(1)).unwrap();
            let y = a.xalloc(&Constraints::new(Size(q)).policy(p).max_addr(Addr(q))).unwrap();
            assert_eq!(y, Addr(0));
            a.free(y, Size(q)).unwrap();
            let y = a.xalloc(&Constraints::new(Size(q)).policy(p).exact(Addr(0))).unwrap();
            assert_eq!(y, Addr(0));
            a.free_deferred(y, Size(q)).unwrap();
            a.flushed();
            // Largest alignment and nocross with a span at 0.
            let y = a
                .xalloc(
                    &Constraints::new(Size(q))
                        .policy(p)
                        .align(Size(1 << 63))
                        .nocross(Size(1 << 63)),
                )
                .unwrap();
            assert_eq!(y, Addr(0));
            a.free(y, Size(q)).unwrap();
            // A window that ends at 0 or starts past the top.
            assert!(matches!(
                a.xalloc(&Constraints::new(Size(q)).policy(p).max_addr(Addr(0))),
                Err(ArenaError::OverConstrained(_))
            ));
            assert!(matches!(
                a.xalloc(&Constraints::new(Size(q)).policy(p).min_addr(Addr(TOP))),
                Err(ArenaError::OverConstrained(_))
            ));
            // Extend the span down? It starts at 0: up only.
            a.extend(Addr(4 * q), Size(q)).unwrap();
            assert_eq!(a.span_count(), 1);
            idle(&a);
            assert_eq!(a.sizes().total, Size(5 * q));
        }
    }
}

/// Extending a span downwards to address 0 and upwards to the last
/// reachable address.
#[test]
fn extend_to_zero_and_to_the_top() {
    for shift in [0u32, 12] {
        let q = 1usize << shift;
        let limit = TOP & !(q - 1);
        let mut b = bufs();
        let mut a = arena(&mut b, q);
        a.add(Addr(q), Size(q)).unwrap();
        a.extend(Addr(0), Size(q)).unwrap();
        a.add(Addr(limit - 4 * q), Size(q)).unwrap();
        a.extend(Addr(limit - 3 * q), Size(3 * q)).unwrap();
        a.check().unwrap();
        assert_eq!(a.span_count(), 2);
        assert_eq!(a.sizes().total, Size(6 * q));
        assert_eq!(a.largest_free(), Size(4 * q));
        // Extension past the top: an error, nothing changed.
        assert!(a.extend(Addr(limit), Size(q)).is_err());
        assert!(a.extend(Addr(limit), Size(TOP)).is_err());
        let x = a.xalloc(&Constraints::new(Size(4 * q)).exact(Addr(limit - 4 * q))).unwrap();
        a.free(x, Size(4 * q)).unwrap();
        // Filling the whole gap merges the two spans into one that runs
        // from 0 to the top.
        a.extend(Addr(2 * q), Size(limit - 6 * q)).unwrap();
        a.check().unwrap();
        assert_eq!(a.span_count(), 1);
        assert_eq!(a.sizes().total, Size(limit));
        assert_eq!(a.largest_free(), Size(limit));
        let x = a.alloc(Size(limit), Policy::InstantFit).unwrap();
        assert_eq!(x, Addr(0));
        a.free(x, Size(limit)).unwrap();
        idle(&a);
    }
}

/// Alignment, phase and nocross at their largest: align 2^63 with phase
/// 2^63 - q, nocross 2^63, on a span that covers both halves of the
/// address space.
#[test]
fn largest_align_phase_nocross() {
    for shift in [0u32, 12] {
        let q = 1usize << shift;
        for p in Policy::ALL {
            for top in [false, true] {
                let mut b = bufs();
                let mut a = arena(&mut b, q);
                let limit = TOP & !(q - 1);
                a.add(Addr(0), Size(limit)).unwrap();
                // phase = align - q: the only placement is 2^63 - q.
                let c = Constraints::new(Size(q))
                    .policy(p)
                    .from_top(top)
                    .align(Size(1 << 63))
                    .phase(Size((1 << 63) - q));
                let x = a.xalloc(&c).unwrap();
                assert_eq!(x, Addr((1 << 63) - q), "{p:?} top {top}");
                // nocross 2^63 with a size of 2^63: only [0, 2^63) fits.
                let c2 =
                    Constraints::new(Size(1 << 63)).policy(p).from_top(top).nocross(Size(1 << 63));
                assert!(
                    matches!(a.xalloc(&c2), Err(ArenaError::NoSpace { .. })),
                    "[0, 2^63) is cut by the first allocation"
                );
                a.free(x, Size(q)).unwrap();
                let y = a.xalloc(&c2).unwrap();
                assert_eq!(y, Addr(0), "{p:?} top {top}");
                a.check().unwrap();
                // The upper half less one quantum: aligned to 2^63, not
                // crossing 2^63.
                let c3 = Constraints::new(Size(limit - (1 << 63)))
                    .policy(p)
                    .from_top(top)
                    .align(Size(1 << 63))
                    .nocross(Size(1 << 63));
                let z = a.xalloc(&c3).unwrap();
                assert_eq!(z, Addr(1 << 63));
                assert_eq!(a.sizes().free, Size(0));
                a.free(y, Size(1 << 63)).unwrap();
                a.free(z, Size(limit - (1 << 63))).unwrap();
                idle(&a);
                // Size plus phase beyond nocross: over-constrained.
                let bad = Constraints::new(Size(2 * q))
                    .policy(p)
                    .align(Size(1 << 63))
                    .phase(Size((1 << 63) - q))
                    .nocross(Size(1 << 62));
                assert!(matches!(a.xalloc(&bad), Err(ArenaError::OverConstrained(_))));
                let bad = Constraints::new(Size((1 << 63) + q)).policy(p).nocross(Size(1 << 63));
                assert!(matches!(a.xalloc(&bad), Err(ArenaError::OverConstrained(_))));
                // phase equal to the alignment, alignment not a power of two.
                let bad =
                    Constraints::new(Size(q)).policy(p).align(Size(1 << 63)).phase(Size(1 << 63));
                assert!(matches!(a.xalloc(&bad), Err(ArenaError::InvalidArgument(_))));
                let bad = Constraints::new(Size(q)).policy(p).align(Size(TOP));
                assert!(matches!(a.xalloc(&bad), Err(ArenaError::InvalidArgument(_))));
                let bad = Constraints::new(Size(q)).policy(p).nocross(Size(TOP));
                assert!(matches!(a.xalloc(&bad), Err(ArenaError::InvalidArgument(_))));
                idle(&a);
            }
        }
    }
}

/// Frees, lookups and handles with extreme addresses and sizes: refused,
/// nothing changed, never a panic.
#[test]
fn extreme_frees_and_lookups() {
    let q = 16usize;
    let limit = TOP & !(q - 1);
    let mut b = bufs();
    let mut a = arena(&mut b, q);
    a.add(Addr(limit - 4 * q), Size(4 * q)).unwrap();
    let x = a.xalloc(&Constraints::new(Size(2 * q)).from_top(true)).unwrap();
    assert_eq!(x, Addr(limit - 2 * q));
    let h = a.xalloc_handle(&Constraints::new(Size(q)).from_top(true)).unwrap();
    let before = (a.sizes(), a.live());
    for addr in [0usize, 1, limit - q, limit, TOP, x.0 + q] {
        for s in [0usize, 1, q, 2 * q, TOP, TOP - q + 1] {
            if addr == x.0 && s == 2 * q {
                continue;
            }
            assert!(a.free(Addr(addr), Size(s)).is_err(), "free {addr:#x} {s:#x}");
            assert!(a.free_deferred(Addr(addr), Size(s)).is_err());
            assert!(a.free_part(Addr(addr), Size(s), Size(q)).is_err());
            assert!(a.free_part(Addr(addr), Size(q), Size(s)).is_err() || (addr == x.0 && s == q));
            assert!(a.resize(Addr(addr), Size(s), Size(q)).is_err());
            let _ = a.contains(Addr(addr), Size(s));
            let _ = a.lookup(Addr(addr));
        }
        for tag in [0u32, 1, u32::MAX, u32::MAX - 1, h.tag()] {
            if addr == h.addr().0 && tag == h.tag() {
                continue;
            }
            if let Some(f) = a.handle_from_parts(Addr(addr), tag) {
                assert!(matches!(a.free_handle(f), Err(ArenaError::BadHandle { .. })));
                assert!(a.free_handle_deferred(f).is_err());
                assert_eq!(a.lookup_handle(f), None);
            }
        }
    }
    // free_part with offset + size overflowing.
    assert!(a.free_part(x, Size(q), Size(TOP)).is_err());
    assert!(a.free_part(x, Size(TOP - q + 1), Size(q)).is_err());
    assert!(a.free_part(x, Size(TOP & !(q - 1)), Size(q)).is_err());
    assert!(a.free_part(x, Size(0), Size(0)).is_err());
    a.check().unwrap();
    assert_eq!((a.sizes(), a.live()), before);
    assert_eq!(a.free_handle(h), Ok(Size(q)));
    a.free(x, Size(2 * q)).unwrap();
    idle(&a);
}

/// The first and last quanta of the largest allocation: free_part of the
/// first and last quantum, and resize of the largest allocation.
#[test]
fn free_part_and_resize_of_the_largest_allocation() {
    let mut b = bufs();
    let mut a = arena(&mut b, 1);
    a.add(Addr(0), Size(TOP)).unwrap();
    let x = a.alloc(Size(TOP), Policy::FirstFit).unwrap();
    a.free_part(x, Size(TOP - 1), Size(1)).unwrap();
    a.check().unwrap();
    assert_eq!(a.lookup(x).map(|l| l.1), Some(Size(TOP - 1)));
    a.free_part(x, Size(0), Size(1)).unwrap();
    a.check().unwrap();
    // What stays is [1, TOP - 1), asked size TOP - 2.
    assert_eq!(a.lookup(Addr(1)).map(|l| l.1), Some(Size(TOP - 2)));
    assert_eq!(a.sizes().allocated, Size(TOP - 2));
    a.resize(Addr(1), Size(TOP - 2), Size(TOP - 1)).unwrap();
    assert!(matches!(a.resize(Addr(1), Size(TOP - 1), Size(TOP)), Err(ArenaError::NoSpace { .. })));
    a.check().unwrap();
    a.resize(Addr(1), Size(TOP - 1), Size(1)).unwrap();
    a.check().unwrap();
    assert_eq!(a.largest_free(), Size(TOP - 2));
    a.free(Addr(1), Size(1)).unwrap();
    idle(&a);
    assert_eq!(a.sizes().free, Size(TOP));
}

/// A child arena importing from a parent whose only span ends at the top
/// of the address space.
#[test]
fn import_from_a_parent_at_the_top() {
    for (pq, cq) in [(1usize, 1usize), (4096, 16), (1 << 20, 4096), (1 << 27, 1 << 27)] {
        let limit = TOP & !(pq - 1);
        let mut pb = bufs();
        let mut parent = arena(&mut pb, pq);
        parent.add(Addr(limit - 4 * pq), Size(4 * pq)).unwrap();
        {
            let mut cb = bufs();
            let mut child = Arena::new(
                "child",
                Size(cq),
                SliceStore::new(&mut cb.tags),
                SliceStore::new(&mut cb.hash),
                &mut parent,
            )
            .unwrap();
            let mut live = Vec::new();
            // Take the whole parent, one parent quantum at a time, from the
            // top.
            for _ in 0..4 {
                let x = child
                    .xalloc(&Constraints::new(Size(pq)).from_top(true).policy(Policy::BestFit))
                    .unwrap();
                live.push(x);
            }
            child.check().unwrap();
            assert_eq!(child.sizes().imported, Size(4 * pq));
            assert!(live.contains(&Addr(limit - pq)), "pq {pq}: {live:x?}");
            assert!(child.alloc(Size(cq), Policy::InstantFit).is_err());
            for x in live {
                child.free(x, Size(pq)).unwrap();
            }
            idle(&child);
            assert_eq!(child.sizes().total, Size(0), "every imported span went back");
            let c = child.counters();
            assert_eq!(c.imports, c.exports);
            // Asking the parent for more than it has, or more than can be
            // rounded to its quantum.
            assert!(child.alloc(Size(TOP - cq + 1), Policy::InstantFit).is_err());
            assert!(child.alloc(Size(5 * pq), Policy::InstantFit).is_err());
            assert!(child
                .xalloc(&Constraints::new(Size(cq)).align(Size(1 << 63)).policy(Policy::FirstFit))
                .is_err());
            idle(&child);
        }
        idle(&parent);
        assert_eq!(parent.sizes().free, Size(4 * pq));
    }
}
