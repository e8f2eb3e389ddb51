//! Round 35 outside review: what `RollbackFailed { range, .. }` says about
//! the tracts of its range, against the page table and the backend.
//!
//! Found: src/vmarena/error.rs said `range` was "the tracts whose
//! protection could not be put back" and that every allocated tract in it
//! was recorded `Protection::None`; but a protect over tracts with
//! different recorded protections puts them back one run at a time and
//! reports one range from the first lost run to the last, so a run in
//! between whose protection was put back kept it (Read here). The docs now
//! say what the code does, as the chunk map's `lost` does: the tracts so
//! left "are all in `range`, which is one range from the first to the last
//! of them: the runs between were put back (or, an allocation's,
//! decommitted) and are as the call found them". These tests check that:
//! the first and last tract of `range` are left as the error says, every
//! other is that or as it was, and nothing outside `range` changed.

use vmspace::vmarena::{Owner, Request, Stranded, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Op, Pages, Protection, Range, Size};

const PAGE: usize = 64;

#[test]
fn rollback_failed_range_ends_are_inaccessible_the_rest_as_found() {
    let mut seen = 0;
    for seed in 1..=3000u64 {
        let mut buffer = Placed::new(1 << 20, 0);
        let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let mut a = VmArena::new(&fi, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
        let g = a.alloc(&Request::new(Pages(6), Owner(1))).unwrap();
        let b = g.range.base().0;
        let r = |lo: usize, hi: usize| {
            Range::from_size(Addr(b + lo * PAGE), Size((hi - lo) * PAGE)).unwrap()
        };
        // Recorded: RW RW | Read Read | RW RW: three runs.
        a.protect(r(2, 4), Owner(1), Protection::Read).unwrap();
        let old = |t: usize| {
            if (2..4).contains(&((t - b) / PAGE)) {
                Protection::Read
            } else {
                Protection::ReadWrite
            }
        };
        fi.only(&[Op::Protect]);
        fi.set_shape(FaultShape::PartWay);
        fi.fail_randomly(seed, 600_000);
        let res = a.protect(g.range, Owner(1), Protection::None);
        fi.clear();
        a.check().unwrap();
        let Err(VmArenaError::RollbackFailed { range, tracts, .. }) = res else { continue };
        assert_eq!(tracts, Stranded::Inaccessible);
        seen += 1;
        let last = range.limit().0 - PAGE;
        for t in (g.range.base().0..g.range.limit().0).step_by(PAGE) {
            let rec = a.tract(Addr(t)).unwrap().prot;
            let inside = range.contains_addr(Addr(t));
            let ends = t == range.base().0 || t == last;
            let ok = match (inside, ends) {
                (true, true) => rec == Protection::None,
                (true, false) => rec == Protection::None || rec == old(t),
                // Outside `range` the call failed with nothing lost: put back.
                (false, _) => rec == old(t),
            };
            assert!(
                ok,
                "seed {seed}: tract {} (RollbackFailed range {range:?}) recorded {rec:?} \
                 (backend {:?})",
                (t - b) / PAGE,
                sim.protection(Addr(t))
            );
        }
    }
    assert!(seen > 0, "no RollbackFailed reached");
}

/// src/vmarena/error.rs:57-64 "An allocation whose map (or reuse of spare
/// pages) failed, and whose unmap of the pages it had mapped failed too,
/// keeps those tracts (`range`) committed, as spare: nothing is
/// allocated." `range`: "... or (an allocation) that stay committed as
/// spare". Every tract of `range` must then be free and committed.
#[test]
fn rollback_failed_alloc_range_ends_stay_committed_spare() {
    let mut seen = 0;
    for seed in 1..=3000u64 {
        let mut buffer = Placed::new(1 << 20, 0);
        let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let cfg = VmArenaConfig::new(Size(64 * PAGE)).spare_limit(64);
        let mut a = VmArena::new(&fi, cfg).unwrap();
        let gs: Vec<Range> =
            (0..11).map(|_| a.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range).collect();
        // Tracts 1, 3, 5, 7 spare; 0, 2, 4, 6, 8 free and decommitted
        // (protected, so freed whole); 9 and 10 stay allocated.
        for (i, g) in gs.iter().enumerate().take(9) {
            if i % 2 == 0 {
                a.protect(*g, Owner(1), Protection::Read).unwrap();
            }
            a.free(*g, Owner(1)).unwrap();
        }
        assert_eq!(a.spare(), Size(4 * PAGE));
        let b = a.base().0;
        fi.only(&[Op::Map, Op::Unmap]);
        fi.fail_randomly(seed, 500_000);
        let res = a.alloc(&Request::new(Pages(9), Owner(2)));
        fi.clear();
        a.check().unwrap();
        let Err(VmArenaError::RollbackFailed { range, tracts, .. }) = res else { continue };
        assert_eq!(tracts, Stranded::Spare);
        seen += 1;
        let last = range.limit().0 - PAGE;
        for t in (range.base().0..range.limit().0).step_by(PAGE) {
            assert!(!a.is_allocated(Addr(t)), "seed {seed}: allocated");
            // Between the ends, a run may have been decommitted (as the call
            // found it: tracts 0, 2, 4, 6 and 8 were).
            let was_spare = matches!((t - b) / PAGE, 1 | 3 | 5 | 7);
            if t != range.base().0 && t != last && !was_spare {
                continue;
            }
            assert!(
                matches!(sim.page_state(Addr(t)), Some(vmspace_shim::sim::PageState::Mapped(_))),
                "seed {seed}: tract {} in RollbackFailed range {range:?} is not committed \
                 ({:?}); spare {:?}",
                (t - b) / PAGE,
                sim.page_state(Addr(t)),
                a.spare()
            );
        }
    }
    assert!(seen > 0, "no RollbackFailed reached");
}
