//! Round 66 outside review: `Arena::largest_free`, `fragmentation`,
//! `free_histogram`, `give_back_free_spans` and `into_source`
//! (src/arena/stats.rs, span.rs, teardown.rs) with unflushed frees,
//! handles, a parent arena behind a `RefCell`, quanta of 2^27 (the documented maximum) and spans at
//! the top of the address space.

use std::cell::RefCell;

use vmspace::arena::{Arena, ArenaError, NoSource, Policy};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Size};

const PAGE: usize = 4096;
/// The largest quantum allowed (mod.rs:217: "at most 2^27").
const Q40: usize = 1 << 27;

fn hist_total(h: &[usize]) -> usize {
    h.iter().sum()
}

/// stats.rs:262-265: fragmentation is "Zero only when the free space is
/// one segment (or there is none), 1 for any split of it however slight";
/// unflushed segments are not free (stats.rs:20-22), so they split the
/// free space until `flushed`; the histogram counts free segments by
/// `[2^k, 2^(k+1))` (stats.rs:240-241).
#[test]
fn unflushed_and_held_segments_split_free_space_at_the_top() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = Arena::on_pages("r66", Size(Q40), &sim, 4096, NoSource).unwrap();
    // A span ending at the highest quantum-aligned limit: 2^64 - 2^27.
    let limit = usize::MAX - (Q40 - 1);
    let base = limit - 64 * Q40;
    a.add(Addr(base), Size(64 * Q40)).unwrap();
    assert_eq!((a.largest_free(), a.fragmentation()), (Size(64 * Q40), 0));
    let h = a.free_histogram();
    assert_eq!((h[33], hist_total(&h)), (1, 1));
    let x = a.alloc(Size(Q40), Policy::FirstFit).unwrap();
    let y = a.alloc_handle(Size(Q40), Policy::FirstFit).unwrap();
    let z = a.alloc(Size(Q40), Policy::FirstFit).unwrap();
    assert_eq!(x, Addr(base));
    assert_eq!((a.largest_free(), a.fragmentation()), (Size(61 * Q40), 0));
    // x unflushed, y (held) freed at once: free space is y alone and the
    // rest above z.
    a.free_deferred(x, Size(Q40)).unwrap();
    assert_eq!(a.free_handle(y).unwrap(), Size(Q40));
    assert_eq!(a.largest_free(), Size(61 * Q40));
    // 1000 * (1 - 61/62) = 16.1..., rounded up.
    assert_eq!(a.fragmentation(), 17);
    let h = a.free_histogram();
    assert_eq!((h[27], h[32], hist_total(&h)), (1, 1, 2), "{h:?}");
    // Freeing z joins y, z and the rest; x still unflushed.
    a.free(z, Size(Q40)).unwrap();
    assert_eq!((a.largest_free(), a.fragmentation()), (Size(63 * Q40), 0));
    assert_eq!(a.sizes().unflushed, Size(Q40));
    assert_eq!(a.flushed(), Size(Q40));
    assert_eq!((a.largest_free(), a.fragmentation()), (Size(64 * Q40), 0));
    let h = a.free_histogram();
    assert_eq!((h[33], hist_total(&h)), (1, 1));
    a.check().unwrap();
}

/// Sizes near `usize::MAX` with quantum 1: a span `[1, usize::MAX)`; a
/// one-byte hole is "however slight" a split: fragmentation 1, not 0; the
/// histogram puts each piece by its size in bytes.
#[test]
fn near_max_sizes_one_byte_split() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = Arena::on_pages("r66", Size(1), &sim, 4096, NoSource).unwrap();
    a.add(Addr(1), Size(usize::MAX - 1)).unwrap();
    assert_eq!(a.largest_free(), Size(usize::MAX - 1));
    assert_eq!(a.fragmentation(), 0);
    assert_eq!(a.free_histogram()[63], 1);
    // Carve out one byte just above the bottom: free = [1,2) + [3, MAX).
    let x = a.alloc(Size(1), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(1), Policy::FirstFit).unwrap();
    assert_eq!((x, y), (Addr(1), Addr(2)));
    a.free(x, Size(1)).unwrap();
    assert_eq!(a.sizes().free, Size(usize::MAX - 2));
    assert_eq!(a.largest_free(), Size(usize::MAX - 3));
    assert_eq!(a.fragmentation(), 1);
    let h = a.free_histogram();
    assert_eq!((h[0], h[63], hist_total(&h)), (1, 1, 2));
    // The hole unflushed: not free, so the two pieces stay apart.
    a.free_deferred(y, Size(1)).unwrap();
    assert_eq!(a.sizes().free, Size(usize::MAX - 2));
    assert_eq!(a.fragmentation(), 1, "[1,2) and [3,MAX) are still apart");
    a.flushed();
    assert_eq!((a.largest_free(), a.fragmentation()), (Size(usize::MAX - 1), 0));
    a.check().unwrap();
}

/// A child importing from a `RefCell<Arena>` parent whose quantum is 2^27
/// and whose span is at the top of the address space. `into_source`
/// (teardown.rs:44-48) refuses while a segment waits for a flush — "only
/// then is anything given back" — and `give_back_free_spans` (span.rs:33-
/// 44) "Returns the bytes that left the arena"; `flushed` gives wholly
/// free imported spans back (deferred.rs:87-88).
#[test]
fn child_of_a_huge_quantum_parent_gives_back_only_when_flushed() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut p = Arena::on_pages("parent", Size(Q40), &sim, 4096, NoSource).unwrap();
    let limit = usize::MAX - (Q40 - 1);
    p.add(Addr(limit - 8 * Q40), Size(8 * Q40)).unwrap();
    let parent = RefCell::new(p);
    let mut c = Arena::on_pages("child", Size(PAGE), &sim, 4096, &parent).unwrap();
    let x = c.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    let h = c.alloc_handle(Size(PAGE), Policy::InstantFit).unwrap();
    let y = c.alloc(Size(Q40 + PAGE), Policy::InstantFit).unwrap();
    let imported = c.sizes().imported.0;
    assert_eq!(parent.borrow().sizes().allocated.0, imported);
    assert!(imported >= 2 * Q40 && imported % Q40 == 0, "{imported:#x}");
    assert!(y.0 + Q40 + PAGE <= limit);
    assert!(c.largest_free().0 + c.sizes().allocated.0 <= imported);
    assert_eq!(c.sizes().free.0, imported - (Q40 + 3 * PAGE));
    // Everything freed, x and the handle deferred.
    c.free_deferred(x, Size(PAGE)).unwrap();
    assert_eq!(c.free_handle_deferred(h).unwrap(), Size(PAGE));
    c.free(y, Size(Q40 + PAGE)).unwrap();
    // y's span (if apart from x's) went back at once; x's waits.
    let still = c.sizes().imported.0;
    assert_eq!(parent.borrow().sizes().allocated.0, still);
    assert!(still >= Q40);
    assert_eq!(c.give_back_free_spans(), Size(0));
    let c = match c.into_source() {
        Ok(_) => panic!("into_source with unflushed segments"),
        Err(r) => {
            assert_eq!(
                r.error(),
                ArenaError::InUse { what: "segments waiting for a flush", size: Size(2 * PAGE) }
            );
            r.into_inner()
        }
    };
    let mut c = c;
    assert_eq!(c.sizes().imported.0, still, "something was given back");
    assert_eq!(c.flushed(), Size(2 * PAGE));
    assert_eq!(c.sizes().imported, Size(0));
    assert_eq!(c.give_back_free_spans(), Size(0));
    assert_eq!((c.largest_free(), c.fragmentation()), (Size(0), 0));
    assert_eq!(hist_total(&c.free_histogram()), 0);
    let src = c.into_source().unwrap_or_else(|r| panic!("{:?}", r.error()));
    assert_eq!(src.borrow().sizes().allocated, Size(0));
    assert_eq!(src.borrow().largest_free(), Size(8 * Q40));
    src.borrow().check().unwrap();
}
