//! Round 47a outside review: a stale page-table page (its unmap failed
//! during a free, which completed) and the operations after it.
//!
//! src/vmarena/mod.rs:28-30: "a table page that cannot be unmapped stays
//! mapped, marked stale, and the next operation retries"; and
//! src/vmarena/error.rs:18-20: "stale table pages (left mapped by an
//! earlier failure) ...: every operation retries those first". Only
//! `alloc` and `free` did: `purge_spare`, `set_commit_limit`,
//! `set_spare_limit`, `protect` and `set_client` left the page mapped and
//! counted. Was a DEFECT (fixed): every operation that changes the arena
//! retries it now (the last test is ours, for `protect` and `set_client`).

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op, Pages, Size};

const PAGE: usize = 64;
const TRACTS: usize = 64;

type Fi<'a> = FaultInjector<&'a SimBackend<'a>>;

/// An empty arena (nothing allocated, nothing spare) with one stale
/// page-table page: the free of its only allocation failed to unmap the
/// page-table page it emptied (the free itself completed).
fn empty_with_stale_page<'a>(fi: &'a Fi<'a>) -> VmArena<&'a Fi<'a>> {
    for nth in 1..=4u64 {
        let mut a = VmArena::new(fi, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
        let g = a.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
        fi.only(&[Op::Unmap]);
        fi.fail_nth(nth);
        let r = a.free(g.range, Owner(1));
        fi.clear();
        if r.is_ok() && a.table_pages_mapped() == 1 {
            a.check().unwrap();
            assert_eq!((a.allocated(), a.spare()), (Size(0), Size(0)));
            assert_eq!(a.committed(), Size(PAGE), "the stale page is counted");
            return a;
        }
    }
    panic!("no call position left a stale page-table page");
}

/// The operation that gives committed memory back leaves the stale page
/// committed: after `purge_spare()` returns `Ok`, an arena with nothing
/// allocated and nothing spare still commits a page-table page.
#[test]
fn purge_spare_retries_the_stale_page() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = empty_with_stale_page(&fi);
    assert_eq!(a.purge_spare(), Ok(0));
    a.check().unwrap();
    assert_eq!(
        (a.committed(), a.table_pages_mapped()),
        (Size(0), 0),
        "purge_spare did not retry the stale page-table page"
    );
}

/// `set_commit_limit(0)` on an arena with nothing allocated and nothing
/// spare is refused: the stale page, which "the next operation retries",
/// is counted as committed instead of being retried first.
#[test]
fn set_commit_limit_retries_the_stale_page() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = empty_with_stale_page(&fi);
    let r = a.set_commit_limit(Size(0));
    assert_eq!(r, Ok(()), "nothing allocated or spare, yet the limit 0 is refused");
    a.check().unwrap();
}

/// `set_spare_limit` does not retry it either.
#[test]
fn set_spare_limit_retries_the_stale_page() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = empty_with_stale_page(&fi);
    a.set_spare_limit(4).unwrap();
    a.check().unwrap();
    assert_eq!(a.committed(), Size(0), "set_spare_limit did not retry the stale page");
}

/// Control: an allocation does retry it (so the page is not lost for good).
#[test]
fn alloc_retries_the_stale_page() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = empty_with_stale_page(&fi);
    let g =
        a.alloc(&Request::new(Pages(1), Owner(2)).prefer(vmspace::vmarena::ZoneSet::ALL)).unwrap();
    a.free(g.range, Owner(2)).unwrap();
    a.check().unwrap();
    assert_eq!((a.committed(), a.table_pages_mapped()), (Size(0), 0));
}

/// An arena holding one live allocation (`Owner(2)`, its own page-table
/// page) and one stale page-table page, emptied by a free whose unmap of it
/// failed. Returns the arena and the live range.
fn live_with_stale_page<'a>(fi: &'a Fi<'a>) -> (VmArena<&'a Fi<'a>>, vmspace_shim::Range) {
    for nth in 1..=4u64 {
        let mut a = VmArena::new(fi, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
        let g = a.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
        let live = a.alloc(&Request::new(Pages(8), Owner(2))).unwrap();
        let tables = a.table_pages_mapped();
        fi.only(&[Op::Unmap]);
        fi.fail_nth(nth);
        let r = a.free(g.range, Owner(1));
        fi.clear();
        if r.is_ok() && tables == 2 && a.table_pages_mapped() == 2 {
            a.check().unwrap();
            return (a, live.range);
        }
    }
    panic!("no call position left a stale page-table page beside a live one");
}

/// `protect` and `set_client` retry the stale page too ("every operation
/// retries those first"): afterwards only the live allocation's table page
/// stays mapped.
#[test]
fn protect_and_set_client_retry_the_stale_page() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let (mut a, live) = live_with_stale_page(&fi);
    a.protect(live, Owner(2), vmspace_shim::Protection::Read).unwrap();
    a.check().unwrap();
    assert_eq!(a.table_pages_mapped(), 1, "protect did not retry the stale page-table page");

    let (mut a, live) = live_with_stale_page(&fi);
    a.set_client(live.base(), 7).unwrap();
    a.check().unwrap();
    assert_eq!(a.table_pages_mapped(), 1, "set_client did not retry the stale page-table page");
}
