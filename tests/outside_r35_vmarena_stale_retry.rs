//! Round 35 outside review: a failing VM-arena operation changes what is
//! committed when a stale table page is waiting to be retried.
//!
//! Found: a `NoSpace` allocation (and a free whose own unmap fails)
//! retries the stale page first and gives it back, so `committed()`
//! dropped although the call failed, and src/vmarena/error.rs listed no
//! such exception. It now does: "and for stale table pages (left mapped by
//! an earlier failure) that the call gave back before it failed: every
//! operation retries those first". These tests check exactly that: the
//! stale pages are gone, committed and metadata are down by as many pages,
//! and nothing else changed.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, Op, Pages, Range, Size};

const PAGE: usize = 64;
const TRACTS: usize = 64;

type Fi<'a> = FaultInjector<&'a SimBackend<'a>>;

/// An arena with one stale page-table page: a free whose unmap of the
/// page-table page it emptied failed (the free itself completes).
fn with_stale_page<'a>(fi: &'a Fi<'a>) -> VmArena<&'a Fi<'a>> {
    for nth in 1..=6u64 {
        let mut a = VmArena::new(fi, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
        // Tracts 0..8 fill page-table page 0; tract 8 keeps page 1 and the
        // allocation table in use.
        let g = a.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
        let _keep = a.alloc(&Request::new(Pages(1), Owner(2))).unwrap();
        fi.only(&[Op::Unmap]);
        fi.fail_nth(nth);
        let r = a.free(g.range, Owner(1));
        fi.clear();
        if r.is_ok() && a.table_pages_mapped() > a.table_pages_in_use() {
            a.check().unwrap();
            return a;
        }
    }
    panic!("no call position left a stale page-table page");
}

#[test]
fn failed_no_space_alloc_gives_back_only_the_stale_pages() {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = with_stale_page(&fi);
    let stale = a.table_pages_mapped() - a.table_pages_in_use();
    assert!(stale > 0);
    let gone = stale * PAGE;
    let before = (a.committed(), a.table_pages_in_use(), a.metadata_mapped(), a.allocated());
    let r = a.alloc(&Request::new(Pages(TRACTS), Owner(3)));
    assert!(matches!(r, Err(VmArenaError::NoSpace { .. })), "{r:?}");
    a.check().unwrap();
    assert_eq!(a.table_pages_mapped(), a.table_pages_in_use(), "the stale pages were retried");
    assert_eq!(
        (a.committed(), a.table_pages_in_use(), a.metadata_mapped(), a.allocated()),
        (Size(before.0 .0 - gone), before.1, Size(before.2 .0 - gone), before.3),
        "a NoSpace allocation changed more than the stale pages it gave back \
         (committed, table pages in use, metadata, allocated)"
    );
}

#[test]
fn failed_free_gives_back_only_the_stale_pages() {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = with_stale_page(&fi);
    // Owner 2's tract 8; its free's own unmap (the second unmap call: the
    // first is the retry of the stale page) fails cleanly.
    let tract8 = Range::from_size(Addr(a.range().base().0 + 8 * PAGE), Size(PAGE)).unwrap();
    let stale = a.table_pages_mapped() - a.table_pages_in_use();
    assert!(stale > 0);
    let before = (a.committed(), a.table_pages_in_use(), a.allocated());
    fi.only(&[Op::Unmap]);
    fi.fail_nth(2);
    let r = a.free(tract8, Owner(2));
    fi.clear();
    assert!(matches!(r, Err(VmArenaError::Vm(_))), "{r:?}");
    a.check().unwrap();
    assert_eq!(a.table_pages_mapped(), a.table_pages_in_use(), "the stale pages were retried");
    assert_eq!(
        (a.committed(), a.table_pages_in_use(), a.allocated()),
        (Size(before.0 .0 - stale * PAGE), before.1, before.2),
        "a failed free changed more than the stale pages it gave back \
         (committed, table pages in use, allocated): {r:?}"
    );
}
