//! Outside review, round 38: `Arena::on_pages` at `MAX_TAGS` and its
//! neighbours.
//!
//! Contract (quoted): src/arena/mod.rs:357-362 (`on_pages`): "with room
//! for exactly `max_tags` tags ... Fewer than [`MIN_TAGS`] is
//! [`InvalidArgument`](ArenaError::InvalidArgument), as for
//! [`new`](Self::new), and so is more than [`MAX_TAGS`] (nothing is
//! reserved then)." `MAX_TAGS` itself is allowed: whatever stops it is the
//! backend's room (a simulated backend of 1 MiB), not the bound.

use vmspace::arena::{Arena, ArenaError, NoSource, MAX_TAGS, MIN_TAGS};
use vmspace::{Addr, Policy, Size};
use vmspace_shim::sim::SimBackend;

fn is_bound_error(e: &ArenaError) -> bool {
    matches!(e, ArenaError::InvalidArgument(_))
}

/// MAX_TAGS and MAX_TAGS - 1 are not refused as out of bounds (the 1 MiB
/// simulated backend cannot reserve 4 GiB: a backend error); MAX_TAGS + 1,
/// 2 * MAX_TAGS + 1 and `usize::MAX` are `InvalidArgument` with nothing
/// reserved; MIN_TAGS - 1 and 0 too; MIN_TAGS works.
#[test]
fn max_tags_exactly_is_within_the_bound() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    for tags in [MAX_TAGS, MAX_TAGS - 1] {
        let e = Arena::on_pages("r38", Size(1), &sim, tags, NoSource).err().unwrap().error();
        assert!(!is_bound_error(&e), "{tags:#x}: refused as a bad argument: {e:?}");
    }
    let before = sim.stats().reservations;
    for tags in [MAX_TAGS + 1, 2 * MAX_TAGS + 1, usize::MAX, MIN_TAGS - 1, 0] {
        let e = Arena::on_pages("r38", Size(1), &sim, tags, NoSource).err().unwrap().error();
        assert!(is_bound_error(&e), "{tags:#x}: {e:?}");
    }
    assert_eq!(sim.stats().reservations, before, "nothing reserved for a refused count");
    let mut a = Arena::on_pages("r38", Size(1), &sim, MIN_TAGS, NoSource).unwrap();
    a.add(Addr(0), Size(64)).unwrap();
    let x = a.alloc(Size(1), Policy::InstantFit).unwrap();
    a.check().unwrap();
    a.free(x, Size(1)).unwrap();
    a.check().unwrap();
}
