//! Round 63b outside review: a VM mapped-state page left mapped by a
//! failed VM arena allocation (the VM's `map` of the tracts failed, and so
//! did its give-back of the mapped-state page it had just mapped for them:
//! src/vm/table.rs `unmap_fresh`, "stays mapped, empty and counted, as
//! `trim` would leave it").
//!
//! Round 61 found the same leak for a failed *trim* inside the VM arena
//! and it was fixed by remembering the range (`untrimmed`,
//! src/vmarena/ops.rs `decommit`) and trimming it again in `retry_stale`.
//! The failed `map` path (src/vmarena/ops.rs `commit_tracts`, the
//! `self.vm.map(...)` calls) records nothing, and the VM arena never calls
//! `Vm::trim`, nor can its caller (`VmArena::vm()` is `&Vm`). So once no
//! later operation touches that page's stretch of tracts, the page stays
//! mapped for the arena's life: an empty arena (nothing allocated, nothing
//! spare, no stale pages) keeps `metadata_mapped()` above a fresh one's.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Op, Pages, Size};

const PAGE: usize = 64;
/// 2048 tracts; the VM records 512 tracts in each of its mapped-state
/// pages (64 bytes * 8 bits).
const TRACTS: usize = 2048;

/// Was a DEFECT (fixed: `VmArena::vm_map` remembers the range for the next
/// operation's trim, src/vmarena/stale.rs): at nth 4 the page stays: metadata_mapped() 0x80 against
/// a fresh arena's 0x40 (page 64), bit-table page 2 still Mapped(ReadWrite).
#[test]
fn failed_map_fresh_vm_page_is_given_back_eventually() {
    let mut found = false;
    for nth in 1..=8u64 {
        let mut buf = vec![0u8; 4 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let unmaps = FaultInjector::new(&sim); // inner: fails an unmap
        let maps = FaultInjector::new(&unmaps); // outer: fails a map
        unmaps.only(&[Op::Unmap]);
        maps.only(&[Op::Map]);
        let mut a = VmArena::new(&maps, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
        let empty = a.metadata_mapped();
        // Tracts 0..1024 taken: the next allocation lands at 1024, the
        // first tract of the VM's mapped-state page 2.
        let low = a.alloc(&Request::new(Pages(1024), Owner(1))).unwrap();
        maps.fail_nth(nth);
        unmaps.fail_nth(1);
        let r = a.alloc(&Request::new(Pages(8), Owner(2)));
        maps.clear();
        unmaps.clear();
        maps.only(&[]);
        unmaps.only(&[]);
        if r.is_ok() || a.stale_pages() != 0 || unmaps.injected() == 0 {
            continue;
        }
        a.check().unwrap();
        assert_eq!(a.allocated(), Size(1024 * PAGE));
        // Later operations, all in tracts 0..1024.
        a.free(low.range, Owner(1)).unwrap();
        let g = a.alloc(&Request::new(Pages(4), Owner(3))).unwrap();
        assert!(g.range.base().0 < a.base().0 + 1024 * PAGE);
        a.free(g.range, Owner(3)).unwrap();
        a.purge_spare().unwrap();
        a.set_spare_limit(0).unwrap();
        a.set_commit_limit(Size(usize::MAX)).unwrap();
        a.check().unwrap();
        assert_eq!((a.allocated(), a.spare(), a.committed()), (Size(0), Size(0), Size(0)));
        assert_eq!(a.stale_pages(), 0);
        found = true;
        // The VM's bit-table page 2 (after one summary page), which records
        // tracts 1024..1536: nothing recorded there, still mapped.
        let bit_page_2 = Addr(a.vm().limit().0 + PAGE + 2 * PAGE);
        assert!(a.vm().reservation().contains_addr(bit_page_2));
        eprintln!("nth {nth}: VM bit-table page 2 is {:?}", sim.page_state(bit_page_2));
        assert_eq!(
            a.metadata_mapped(),
            empty,
            "nth {nth}: an empty arena keeps the VM mapped-state page a failed \
             allocation's map left mapped (VM metadata {:?})",
            a.vm().metadata_mapped()
        );
    }
    assert!(found, "no position of the map failure left the fresh page mapped");
}
