//! Round 63c (outside reviewer): the native C API at edges the earlier
//! rounds' files do not name: a parent and child of different quanta, the
//! limit against an arena's initial span, histogram and contains at their
//! argument edges, handles with a forged fingerprint, flag combinations.

mod common;

use common::{alloc_flags as alloc, counters, sizes};
use core::ffi::c_int;
use std::ptr::null_mut;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::*;

const EINVAL: c_int = 22;
const ENOMEM: c_int = 12;
const ENOENT: c_int = 2;

fn make(p: vmspace_params) -> *mut vmspace_arena_t {
    let mut a = null_mut();
    // SAFETY: valid parameters and out pointer.
    let e = unsafe { vmspace_arena_create_ex(&p, &mut a) };
    assert_eq!(e, 0, "create_ex of {:?}", (p.base, p.size, p.quantum, p.qcache_max));
    a
}

fn free(a: *mut vmspace_arena_t, x: usize, size: usize) -> c_int {
    // SAFETY: a live arena.
    unsafe { vmspace_arena_free(a, x, size) }
}

fn check(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_check(a) }, 0);
}

fn destroy(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena nobody else uses.
    assert_eq!(unsafe { vmspace_arena_destroy(a) }, 0);
}

/// A child whose quantum is larger than its parent's, the parent's span not
/// aligned to the child's quantum: the child's allocations must be
/// multiples of its own quantum (vmspace.h: "An arena handing out multiples
/// of `quantum`"), imports go back on free, and both arenas check.
#[test]
fn a_child_with_a_larger_quantum_than_its_parent() {
    let parent = make(vmspace_params {
        base: 0x1000,
        size: 0x100_0000,
        quantum: 0x1000,
        ..Default::default()
    });
    let child = make(vmspace_params { quantum: 0x10000, parent, ..Default::default() });
    let mut got = vec![];
    for size in [0x10000usize, 1, 0x18000, 0x10000] {
        let x = alloc(child, size, 0).unwrap_or_else(|e| panic!("child alloc {size:#x}: {e}"));
        assert_eq!(x % 0x10000, 0, "child (quantum 0x10000) handed out {x:#x}");
        got.push((x, size));
        check(child);
        check(parent);
    }
    for (x, size) in got {
        assert_eq!(free(child, x, size), 0);
    }
    check(child);
    check(parent);
    assert_eq!(sizes(child).allocated, 0);
    destroy(child);
    assert_eq!(sizes(parent).allocated, 0, "the parent still holds the child's imports");
    check(parent);
    destroy(parent);
}

/// A child with a smaller quantum than its parent: it imports whole parent
/// quanta, hands out its own, and gives them back.
#[test]
fn a_child_with_a_smaller_quantum_than_its_parent() {
    let parent = make(vmspace_params {
        base: 0x10_0000,
        size: 0x10_0000,
        quantum: 0x1000,
        ..Default::default()
    });
    let child = make(vmspace_params { quantum: 8, parent, ..Default::default() });
    let xs: Vec<usize> = (0..600).map(|_| alloc(child, 8, 0).unwrap()).collect();
    assert!(xs.iter().all(|x| x % 8 == 0));
    let mut sorted = xs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), xs.len(), "an address handed out twice");
    check(child);
    for x in xs {
        assert_eq!(free(child, x, 8), 0);
    }
    check(child);
    assert_eq!(sizes(child).imported, 0, "imports kept after every free");
    destroy(child);
    assert_eq!(sizes(parent).allocated, 0);
    destroy(parent);
}

/// vmspace.h: "Imports fail once the arena's spans (added and imported)
/// would pass `limit` units". An arena made with an initial span of 0x4000
/// and a limit of 0x4000 must not import; at 0x5000 it may import 0x1000
/// once.
#[test]
fn the_limit_counts_the_initial_span_and_added_spans() {
    let parent = make(vmspace_params {
        base: 0x100_0000,
        size: 0x100_0000,
        quantum: 0x1000,
        ..Default::default()
    });
    let a = make(vmspace_params {
        base: 0x1000,
        size: 0x4000,
        quantum: 0x1000,
        parent,
        ..Default::default()
    });
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_limit(a, 0x4000) }, 0);
    let x = alloc(a, 0x4000, 0).unwrap();
    assert_eq!(alloc(a, 0x1000, 0), Err(-ENOMEM), "imported past the limit");
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_limit(a, 0x5000) }, 0);
    let y = alloc(a, 0x1000, 0).expect("one quantum fits under the raised limit");
    assert_eq!(alloc(a, 0x1000, 0), Err(-ENOMEM), "a second import passes 0x5000");
    // An added span counts too: the limit is now passed by the add alone.
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_add(a, 0x20_0000, 0x1000, 0) }, 0);
    let z = alloc(a, 0x1000, 0).expect("the added span serves");
    assert_eq!(alloc(a, 0x1000, 0), Err(-ENOMEM), "imported past the limit after an add");
    for (p, s) in [(x, 0x4000), (y, 0x1000), (z, 0x1000)] {
        assert_eq!(free(a, p, s), 0);
    }
    check(a);
    destroy(a);
    assert_eq!(sizes(parent).allocated, 0);
    destroy(parent);
}

/// vmspace.h: histogram "returns the number of bins written" for "the
/// first nbins (at most VMSPACE_HISTOGRAM_BINS)"; contains is 1 or 0 (an
/// overflowing range is simply not inside).
#[test]
fn histogram_and_contains_at_their_edges() {
    let a =
        make(vmspace_params { base: 0x1000, size: 0x3000, quantum: 0x1000, ..Default::default() });
    let mut bins = [u64::MAX; 80];
    // SAFETY: a live arena, 80 writable bins.
    let n = unsafe { vmspace_arena_histogram(a, bins.as_mut_ptr(), 80) };
    assert_eq!(n, VMSPACE_HISTOGRAM_BINS as c_int);
    assert_eq!(bins[13], 1, "one free segment of 0x3000: [8 KiB, 16 KiB)");
    assert!(bins[64..].iter().all(|&b| b == u64::MAX), "wrote past the 64 bins");
    // SAFETY: a live arena; no bins to write.
    let n0 = unsafe { vmspace_arena_histogram(a, bins.as_mut_ptr(), 0) };
    assert_eq!(n0, 0);
    // SAFETY: a live arena; usize::MAX bins (only 64 written).
    let nmax = unsafe { vmspace_arena_histogram(a, bins.as_mut_ptr(), usize::MAX) };
    assert_eq!(nmax, VMSPACE_HISTOGRAM_BINS as c_int);
    let cases: [(usize, usize, c_int); 9] = [
        (0x1000, 0x3000, 1),
        (0x4000, 0, 1),
        (0x4000, 1, 0),
        (0x1000, 0, 1),
        (0xfff, 0, 0),
        (0xfff, 2, 0),
        (0x2000, usize::MAX, 0),
        (usize::MAX, 1, 0),
        (usize::MAX, 0, 0),
    ];
    for (addr, size, want) in cases {
        // SAFETY: a live arena.
        let got = unsafe { vmspace_arena_contains(a, addr, size) };
        assert_eq!(got, want, "contains({addr:#x}, {size:#x})");
    }
    destroy(a);
}

/// A handle with its fingerprint changed is foreign: -ENOENT, nothing
/// freed, the real handle still frees. A handle with tag 0: -ENOENT.
#[test]
fn forged_handles_are_refused() {
    let a =
        make(vmspace_params { base: 0x1000, size: 0x10000, quantum: 0x1000, ..Default::default() });
    let mut h = vmspace_handle::default();
    // SAFETY: a live arena, a writable handle.
    assert_eq!(unsafe { vmspace_arena_alloc_handle(a, 0x2000, 0, &mut h) }, 0);
    for forged in [
        vmspace_handle { arena: h.arena ^ 1, ..h },
        vmspace_handle { arena: 0, ..h },
        vmspace_handle { tag: 0, ..h },
        vmspace_handle { tag: h.tag.wrapping_add(1), ..h },
        vmspace_handle { addr: h.addr + 0x1000, ..h },
        vmspace_handle { tag: u32::MAX, ..h },
    ] {
        let mut s = 7;
        // SAFETY: a live arena; `s` writable.
        let e = unsafe { vmspace_arena_free_handle(a, forged, &mut s) };
        assert_eq!(e, -ENOENT, "forged {:?}", (forged.addr, forged.tag, forged.arena));
        assert_eq!(s, 7, "size written on a refused free");
        assert_eq!(sizes(a).allocated, 0x2000);
    }
    let mut s = 0;
    // SAFETY: as above.
    assert_eq!(unsafe { vmspace_arena_free_handle(a, h, &mut s) }, 0);
    assert_eq!(s, 0x2000);
    assert_eq!(counters(a).bad_frees, 6);
    check(a);
    destroy(a);
}

/// Flags: two policies, unknown bits and VMSPACE_EXACT outside xalloc are
/// -EINVAL and change nothing; VMSPACE_TOP with VMSPACE_FIRSTFIT takes the
/// highest place (vmspace.h: "with TOP: the highest"); TOP for a
/// quantum-cached size bypasses the caches and frees normally.
#[test]
fn flag_combinations() {
    let a = make(vmspace_params {
        base: 0x10000,
        size: 0x10000,
        quantum: 0x10,
        qcache_max: 0x40,
        ..Default::default()
    });
    for bad in [VMSPACE_BESTFIT | VMSPACE_FIRSTFIT, VMSPACE_EXACT, 0x100, 0x200, c_int::MIN, -1] {
        assert_eq!(alloc(a, 0x10, bad), Err(-EINVAL), "flags {bad:#x}");
        let mut x = 0;
        // SAFETY: a live arena.
        let e = unsafe { vmspace_arena_alloc_timed(a, 0x10, bad, 0, &mut x) };
        assert_eq!(e, -EINVAL, "timed flags {bad:#x}");
    }
    assert_eq!(sizes(a).allocated, 0);
    let top = alloc(a, 0x100, VMSPACE_TOP | VMSPACE_FIRSTFIT).unwrap();
    assert_eq!(top, 0x20000 - 0x100, "TOP|FIRSTFIT not at the highest place");
    let hits = counters(a).qcache_hits + counters(a).qcache_misses;
    let small = alloc(a, 0x20, VMSPACE_TOP).unwrap();
    assert_eq!(small, 0x20000 - 0x120, "TOP for a cached size not at the top");
    assert_eq!(counters(a).qcache_hits + counters(a).qcache_misses, hits);
    assert_eq!(free(a, small, 0x20), 0);
    assert_eq!(free(a, top, 0x100), 0);
    // SAFETY: a live arena.
    unsafe { vmspace_arena_reclaim(a) };
    assert_eq!(sizes(a).allocated, 0);
    check(a);
    destroy(a);
}

/// xalloc's documented argument checks: align not a power of two, nocross
/// not a power of two, phase at or past align, a window [min, max) too
/// small for the size: errors, nothing allocated; exact outside [min,
/// max) fails.
#[test]
fn xalloc_constraints_that_cannot_be_met() {
    let a =
        make(vmspace_params { base: 0x10000, size: 0x10000, quantum: 0x10, ..Default::default() });
    #[allow(clippy::type_complexity)]
    let cases: [(usize, usize, usize, usize, usize, usize, usize, c_int); 8] = [
        // size, align, phase, nocross, min, max, exact, flags
        (0x10, 0x30, 0, 0, 0, 0, 0, 0),
        (0x10, 0, 0, 0x30, 0, 0, 0, 0),
        (0x10, 0x100, 0x100, 0, 0, 0, 0, 0),
        (0x10, 0x100, 0x108, 0, 0, 0, 0, 0),
        (0x200, 0, 0, 0x100, 0, 0, 0, 0),
        (0x100, 0, 0, 0, 0x18000, 0x18080, 0, 0),
        (0x100, 0, 0, 0, 0x18000, 0x19000, 0x10000, VMSPACE_EXACT),
        (0x100, 0, 0, 0, 0x19000, 0x18000, 0, 0),
    ];
    for (size, align, phase, nocross, min, max, exact, flags) in cases {
        let mut x = 0xdead;
        // SAFETY: a live arena, a writable out pointer.
        let e = unsafe {
            vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, exact, flags, &mut x)
        };
        assert!(e < 0, "xalloc {:?} gave {x:#x}", (size, align, phase, nocross, min, max, exact));
        assert_eq!(x, 0xdead, "out pointer written on failure");
        assert_eq!(sizes(a).allocated, 0);
    }
    check(a);
    destroy(a);
}

/// vmspace.h, qcache_max: "sizes up to this use per-CPU quantum caches:
/// rounded down to whole quanta, at most 8; none for quanta over 2^22".
/// Whether an allocation went through the caches shows in
/// qcache_hits + qcache_misses (each cached allocation counts once).
#[test]
fn qcache_max_is_rounded_down_and_capped() {
    fn cached(q: usize, qmax: usize, size: usize) -> bool {
        let a = make(vmspace_params {
            base: 1 << 40,
            size: 1 << 36,
            quantum: q,
            qcache_max: qmax,
            ..Default::default()
        });
        let before = counters(a);
        let x = alloc(a, size, 0).unwrap_or_else(|e| panic!("q {q:#x} size {size:#x}: {e}"));
        let after = counters(a);
        assert_eq!(free(a, x, size), 0);
        check(a);
        destroy(a);
        after.qcache_hits + after.qcache_misses > before.qcache_hits + before.qcache_misses
    }
    let q = 0x1000;
    assert!(cached(q, q, q));
    assert!(!cached(q, q, 2 * q), "qcache_max q served 2q from the caches");
    assert!(cached(q, q + q / 2, q), "1.5 quanta rounds down to 1");
    assert!(!cached(q, q + q / 2, 2 * q), "1.5 quanta served 2 quanta");
    assert!(cached(q, 100 * q, 8 * q), "8 quanta under a large qcache_max");
    assert!(!cached(q, 100 * q, 9 * q), "9 quanta from the caches: the cap is 8");
    assert!(!cached(q, q - 1, 1), "below one quantum: no caches");
    assert!(!cached(q, usize::MAX, 9 * q));
    assert!(cached(1 << 22, 1 << 22, 1 << 22), "quantum 2^22 has caches");
    assert!(!cached(1 << 23, 1 << 23, 1 << 23), "quantum 2^23 has none");
}
