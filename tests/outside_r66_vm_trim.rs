//! Round 66 outside review: `Vm::trim`, `Vm::trim_range` and
//! `Vm::metadata_mapped` (src/vm/mod.rs, src/vm/table.rs): what they return
//! against the change in `metadata_mapped()`, at the edges of the client
//! range, across bit-table pages, after unflushed deferred unmaps, under
//! faults.

use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, FaultShape, Op, PageOps, Range, Size};

const PAGE: usize = 256;
/// Client pages one bit-table page records.
const BPP: usize = PAGE * 8;
/// Three full bit-table pages and a partial fourth.
const PAGES: usize = 3 * BPP + 5;

fn pages(vm: &Vm<impl PageOps>, lo: usize, hi: usize) -> Range {
    Range::new(Addr(vm.base().0 + lo * PAGE), Addr(vm.base().0 + hi * PAGE)).unwrap()
}

fn meta_pages(vm: &Vm<impl PageOps>) -> usize {
    vm.metadata_mapped().0 / PAGE
}

/// `trim_range` (mod.rs:295-299): trims "only the bit-table pages that
/// record the pages of `range` (page-aligned, inside the client range;
/// mapped or not)", returning "the number of metadata pages given back"
/// (as `trim`). Edges: the first and last client page, a range spanning a
/// bit-table page boundary, a page whose bit page still records others.
#[test]
fn trim_range_at_the_edges_returns_what_metadata_mapped_loses() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(PAGES * PAGE), Size(PAGE)).unwrap();
    assert_eq!(vm.range().size(), Size(PAGES * PAGE));
    let base_meta = meta_pages(&vm);
    // One page in each bit-table page, at the edges.
    let spots = [0, BPP - 1, BPP, 2 * BPP + 7, PAGES - 1];
    for &i in &spots {
        vm.map(pages(&vm, i, i + 1)).unwrap();
    }
    assert_eq!(meta_pages(&vm), base_meta + 4);
    // Nothing to trim while everything is recorded.
    assert_eq!(vm.trim().unwrap(), 0);
    assert_eq!(vm.trim_range(vm.range()).unwrap(), 0);
    // The last client page: its (partial) bit page goes.
    vm.unmap(pages(&vm, PAGES - 1, PAGES)).unwrap();
    assert_eq!(vm.trim_range(pages(&vm, PAGES - 1, PAGES)).unwrap(), 1);
    assert_eq!(meta_pages(&vm), base_meta + 3);
    assert_eq!(vm.trim_range(pages(&vm, PAGES - 1, PAGES)).unwrap(), 0);
    // Unmap BPP - 1 only: bit page 0 still records page 0.
    vm.unmap(pages(&vm, BPP - 1, BPP)).unwrap();
    assert_eq!(vm.trim_range(pages(&vm, BPP - 1, BPP)).unwrap(), 0);
    assert_eq!(meta_pages(&vm), base_meta + 3);
    // A range across the boundary of bit pages 0 and 1, after unmapping
    // page BPP and page 0: both go, in one call.
    vm.unmap(pages(&vm, BPP, BPP + 1)).unwrap();
    vm.unmap(pages(&vm, 0, 1)).unwrap();
    // A range across bit pages 0 and 1, not reaching page 0: trims both.
    assert_eq!(vm.trim_range(pages(&vm, BPP - 2, BPP + 1)).unwrap(), 2);
    assert_eq!(meta_pages(&vm), base_meta + 1);
    // Bit page 2 still records page 2*BPP+7: a whole-range trim leaves it.
    assert_eq!(vm.trim().unwrap(), 0);
    vm.unmap(pages(&vm, 2 * BPP + 7, 2 * BPP + 8)).unwrap();
    // Not touching that page's bits but in the same bit page.
    assert_eq!(vm.trim_range(pages(&vm, 3 * BPP - 1, 3 * BPP)).unwrap(), 1);
    assert_eq!(meta_pages(&vm), base_meta);
    vm.check().unwrap();
    // Bad ranges: refused, nothing changes.
    let bad = [
        Range::new(Addr(vm.base().0 - PAGE), Addr(vm.base().0 + PAGE)).unwrap(),
        Range::new(Addr(vm.limit().0 - PAGE), Addr(vm.limit().0 + PAGE)).unwrap(),
        Range::new(Addr(vm.base().0 + 1), Addr(vm.base().0 + PAGE)).unwrap(),
        Range::empty(vm.base()),
    ];
    for r in bad {
        assert!(vm.trim_range(r).is_err(), "{r:?}");
    }
    assert_eq!(meta_pages(&vm), base_meta);
}

/// After `unmap_deferred`, not yet flushed, the pages are no longer mapped
/// as far as the VM goes: `trim` gives their bit page back at once, and
/// mapping the range again either works or is refused leaving the VM as it
/// was (mod.rs:13-14 "so are failures of the backend, its own bit-table
/// pages included (a failed `map` gives back the table pages it mapped)").
#[test]
fn trim_after_unflushed_deferred_unmaps() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(PAGES * PAGE), Size(PAGE)).unwrap();
    let base_meta = meta_pages(&vm);
    let r = pages(&vm, BPP - 3, BPP + 3);
    vm.map(r).unwrap();
    assert_eq!(meta_pages(&vm), base_meta + 2);
    vm.unmap_deferred(r).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 6);
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(vm.trim_range(pages(&vm, BPP + 2, BPP + 3)).unwrap(), 1);
    assert_eq!(vm.trim().unwrap(), 1);
    assert_eq!(meta_pages(&vm), base_meta);
    vm.check().unwrap();
    // The deferred unmaps are still pending after the trims.
    assert_eq!(sim.stats().unflushed_pages, 6);
    match vm.map(r) {
        Ok(()) => {
            assert_eq!(meta_pages(&vm), base_meta + 2);
            vm.unmap(r).unwrap();
        }
        Err(_) => {
            assert_eq!((vm.mapped(), meta_pages(&vm)), (Size(0), base_meta));
        }
    }
    vm.check().unwrap();
    vm.flush();
    assert_eq!(sim.stats().unflushed_pages, 0);
    vm.map(r).unwrap();
    vm.unmap(r).unwrap();
    assert_eq!(vm.trim().unwrap(), 2);
    assert_eq!(meta_pages(&vm), base_meta);
    vm.check().unwrap();
}

/// `trim` (mod.rs:285-288): "If the backend fails, the pages given back
/// before the failure stay given back (the client's mapped pages are
/// unchanged either way)". Every call position, both shapes: the loss in
/// `metadata_mapped` is exactly the successful unmaps before the failure,
/// a second trim returns the rest, and the sum is what a clean trim gives.
#[test]
fn failed_trims_keep_what_they_gave_back_and_the_rest_follows() {
    for shape in [FaultShape::Clean, FaultShape::PartWay] {
        for ranged in [false, true] {
            let mut n = 1;
            loop {
                let mut buf = vec![0u8; 4 << 20];
                let sim = SimBackend::new(&mut buf, PAGE).unwrap();
                let fi = FaultInjector::new(&sim);
                let mut vm = Vm::reserve(&fi, Size(PAGES * PAGE), Size(PAGE)).unwrap();
                let base_meta = meta_pages(&vm);
                // Each bit page records something, then nothing, but page
                // 5 stays mapped: bit page 0 stays.
                for k in 0..4 {
                    vm.map(pages(&vm, k * BPP + 1, k * BPP + 5)).unwrap();
                }
                vm.map(pages(&vm, 5, 6)).unwrap();
                for k in 0..4 {
                    vm.unmap(pages(&vm, k * BPP + 1, k * BPP + 5)).unwrap();
                }
                let mapped = vm.mapped();
                let meta = meta_pages(&vm);
                assert_eq!(meta, base_meta + 4);
                fi.set_shape(shape);
                fi.only(&[Op::Unmap]);
                fi.fail_nth(n);
                let whole = pages(&vm, 0, PAGES);
                let r = if ranged { vm.trim_range(whole) } else { vm.trim() };
                let injected = fi.injected() > 0;
                fi.clear();
                vm.check().unwrap_or_else(|e| panic!("{shape:?} call {n}: {e}"));
                assert_eq!(vm.mapped(), mapped);
                assert!(vm.is_mapped(Addr(vm.base().0 + 5 * PAGE)));
                let lost = meta - meta_pages(&vm);
                match r {
                    Ok(k) => {
                        assert!(!injected);
                        assert_eq!((k, lost), (3, 3));
                    }
                    Err(_) => {
                        assert!(injected);
                        assert_eq!(lost, n as usize - 1, "{shape:?} call {n}");
                        assert_eq!(vm.trim().unwrap(), 3 - lost);
                        assert_eq!(meta_pages(&vm), base_meta + 1);
                    }
                }
                vm.check().unwrap();
                if !injected {
                    break;
                }
                n += 1;
            }
            assert_eq!(n, 4, "trim should make three unmaps");
        }
    }
}
