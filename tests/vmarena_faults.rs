//! Fault injection at every position: for each step of a generated
//! sequence, each backend call the step makes is failed once in turn; an
//! operation that fails must leave the arena exactly as it was (allocation
//! map, owners, spare and committed memory, mapped table pages), and
//! `check()` must pass whatever happened.

use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::{at_offsets, Placed, SimBackend, OFFSETS};
use vmspace_shim::{FaultInjector, FaultShape, Size};
use vmspace_workload::pages;
use vmspace_workload::vmarena_ops::{self, Expect, VmArenaModel, VmArenaOp, VmArenaOpGen};

const PAGE: usize = 256;
const TRACTS: usize = 256;
const STEPS: usize = 100;

fn config() -> VmArenaConfig {
    VmArenaConfig::new(Size(TRACTS * PAGE)).zone_shift(10).spare_limit(6)
}

#[test]
fn every_failing_call_position_leaves_the_arena_unchanged() {
    let mut partial_purges = 0;
    at_offsets(OFFSETS.len(), 1 << 20, |off, buf| {
        partial_purges += every_position(off, buf, FaultShape::Clean).0
    });
    assert!(partial_purges > 0, "no purge failed part-way: the sequence needs longer spare runs");
}

/// The same with every protect and unmap failing part way (a prefix of its
/// range changed first, as Linux's `mprotect` may): the arena must put the
/// old protection back, so every allocated tract's page is as recorded.
#[test]
fn every_call_position_failing_part_way_leaves_the_arena_unchanged() {
    let mut part_way = 0;
    at_offsets(2, 1 << 20, |off, buf| part_way += every_position(off, buf, FaultShape::PartWay).1);
    assert!(part_way > 20, "only {part_way} calls failed part way");
}

/// The test at one placement of the simulated backend's buffer: purges
/// that failed after giving some spare back, and calls failed part way.
fn every_position(off: usize, buf: &mut Placed, shape: FaultShape) -> (usize, u64) {
    let mut positions = 0;
    let mut partial_purges = 0;
    let mut part_way = 0;
    for k in 0..STEPS {
        let mut n = 1;
        loop {
            let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
            let faulty = FaultInjector::new(&sim);
            let mut arena = VmArena::new(&faulty, config()).unwrap();
            // Replay the first k steps (placement depends on where the
            // arena is, so the sequence is generated against this one).
            let mut before = VmArenaModel::<TRACTS>::new(&arena).unwrap();
            let mut gen = VmArenaOpGen::new(42, TRACTS);
            for _ in 0..k {
                let op = gen.next_op(&before);
                before.apply(&op);
                let _ = vmarena_ops::apply(&mut arena, &op);
            }
            let op = &gen.next_op(&before);
            let before = &before;
            vmarena_ops::compare(&arena, before, true).unwrap();
            let before_spare = arena.spare();
            faulty.set_shape(shape);
            faulty.fail_nth(n);
            let result = vmarena_ops::apply(&mut arena, op);
            let injected = faulty.injected() > 0;
            part_way += faulty.changed_part_way();
            faulty.clear();
            arena.check().unwrap_or_else(|e| panic!("offset {off} step {k} call {n}: {e}"));
            // Every allocated tract's page has the protection recorded.
            pages::tracts_agree(&arena, true, &|a| sim.protection(a))
                .unwrap_or_else(|e| panic!("offset {off} step {k} call {n} ({op:?}): {e}"));
            if !injected {
                break; // the step makes fewer than n calls
            }
            positions += 1;
            match result {
                Err(e) => {
                    assert!(e.backend().is_some(), "offset {off} step {k} call {n}: {e}");
                    // A failed purge keeps what it gave back before the
                    // failing call (documented), as does a failed change of
                    // a limit that purges (which keeps its old limit);
                    // everything else is unchanged.
                    let purges = matches!(
                        op,
                        VmArenaOp::Purge
                            | VmArenaOp::SetSpareLimit { .. }
                            | VmArenaOp::SetCommitLimit { .. }
                    );
                    let expected = if purges {
                        vmarena_ops::after_partial_purge(&arena, before)
                    } else {
                        before.clone()
                    };
                    vmarena_ops::compare(&arena, &expected, true)
                        .unwrap_or_else(|w| panic!("offset {off} step {k} call {n} ({op:?}): {w}"));
                    if purges && arena.spare() != before_spare {
                        partial_purges += 1;
                    }
                }
                Ok(_) => {
                    // Only a table page's unmapping may fail without failing
                    // the operation: then that page stays until the next one.
                    let mut after = before.clone();
                    assert_ne!(after.apply(op), Expect::Err);
                    vmarena_ops::compare(&arena, &after, false).unwrap();
                }
            }
            n += 1;
        }
    }
    assert!(positions > 60, "offset {off}: only {positions} call positions exercised");
    (partial_purges, part_way)
}
