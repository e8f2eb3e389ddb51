//! An outside runtime author's heap, written from the README and the API
//! docs: reserve a VM, map on demand, an arena importing mapped pages from
//! it, constrained allocations, statistics, check(), teardown; then the
//! same API attacked with extreme, zero, misaligned and foreign arguments.
//! Every assertion names the doc line it checks.

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, PageStore, Policy, SegmentKinds, Source,
};
use vmspace::sources::VmSource;
use vmspace::vm::{Vm, VmError};
use vmspace::{Addr, Range, Size};
use vmspace_shim::PageOps;
use vmspace_user::MmapBackend;

const MIB: usize = 1 << 20;

fn page() -> Size {
    MmapBackend::new().page_size()
}

fn source(vm_size: usize) -> VmSource<MmapBackend, PageStore<MmapBackend>> {
    let be = MmapBackend::new();
    let vm = Vm::reserve(be, Size(vm_size), page()).unwrap();
    let store = || PageStore::new(be, Size(MIB)).unwrap();
    VmSource::new(vm, store(), store()).unwrap()
}

#[test]
fn vm_reserve_map_unmap_and_bad_ranges() {
    let be = MmapBackend::new();
    let p = page();
    // src/vm/mod.rs:70-72 "A `size` of 0, or a `grain` that is not a power
    // of two at least the backend's page size, is refused with an error."
    assert!(Vm::reserve(be, Size(0), p).is_err());
    assert!(Vm::reserve(be, Size(MIB), Size(p.0 / 2)).is_err());
    assert!(Vm::reserve(be, Size(MIB), Size(3 * p.0)).is_err());
    // The largest size the type holds: an error, not a panic (README.md
    // "Testing": "2^60 bytes fails with `no room to reserve ...`").
    assert!(Vm::reserve(be, Size(usize::MAX), p).is_err());
    assert!(Vm::reserve(be, Size(usize::MAX), Size(1 << 63)).is_err());

    let mut vm = Vm::reserve(be, Size(64 * MIB), Size(2 * MIB)).unwrap();
    // src/vm/mod.rs:90,95 "base ... a multiple of the grain", "limit ..."
    assert!(vm.base().is_aligned(Size(2 * MIB)) && vm.limit().is_aligned(Size(2 * MIB)));
    assert_eq!(vm.mapped(), Size(0));
    let first = Range::from_size(vm.base(), Size(4 * p.0)).unwrap();
    vm.map(first).unwrap();
    // README.md:107 "commit read-write; reads zero"
    // SAFETY: `first` was just mapped read-write.
    unsafe {
        assert_eq!(vm.base().as_ptr::<u8>().read(), 0);
        vm.base().as_ptr::<u8>().write(7);
    }
    let before = (vm.mapped(), vm.metadata_mapped());
    // README.md:119-121 "Misaligned ranges, ranges outside the VM, mapping
    // what is mapped and unmapping what is not are errors that leave the VM
    // unchanged"
    let mis = Range::from_size(Addr(vm.base().0 + 1), p).unwrap();
    assert!(matches!(vm.map(mis), Err(VmError::Common(_))));
    let outside = Range::from_size(vm.limit(), p).unwrap();
    assert!(matches!(vm.map(outside), Err(VmError::Common(_))));
    assert_eq!(vm.map(first), Err(VmError::AlreadyMapped(first)));
    let second = Range::from_size(first.limit(), p).unwrap();
    assert_eq!(vm.unmap(second), Err(VmError::NotMapped(second)));
    let straddle = Range::from_size(vm.base(), Size(5 * p.0)).unwrap();
    assert_eq!(vm.unmap(straddle), Err(VmError::NotMapped(straddle)));
    // An empty range: src/vm/mod.rs:147 "Whether every page of `range`
    // (page-aligned, inside the VM) is mapped" (an error, not a panic).
    let empty = Range::from_size(vm.base(), Size(0)).unwrap();
    assert!(vm.map(empty).is_err());
    assert!(vm.is_range_mapped(empty).is_err());
    assert_eq!((vm.mapped(), vm.metadata_mapped()), before);
    vm.check().unwrap();
    // The last page of the VM.
    let last = Range::from_size(Addr(vm.limit().0 - p.0), p).unwrap();
    vm.map(last).unwrap();
    assert!(vm.is_mapped(last.base()) && !vm.is_mapped(vm.limit()));
    // README.md:108 "decommit; reads zero when mapped again"
    vm.unmap(first).unwrap();
    vm.map(first).unwrap();
    // SAFETY: mapped again just now.
    assert_eq!(unsafe { vm.base().as_ptr::<u8>().read() }, 0);
    vm.unmap(first).unwrap();
    vm.unmap(last).unwrap();
    assert_eq!(vm.mapped(), Size(0));
    // README.md:123-124 "`trim()` gives back table pages that no longer
    // record a mapped page"
    vm.trim().unwrap();
    vm.check().unwrap();
    // README.md:125 "`release()` does the same and reports failure"
    assert!(vm.release().is_ok());
}

#[test]
fn a_heap_importing_mapped_pages_gives_them_back() {
    let p = page();
    let mut src = source(64 * MIB);
    {
        let mut heap =
            Arena::on_pages("heap", Size(16), MmapBackend::new(), 4096, &mut src).unwrap();
        let a = heap.alloc(Size(100), Policy::InstantFit).unwrap();
        // SAFETY: src/sources/vm.rs:8 "Hands out page-aligned ranges of a
        // [`Vm`], mapping them on import": `a` is in a mapped import.
        unsafe { a.as_ptr::<u8>().write_bytes(0xa5, 100) };
        // src/arena/source.rs:12-13 "imports a span (rounded up to the
        // source's quantum)"
        assert_eq!(heap.sizes().imported, p);
        assert_eq!(heap.sizes().allocated, Size(112));
        assert_eq!(heap.counters().imports, 1);
        // Constrained: 2 MiB aligned, 3 pages (src/arena/constraints.rs:82).
        let c = Constraints::new(Size(3 * p.0)).align(Size(2 * MIB)).policy(Policy::BestFit);
        let big = heap.xalloc(&c).unwrap();
        assert_eq!(big.0 % (2 * MIB), 0);
        // SAFETY: mapped by the import that holds it.
        unsafe { big.as_ptr::<u8>().add(3 * p.0 - 1).write(1) };
        // src/arena/constraints.rs:95-96 nocross, with phase.
        let c = Constraints::new(Size(64)).align(Size(256)).phase(Size(32)).nocross(Size(p.0));
        let x = heap.xalloc(&c).unwrap();
        assert_eq!(x.0 % 256, 32);
        assert_eq!(x.0 / p.0, (x.0 + 63) / p.0);
        // src/arena/stats.rs:23 "`allocated + free + unflushed`"
        let s = heap.sizes();
        assert_eq!(s.total.0, s.allocated.0 + s.free.0 + s.unflushed.0);
        assert_eq!(heap.live(), 3);
        heap.check().unwrap();
        heap.source().check().unwrap();
        assert_eq!(heap.source().vm().mapped(), heap.sizes().imported);
        // src/arena/mod.rs:19-20 "a wholly free imported span goes back to
        // the source"
        heap.free(big, Size(3 * p.0)).unwrap();
        heap.free(x, Size(64)).unwrap();
        heap.free(a, Size(100)).unwrap();
        assert_eq!(heap.sizes().imported, Size(0));
        assert_eq!(heap.counters().imports, heap.counters().exports);
        assert_eq!(heap.source().vm().mapped(), Size(0));
        // Leak on drop: src/arena/mod.rs:380-381 "give every imported
        // span back to the source".
        let _leak = heap.alloc(Size(5 * p.0), Policy::FirstFit).unwrap();
        assert_ne!(heap.source().vm().mapped(), Size(0));
    }
    assert_eq!(src.vm().mapped(), Size(0));
    src.check().unwrap();
}

#[test]
fn windowed_requests_do_not_import() {
    let mut src = source(16 * MIB);
    let mut heap = Arena::on_pages("heap", Size(16), MmapBackend::new(), 4096, &mut src).unwrap();
    // src/arena/source.rs:13-15 "but not for a request with an address
    // window, `min`, `max` or `exact` ... that one fails with
    // [`ArenaError::NoSpace`]"
    let c = Constraints::new(Size(64)).min_addr(Addr(0x1000));
    assert!(matches!(heap.xalloc(&c), Err(ArenaError::NoSpace { .. })));
    let c = Constraints::new(Size(64)).exact(Addr(0x10000));
    assert!(matches!(heap.xalloc(&c), Err(ArenaError::NoSpace { .. })));
    assert_eq!(heap.counters().imports, 0);
    assert_eq!(heap.counters().failures, 2);
    heap.check().unwrap();
}

#[test]
fn attacks_on_the_arena() {
    let mut src = source(16 * MIB);
    let be = MmapBackend::new();
    let mut heap = Arena::on_pages("heap", Size(16), be, 4096, &mut src).unwrap();
    let a = heap.alloc(Size(40), Policy::InstantFit).unwrap();
    let before: Vec<_> = heap.walk(SegmentKinds::ALL).collect();
    let sizes = heap.sizes();
    // src/arena/constraints.rs:150-151 "size is zero"
    assert_eq!(
        heap.alloc(Size(0), Policy::InstantFit),
        Err(ArenaError::InvalidArgument("size is zero"))
    );
    // The largest sizes: an error each, no panic, no import.
    assert!(heap.alloc(Size(usize::MAX), Policy::BestFit).is_err());
    assert!(heap.alloc(Size(usize::MAX - 15), Policy::FirstFit).is_err());
    assert!(heap.alloc(Size(1 << 62), Policy::NextFit).is_err());
    assert!(heap.xalloc(&Constraints::new(Size(16)).align(Size(usize::MAX))).is_err());
    let huge_align = heap.xalloc(&Constraints::new(Size(16)).align(Size(1 << 63)));
    assert!(huge_align.is_err(), "{huge_align:?}");
    assert!(heap.xalloc(&Constraints::new(Size(16)).nocross(Size(8))).is_err());
    // src/arena/constraints.rs:89 "(a multiple of the quantum below `align`)"
    assert!(matches!(
        heap.xalloc(&Constraints::new(Size(16)).align(Size(64)).phase(Size(8))),
        Err(ArenaError::Misaligned { .. })
    ));
    // src/arena/constraints.rs:108 max_addr "(exclusive limit)": min > max.
    let c = Constraints::new(Size(16)).min_addr(Addr(0x2000)).max_addr(Addr(0x1000));
    assert!(matches!(heap.xalloc(&c), Err(ArenaError::OverConstrained(_))));
    // Bad frees: src/arena/free.rs:11-13 "A bad free returns
    // [`ArenaError::BadFree`] and changes nothing".
    assert!(matches!(
        heap.free(a, Size(41)),
        Err(ArenaError::BadFree { allocated: Some(Size(40)), .. })
    ));
    assert!(matches!(heap.free(Addr(a.0 + 16), Size(16)), Err(ArenaError::BadFree { .. })));
    assert!(matches!(
        heap.free(Addr(usize::MAX), Size(usize::MAX)),
        Err(ArenaError::BadFree { .. })
    ));
    // src/arena/resize.rs:29-32 a piece must start at a multiple of the quantum
    assert!(matches!(heap.free_part(a, Size(8), Size(16)), Err(ArenaError::BadFree { .. })));
    assert!(matches!(
        heap.free_part(a, Size(16), Size(usize::MAX)),
        Err(ArenaError::BadFree { .. })
    ));
    assert!(matches!(
        heap.free_part(a, Size(usize::MAX), Size(16)),
        Err(ArenaError::BadFree { .. })
    ));
    // src/arena/resize.rs:131-132 "a zero new size is an invalid argument"
    assert!(matches!(heap.resize(a, Size(40), Size(0)), Err(ArenaError::InvalidArgument(_))));
    // "a new size that cannot be rounded to the quantum is an Overflow"
    assert_eq!(heap.resize(a, Size(40), Size(usize::MAX)), Err(ArenaError::Overflow));
    // "growing past the top of the address space is `NoSpace`"
    assert!(matches!(
        heap.resize(a, Size(40), Size(usize::MAX - 15)),
        Err(ArenaError::NoSpace { .. })
    ));
    // Freeing an extent of the source directly through the arena:
    // add overlapping the import is refused (SpanOverlap).
    let span = heap.walk(SegmentKinds::SPANS).next().unwrap().range;
    assert_eq!(heap.add(span.base(), span.size()), Err(ArenaError::SpanOverlap(span)));
    assert_eq!(
        heap.extend(span.limit(), Size(16)),
        Err(ArenaError::NotAdjacent(Range::from_size(span.limit(), Size(16)).unwrap()))
    );
    // Nothing changed.
    assert_eq!(heap.walk(SegmentKinds::ALL).collect::<Vec<_>>(), before);
    assert_eq!(heap.sizes(), sizes);
    heap.check().unwrap();
    // And the arena still works after all that.
    heap.free(a, Size(40)).unwrap();
    assert!(matches!(heap.free(a, Size(40)), Err(ArenaError::BadFree { allocated: None, .. })));
    heap.check().unwrap();
    drop(heap);
    src.check().unwrap();
    assert_eq!(src.vm().mapped(), Size(0));
}

#[test]
fn foreign_and_stale_handles() {
    let be = MmapBackend::new();
    let mut a = Arena::on_pages("a", Size(16), be, 1024, NoSource).unwrap();
    let mut b = Arena::on_pages("b", Size(16), be, 1024, NoSource).unwrap();
    a.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    b.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    let ha = a.alloc_handle(Size(32), Policy::InstantFit).unwrap();
    let hb = b.alloc_handle(Size(32), Policy::InstantFit).unwrap();
    assert_eq!((ha.addr(), ha.tag()), (hb.addr(), hb.tag()), "built alike");
    // README.md:178-179 "it still refuses a handle that does not name a live
    // held allocation at its address (a stale one, another arena's)"
    assert!(matches!(b.free_handle(ha), Err(ArenaError::BadHandle { .. })));
    // src/arena/handle.rs:35-36 "a held segment is not in the hash, so
    // [`Arena::free`] of its address is a bad free"
    assert!(matches!(a.free(ha.addr(), Size(32)), Err(ArenaError::BadFree { .. })));
    assert_eq!(a.free_handle(ha), Ok(Size(32)));
    assert!(matches!(a.free_handle(ha), Err(ArenaError::BadHandle { .. })));
    // A forged tag far past the table: refused, no panic.
    let forged = a.handle_from_parts(ha.addr(), u32::MAX).unwrap();
    assert!(matches!(a.free_handle(forged), Err(ArenaError::BadHandle { .. })));
    assert!(a.lookup_handle(forged).is_none());
    assert_eq!(b.free_handle(hb), Ok(Size(32)));
    // src/arena/handle.rs:102-105 "Refused ... while a handle of this arena
    // holds an allocation"
    let h = a.alloc_handle(Size(16), Policy::BestFit).unwrap();
    assert!(matches!(a.salt_handles(7), Err(ArenaError::InvalidArgument(_))));
    a.free_handle(h).unwrap();
    a.salt_handles(7).unwrap();
    assert_eq!(a.counters().bad_frees, 3);
    assert_eq!(b.counters().bad_frees, 1);
    a.check().unwrap();
    b.check().unwrap();
}

#[test]
fn vm_source_import_contract() {
    let p = page();
    let mut src = source(4 * MIB);
    // src/arena/source.rs:46-52 "the sources of this crate refuse anything
    // else with an error ([`ArenaError::Misaligned`] for a size that is not
    // a non-zero multiple of the quantum, [`ArenaError::InvalidArgument`] for
    // an alignment that is not a power of two at least the quantum) and
    // change nothing."
    assert!(matches!(src.import(Size(0), p), Err(ArenaError::Misaligned { .. })));
    assert!(matches!(src.import(Size(p.0 + 1), p), Err(ArenaError::Misaligned { .. })));
    assert!(matches!(src.import(p, Size(3 * p.0)), Err(ArenaError::InvalidArgument(_))));
    assert!(matches!(src.import(p, Size(p.0 / 2)), Err(ArenaError::InvalidArgument(_))));
    assert!(src.import(Size(usize::MAX & !(p.0 - 1)), p).is_err());
    assert!(src.import(p, Size(1 << 63)).is_err());
    assert_eq!(src.vm().mapped(), Size(0));
    let r = src.import(Size(2 * p.0), p).unwrap();
    // src/arena/source.rs:55 "Give back `range`, which import returned": a
    // part of it, or twice, is refused.
    let half = Range::from_size(r.base(), p).unwrap();
    assert!(matches!(src.release(half), Err(ArenaError::BadFree { .. })));
    src.release(r).unwrap();
    assert!(matches!(src.release(r), Err(ArenaError::BadFree { .. })));
    src.check().unwrap();
    // The whole VM in one import, then nothing more.
    let all = src.import(Size(4 * MIB), p).unwrap();
    assert!(matches!(src.import(p, p), Err(ArenaError::NoSpace { .. })));
    src.release(all).unwrap();
    assert_eq!(src.vm().mapped(), Size(0));
    src.check().unwrap();
}

#[test]
fn a_small_object_churn_maps_and_unmaps_a_page_each_time() {
    let mut src = source(4 * MIB);
    let mut heap = Arena::on_pages("heap", Size(16), MmapBackend::new(), 4096, &mut src).unwrap();
    for _ in 0..1000 {
        let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
        heap.free(a, Size(16)).unwrap();
    }
    // src/arena/source.rs:12-16 "imports a span ... when no free segment
    // satisfies a request ... and gives an imported span back as soon as it
    // is wholly free again": no hysteresis, one map and one unmap per pair.
    assert_eq!(heap.counters().imports, 1000);
    assert_eq!(heap.counters().exports, 1000);
}

#[test]
fn a_compressed_pointer_heap_base() {
    // A runtime's 4 GiB heap at a 4 GiB-aligned base (compressed
    // pointers): src/vm/mod.rs:68-69 "whose base and limit are multiples of
    // `grain`".
    let g = Size(4 << 30);
    let mut vm = Vm::reserve(MmapBackend::new(), g, g).unwrap();
    assert_eq!(vm.base().0 % g.0, 0);
    assert_eq!(vm.limit().0 - vm.base().0, g.0);
    // README.md:118-119 "Reserving 1 TiB commits nothing but that summary
    // (32 KiB)": 4 GiB, one summary page.
    assert_eq!(vm.metadata_mapped(), page());
    let top = Range::from_size(Addr(vm.limit().0 - page().0), page()).unwrap();
    vm.map(top).unwrap();
    vm.unmap(top).unwrap();
    vm.check().unwrap();
}

#[test]
fn extend_fills_the_gap_between_two_added_spans() {
    let mut a = Arena::on_pages("ids", Size(16), MmapBackend::new(), 1024, NoSource).unwrap();
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    a.add(Addr(0x3000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x10), Policy::NextFit).unwrap();
    let y = a.xalloc(&Constraints::new(Size(0x10)).exact(Addr(0x3ff0))).unwrap();
    // src/arena/span.rs:30-33 "when it fills the gap between two, they
    // merge into one. The new room coalesces with free segments at the
    // seam."
    a.extend(Addr(0x2000), Size(0x1000)).unwrap();
    assert_eq!(a.span_count(), 1);
    assert_eq!(a.largest_free(), Size(0x3000 - 0x20));
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
    a.check().unwrap();
    // The whole middle in one allocation, across both old seams.
    let m = a.xalloc(&Constraints::new(Size(0x2000)).exact(Addr(0x1800))).unwrap();
    assert_eq!(m, Addr(0x1800));
    // Extending below the lowest span and above the highest grows them.
    a.extend(Addr(0x800), Size(0x800)).unwrap();
    a.extend(Addr(0x4000), Size(0x10)).unwrap();
    assert_eq!(a.span_count(), 1);
    assert_eq!(a.sizes().total, Size(0x4000 - 0x800 + 0x10));
    // Not touching any span, or overlapping: refused.
    assert!(matches!(a.extend(Addr(0x8000), Size(0x10)), Err(ArenaError::NotAdjacent(_))));
    assert!(a.extend(Addr(0x3ff0), Size(0x20)).is_err());
    for (p, s) in [(x, 0x10), (y, 0x10), (m, 0x2000)] {
        a.free(p, Size(s)).unwrap();
    }
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
    assert_eq!(a.fragmentation(), 0);
    a.check().unwrap();
}
