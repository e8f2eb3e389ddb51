//! Round 65 (outside reviewer): the VM arena's module docs
//! (src/vmarena/mod.rs) say "Every operation either completes or fails with
//! the arena unchanged ... Two exceptions: a table page that cannot be
//! unmapped stays mapped, marked stale, ... and a purge of spare pages that
//! fails part-way ...", then RollbackFailed cases. A failed allocation
//! whose give-back of a VM mapped-state (bit-table) page fails too leaves
//! that page mapped (today's round 63b: "remembered and trimmed by the next
//! operation"): `metadata_mapped()` is larger after the failed call, with
//! no stale table page, allocated/committed/table pages/spare unchanged and
//! the error not RollbackFailed. No public doc of VmArena named this.
//!
//! A DOC DEFECT (fixed in the docs): the module docs name the exception
//! now (the page counts in `metadata_mapped`, not in `stale_pages`, until
//! the next operation trims it). The test holds that: such a failure
//! happens, changes nothing else, and the next operation gives the page
//! back.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op, Pages, Size};

const PAGE: usize = 4096;

#[test]
fn failed_alloc_leaves_arena_unchanged_but_for_documented_exceptions() {
    let mut found = None;
    for seed in 0..3000u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let config = VmArenaConfig::new(Size(128 * PAGE)).zone_shift(14).spare_limit(0);
        let mut a = VmArena::new(&faulty, config).unwrap();
        let before = (a.allocated(), a.committed(), a.table_pages_mapped(), a.spare());
        let meta = a.metadata_mapped();
        faulty.only(&[Op::Map, Op::Unmap]);
        faulty.fail_randomly(seed, 500_000);
        let r = a.alloc(&Request::new(Pages(40), Owner(2)));
        faulty.clear();
        let Err(e) = r else { continue };
        if matches!(e, VmArenaError::RollbackFailed { .. }) || a.stale_pages() != 0 {
            continue; // documented exceptions
        }
        let after = (a.allocated(), a.committed(), a.table_pages_mapped(), a.spare());
        assert_eq!(before, after, "seed {seed}: {e}");
        if a.metadata_mapped() != meta {
            // The next operation (here one that changes nothing else)
            // trims the page.
            a.purge_spare().unwrap();
            found = Some((seed, a.metadata_mapped() == meta));
            break;
        }
    }
    assert_eq!(found.map(|f| f.1), Some(true), "no such failure, or the page stayed: {found:?}");
}
