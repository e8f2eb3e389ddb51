//! The VM arena's put-back after a free or a purge whose unmap fails part
//! way.

use super::*;

/// Was a DEFECT, now fixed (same contract, the other layer the trait names: "the layers
/// that know it put it back (the VM arena and the chunk map do)"):
/// `VmArena::free` whose decommit fails part way returns the error with
/// the tracts still allocated and recorded read-write ("fails with the
/// arena unchanged"), though the first page is now `PROT_NONE`: the owner,
/// told its free failed, still holds a grant it cannot write.
#[test]
fn vmarena_free_failing_part_way_leaves_owned_tracts_recorded_rw_over_prot_none() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(0).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    ops.arm(&[((Op::Unmap, 1), Fail::Partial)]);
    let r = va.free(g.range, owner);
    ops.arm(&[]);
    assert!(r.is_err(), "{r:?}");
    va.check().unwrap();
    for k in 0..4 {
        let a = Addr(g.range.base().0 + k * PAGE);
        let t = va.tract(a);
        let real = sim.page_state(a).unwrap();
        if let Some(t) = t {
            assert!(
                t.prot != Protection::ReadWrite || real == PageState::Mapped(Protection::ReadWrite),
                "free failed ({r:?}); tract {k} still owned, recorded {:?}, the page is {real:?}",
                t.prot
            );
        }
    }
}

/// Was a DEFECT, now fixed (consequence of the same gap): a `purge_spare` whose decommit
/// fails part way keeps the run spare ("the rest stay spare"), committed
/// read-write as far as the arena knows, though its first page is now
/// `PROT_NONE`; the next allocation reuses spare pages without a backend
/// call and hands its owner a `Grant` ("committed, owned by the
/// requester") with a page it cannot touch.
#[test]
fn vmarena_purge_failing_part_way_then_alloc_grants_a_prot_none_page() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(64).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    va.free(g.range, owner).unwrap();
    assert_eq!(va.spare(), Size(4 * PAGE), "the freed pages stay spare");
    ops.arm(&[((Op::Unmap, 1), Fail::Partial)]);
    let r = va.purge_spare();
    ops.arm(&[]);
    assert!(r.is_err(), "{r:?}");
    va.check().unwrap();
    let g2 = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    for k in 0..4 {
        let a = Addr(g2.range.base().0 + k * PAGE);
        assert_eq!(
            sim.page_state(a),
            Some(PageState::Mapped(Protection::ReadWrite)),
            "purge failed ({r:?}); the next grant {:?} has page {k} not read-write",
            g2.range
        );
    }
}

// The maintainers' additions: the second failure, where putting the old
// protection back after a failed unmap fails too.

/// `VmArena::free` fails part way and the recorded protection cannot be
/// put back: `RollbackFailed` names the tracts, which stay allocated and
/// are recorded inaccessible.
#[test]
fn vmarena_free_failing_part_way_whose_put_back_fails_records_none() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(0).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    ops.arm(&[((Op::Unmap, 1), Fail::Partial), ((Op::Protect, 1), Fail::Clean)]);
    let r = va.free(g.range, owner);
    ops.arm(&[]);
    assert!(
        matches!(r, Err(VmArenaError::RollbackFailed { range, .. }) if range == g.range),
        "{r:?}"
    );
    va.check().unwrap();
    for k in 0..4 {
        let a = Addr(g.range.base().0 + k * PAGE);
        assert_eq!(va.tract(a).unwrap().prot, Protection::None, "tract {k}");
    }
    // Freed now, it is decommitted, not kept spare.
    va.set_spare_limit(64).unwrap();
    va.free(g.range, owner).unwrap();
    assert_eq!(va.spare(), Size(0));
    va.check().unwrap();
}

/// A purge fails part way and read-write cannot be put back over the
/// spare run (`RollbackFailed`): the run stays spare, and an allocation
/// that reuses it makes it read-write first; when that fails too, the
/// allocation fails and changes nothing.
#[test]
fn vmarena_purge_whose_put_back_fails_makes_reused_spare_read_write() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(64).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    va.free(g.range, owner).unwrap();
    ops.arm(&[((Op::Unmap, 1), Fail::Partial), ((Op::Protect, 1), Fail::Clean)]);
    let r = va.purge_spare();
    ops.arm(&[]);
    assert!(
        matches!(r, Err(VmArenaError::RollbackFailed { range, .. }) if range == g.range),
        "{r:?}"
    );
    va.check().unwrap();
    assert_eq!(va.spare(), Size(4 * PAGE), "the run stays spare");
    let first = Addr(g.range.base().0);
    assert_eq!(sim.page_state(first), Some(PageState::Mapped(Protection::None)));
    // Reusing it, the read-write protect fails: nothing changes.
    ops.arm(&[((Op::Protect, 1), Fail::Clean)]);
    let again = va.alloc(&Request::new(Pages(4), owner));
    ops.arm(&[]);
    assert!(again.is_err(), "{again:?}");
    va.check().unwrap();
    assert_eq!((va.spare(), va.allocated()), (Size(4 * PAGE), Size(0)));
    // Then it succeeds, and every page granted is read-write.
    let g2 = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    assert_eq!(g2.range, g.range, "the spare run is reused");
    va.check().unwrap();
    for k in 0..4 {
        let a = Addr(g2.range.base().0 + k * PAGE);
        assert_eq!(sim.page_state(a), Some(PageState::Mapped(Protection::ReadWrite)), "page {k}");
    }
}
