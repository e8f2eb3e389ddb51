//! Outside review, round 37: an unplaced per-CPU allocation when the
//! arena cannot allocate for want of boundary tags (not of space), while
//! objects of the class sit free in a slab.
//!
//! Contract (quoted): src/sync/percpu.rs:34-38 (`CpuCaches`): "When the pin
//! cannot place the caller on a slot (...), the call goes to the arena
//! instead (an allocation the arena has no space for takes an object from
//! the depot or the slabs, the rest of its magazine given back".
//! src/sync/percpu.rs:290-291 (`alloc_unplaced`): "Objects free in slabs
//! are allocated space as far as the arena knows: without this, such a
//! caller failed, and waited in vain, beside them."

mod pins;

use pins::{placed, set_slot, Setup, Slices};
use vmspace::arena::ArenaError;
use vmspace::Size;

const Q: usize = 16;

/// Round 37 finding, fixed. The arena's tag store is exhausted by uncached allocations
/// (`TagsExhausted`), while a slab of class 0 holds 49 free objects. A
/// placed miss on an empty slot takes one of them (the control); an
/// unplaced allocation goes to the arena, gets `TagsExhausted`, and
/// returns it: only `NoSpace` sends it on to the depot and the slabs
/// (src/sync/percpu.rs:295-298), so it fails beside the free objects the
/// round 36 fix was for. `check()` after each step.
#[test]
fn unplaced_allocation_fails_with_tags_exhausted_beside_free_slab_objects() {
    let mut setup = Setup::new("r37-tags", Q, 1 << 20);
    setup.meta = 4096;
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    set_slot(Some(0));
    let a = cpu.alloc(Size(Q)).unwrap(); // the slab: 15 to slot 0, 49 stay
    cpu.free(a, Size(Q)).unwrap();
    let mut big = Vec::new();
    let e = loop {
        match cpu.alloc(Size(5 * Q)) {
            Ok(x) => big.push(x),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, ArenaError::TagsExhausted), "{e:?}");
    s.check().unwrap();
    assert_eq!(s.qcache_stats().objects_in_slabs, 49);
    set_slot(Some(1));
    let placed = cpu.alloc(Size(Q)); // slot 1 empty: a miss, from the slab
    s.check().unwrap();
    set_slot(None);
    let unplaced = cpu.alloc(Size(Q));
    s.check().unwrap();
    let st = s.qcache_stats();
    set_slot(Some(1));
    for (x, size) in [(placed, Q), (unplaced, Q)] {
        if let Ok(x) = x {
            cpu.free(x, Size(size)).unwrap();
        }
    }
    for x in big {
        cpu.free(x, Size(5 * Q)).unwrap();
    }
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    assert!(placed.is_ok(), "control: {placed:?}");
    assert!(
        unplaced.is_ok(),
        "unplaced: {unplaced:?} with {} objects free in the slab: {st:?}",
        st.objects_in_slabs
    );
}
