//! Outside review, round 44: `KeepFree` (src/sources/keep.rs) and
//! `Source::refused` (src/arena/source.rs:97-100).
//!
//! `KeepFree::refused` forwarded to the source below but left the range in
//! its ring of spans handed out ("vouched for"); fixed since (it is no
//! longer vouched for). A `VmSource` takes a
//! refused range back (src/sources/vm.rs:218-228: "taken back as a
//! give-back (unmapped, free again)"), so the ring then vouches for a range
//! the source below holds free.
//!
//! Tests named `defect_*` failed on the code reviewed and pass since the
//! fix; `holds_*` passed.

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{PageOps, Range, Size};

const PAGE: usize = 4096;

mod outside_keep_common;
use outside_keep_common::{vmsource, Vs};

/// A `VmSource` of 64 pages over `ops`.
fn vm_source<P: PageOps + Clone>(ops: P) -> Vs<P> {
    vmsource(ops, 64)
}

/// Was a DEFECT (fixed). A range the importer refused (and the `VmSource` below took
/// back, unmapped) stays vouched for: a later give-back of it, which the
/// `VmSource` alone refuses (it holds the range free), is KEPT, and the
/// next import hands out a range that is not mapped.
///
/// Expected (src/sources/keep.rs:34-41): a give-back is "kept when it is
/// one of the last `2 N` spans this source handed out, not given back
/// since ...; any other give-back goes to `S`, which judges it as it would
/// without this source ... So a span this source could not vouch for is
/// never kept, and it adds no way to hand a range out twice." And
/// README.md:244-247 (same words). The refused range went back to `S`
/// through `refused` (source.rs:97-100: "A source that keeps accounts drops
/// the range from them here"), so the adapter cannot vouch for it: the
/// give-back must go to the `VmSource`, which answers `BadFree` (shown
/// below on a bare `VmSource`).
/// Actual: `release` returns `Ok` (counted `kept`), and the next import
/// returns the range while the VM has nothing mapped (`Source::import`:
/// "owned by the caller"; a `VmSource` import is mapped read-write).
/// Reproduces every run (deterministic).
#[test]
fn defect_a_refused_range_is_still_vouched_for_and_kept() {
    // Without the adapter: the VmSource refuses the give-back.
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut bare = vm_source(&sim);
    let r = bare.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    bare.refused(r);
    assert_eq!(bare.vm().mapped(), Size(0), "refused: taken back, unmapped");
    assert!(
        matches!(bare.release(r), Err(ArenaError::BadFree { .. })),
        "the VmSource alone refuses a give-back of a range it holds free"
    );
    drop(bare);

    // With the adapter.
    let mut k = KeepFree::<_, 2>::new(vm_source(&sim), Size(PAGE));
    let r = k.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    k.refused(r); // as an arena does (src/arena/alloc.rs:405-412)
    assert_eq!(k.inner().vm().mapped(), Size(0), "the VmSource took it back");
    let back = k.release(r);
    let again = k.import(Size(2 * PAGE), Size(PAGE));
    assert!(
        matches!(back, Err(ArenaError::BadFree { .. })),
        "a give-back of a range the adapter cannot vouch for goes to the VmSource, \
         which refuses it; got {back:?}, then import {again:?} with {:?} mapped \
         (counts {:?})",
        k.inner().vm().mapped(),
        k.counts()
    );
}

/// Was a DEFECT (fixed). The same through an arena only, no direct `Source` call: an
/// arena whose added span lies inside the `VmSource`'s range (a caller's
/// mistake, "which should cost nothing", src/sources/vm.rs:224-225)
/// refuses each import that overlaps it; every refusal leaves the range in
/// the adapter's ring, and the `VmSource` hands the same range out again,
/// so the ring notes one range twice and `check()` fails.
///
/// Expected: `KeepFree::check()` is `Ok` after any sequence of calls by an
/// arena (keep.rs:96-99 invariants: `out` are "ranges this source handed
/// out ... and has not had back since; none overlaps another"; keep.rs
/// `check` doc: "Check the type's invariants").
/// Actual: after the second refused import, `check()` is `Err("KeepFree: a
/// span handed out is empty, kept or noted twice")`. Deterministic.
#[test]
fn defect_refused_imports_leave_the_ring_noting_a_range_twice() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vs = vm_source(&sim);
    let base = vs.vm().base();
    let mut k = KeepFree::<_, 2>::new(vs, Size(PAGE));
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(PAGE), SliceStore::new(&mut t), SliceStore::new(&mut h), &mut k)
            .unwrap();
    // The caller's mistake: a span added inside the VM source's range.
    heap.add(base, Size(PAGE)).unwrap();
    for i in 0..2 {
        let e = heap.alloc(Size(2 * PAGE), Policy::InstantFit);
        assert!(matches!(e, Err(ArenaError::BadImport(_))), "refused import {i}: {e:?}");
        heap.check().unwrap();
        assert_eq!(heap.source().inner().vm().mapped(), Size(0), "taken back, unmapped");
        assert_eq!(heap.source().check(), Ok(()), "adapter's check after refused import {i}");
    }
}

/// Held: a give-back of a range never handed out (equal in size to a kept
/// one, or overlapping one noted in the ring) goes to the `VmSource`, which
/// refuses it; nothing is kept and the ring still vouches for the real one.
#[test]
fn holds_exact_match_only_in_the_ring() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut k = KeepFree::<_, 2>::new(vm_source(&sim), Size(PAGE));
    let a = k.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    let halves = [
        Range::from_size(a.base(), Size(PAGE)).unwrap(),
        Range::from_size(vmspace::Addr(a.base().0 + PAGE), Size(PAGE)).unwrap(),
        Range::from_size(a.base(), Size(4 * PAGE)).unwrap(),
    ];
    for r in halves {
        assert!(matches!(k.release(r), Err(ArenaError::BadFree { .. })), "{r}");
        assert_eq!(k.kept(), &[] as &[Range]);
    }
    assert_eq!(k.counts().release_failures, 3);
    k.release(a).unwrap();
    assert_eq!(k.kept(), &[a], "still vouched for, kept");
    k.check().unwrap();
    k.inner().check().unwrap();
}

/// Was a DEFECT (fixed; the same cause, its consequence). After a refused import, a
/// give-back of that range — which the `VmSource` alone refuses — is kept,
/// and the adapter then hands out two overlapping ranges: the `VmSource`
/// hands part of the range (free there) to the next import of another
/// size, and the kept copy goes to the next import of its size.
///
/// Expected (src/sources/keep.rs:38-40): "a span this source could not
/// vouch for is never kept, and it adds no way to hand a range out
/// twice"; `Source::import` (src/arena/source.rs:18-19): "overlapping
/// nothing else the source handed out".
/// Actual: `u1` and `u2` overlap, both outstanding. Deterministic.
#[test]
fn defect_a_refused_range_kept_is_handed_out_twice() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut k = KeepFree::<_, 2>::new(vm_source(&sim), Size(PAGE));
    let r = k.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    k.refused(r);
    let back = k.release(r); // refused by the VmSource alone (see above)
    let u1 = k.import(Size(PAGE), Size(PAGE)).unwrap();
    let u2 = k.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    assert!(
        !u1.overlaps(&u2),
        "{u1} and {u2} both handed out (give-back of {r} after refused: {back:?})"
    );
}
