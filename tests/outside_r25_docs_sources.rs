//! Round 25 outside review: the sources (`src/sources/`) against their
//! documented contract and `Source`'s.

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::sources::{VmSource, IMPORT_OWNER};
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::Pages;
use vmspace_shim::sim::{PageState, Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Op, PageOps, Protection, Range, Size};

const PAGE: usize = 4096;

fn pages_of(r: Range) -> impl Iterator<Item = Addr> {
    (0..r.size().0 / PAGE).map(move |i| Addr(r.base().0 + i * PAGE))
}

/// `VmSource` docs: "mapping them on import"; `Source`: "`release` takes
/// back exactly a range that `import` returned; when it fails, the range
/// stays with the caller" (who goes on using it: an arena keeps the span
/// listed and hands it out again). `PageOps` says a failed unmap may leave
/// part of its range inaccessible and that "the layers that know [the old
/// protection] put it back" (the VM arena and the chunk map do). A range a
/// `VmSource` failed to take back must therefore still be read-write.
#[test]
fn a_failed_release_leaves_the_import_read_write() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let vm = Vm::reserve(&fi, Size(64 * PAGE), Size(PAGE)).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h)).unwrap();
    let r = src.import(Size(8 * PAGE), Size(PAGE)).unwrap();
    fi.only(&[Op::Unmap]);
    fi.set_shape(FaultShape::PartWay);
    fi.fail_nth(1);
    assert!(src.release(r).is_err());
    assert_eq!(fi.changed_part_way(), 1, "the unmap failed part way");
    fi.clear();
    src.check().unwrap();
    let states: Vec<_> = pages_of(r).map(|a| sim.page_state(a)).collect();
    assert!(
        states.iter().all(|s| *s == Some(PageState::Mapped(Protection::ReadWrite))),
        "still the caller's after a failed release, but: {states:?}"
    );
}

/// The same seen from an arena importing from a `VmSource`: the span whose
/// give-back failed stays free in the arena and its next allocation hands
/// out pages that are not read-write.
#[test]
fn an_arena_reuses_a_span_whose_give_back_failed_part_way() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let vm = Vm::reserve(&fi, Size(64 * PAGE), Size(PAGE)).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h)).unwrap();
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut a =
        Arena::new("r25", Size(PAGE), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut src)
            .unwrap();
    let x = a.alloc(Size(8 * PAGE), Policy::FirstFit).unwrap();
    fi.only(&[Op::Unmap]);
    fi.set_shape(FaultShape::PartWay);
    fi.fail_nth(1);
    a.free(x, Size(8 * PAGE)).unwrap();
    assert_eq!(fi.changed_part_way(), 1, "the give-back's unmap failed part way");
    fi.clear();
    a.check().unwrap();
    let y = a.alloc(Size(8 * PAGE), Policy::FirstFit).unwrap();
    let r = Range::from_size(y, Size(8 * PAGE)).unwrap();
    let states: Vec<_> = pages_of(r).map(|p| sim.page_state(p)).collect();
    assert!(
        states.iter().all(|s| *s == Some(PageState::Mapped(Protection::ReadWrite))),
        "an allocation handed out pages: {states:?}"
    );
}

/// `VmSource::release`: refuses all but an exact import ("refuses all but
/// an exact import"), changing nothing: part of an import, two imports, a
/// double release, a range of another source.
#[test]
fn vm_source_refuses_all_but_an_exact_import() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let vm2 = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h)).unwrap();
    let mut other = VmSource::new(vm2, SliceStore::new(&mut t2), SliceStore::new(&mut h2)).unwrap();
    let a = src.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let b = src.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let f = other.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let both = Range::new(a.base().min(b.base()), a.limit().max(b.limit())).unwrap();
    let before = (src.vm().mapped(), src.space().sizes().allocated);
    for r in [
        Range::from_size(a.base(), Size(PAGE)).unwrap(),
        Range::from_size(Addr(a.base().0 + PAGE), Size(3 * PAGE)).unwrap(),
        both,
        f,
        Range::empty(a.base()),
        Range::from_size(Addr(a.base().0 + 1), Size(4 * PAGE)).unwrap(),
    ] {
        let e = src.release(r);
        assert!(matches!(e, Err(ArenaError::BadFree { .. })), "{r}: {e:?}");
        assert_eq!((src.vm().mapped(), src.space().sizes().allocated), before, "{r}");
        src.check().unwrap();
    }
    src.release(a).unwrap();
    assert!(matches!(src.release(a), Err(ArenaError::BadFree { .. })), "double release");
    assert!(pages_of(f).all(|p| sim.protection(p) == Some(Protection::ReadWrite)));
    src.check().unwrap();
    other.check().unwrap();
}

/// `VmSource::new`: "Pages of it unmapped deferred and not yet flushed are
/// flushed first"; a VM with anything mapped is refused.
#[test]
fn vm_source_new_flushes_and_refuses_a_mapped_vm() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(16 * PAGE), Size(PAGE)).unwrap();
    let r = vm.range();
    vm.map(r).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    assert!(VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h)).is_err());
    let mut vm = Vm::reserve(&sim, Size(16 * PAGE), Size(PAGE)).unwrap();
    let r = vm.range();
    vm.map(r).unwrap();
    vm.unmap_deferred(r).unwrap();
    assert!(sim.unflushed_pages() > 0);
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h)).unwrap();
    let all = src.import(r.size(), Size(PAGE)).unwrap();
    assert_eq!(all, r);
    src.check().unwrap();
}

/// `Source` contract: "a failing call changes nothing" - a `VmSource`
/// import whose map fails leaves nothing taken: the next import gets the
/// same place.
#[test]
fn vm_source_failed_import_changes_nothing() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let vm = Vm::reserve(&fi, Size(64 * PAGE), Size(PAGE)).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h)).unwrap();
    let meta = src.vm().metadata_mapped();
    for n in 1..=3 {
        fi.only(&[Op::Map]);
        fi.fail_nth(n);
        let e = src.import(Size(4 * PAGE), Size(4 * PAGE));
        fi.clear();
        if e.is_ok() {
            break;
        }
        assert_eq!(src.vm().mapped(), Size(0));
        assert_eq!(src.vm().metadata_mapped(), meta, "failing map {n}");
        assert_eq!(src.space().sizes().allocated, Size(0));
        src.check().unwrap();
    }
    // Extremes: refused with the errors the trait names, changing nothing.
    assert!(matches!(src.import(Size(0), Size(PAGE)), Err(ArenaError::Misaligned { .. })));
    assert!(matches!(src.import(Size(PAGE + 1), Size(PAGE)), Err(ArenaError::Misaligned { .. })));
    assert!(matches!(src.import(Size(PAGE), Size(PAGE / 2)), Err(ArenaError::InvalidArgument(_))));
    assert!(matches!(src.import(Size(PAGE), Size(3 * PAGE)), Err(ArenaError::InvalidArgument(_))));
    assert!(src.import(Size(usize::MAX & !(PAGE - 1)), Size(PAGE)).is_err());
    assert!(src.import(Size(PAGE), Size(1 << 63)).is_err());
    assert!(src.set_flush_threshold(usize::MAX).is_err());
    assert_eq!(src.flush_threshold(), 0, "a refused threshold changes nothing");
    src.check().unwrap();
}

/// `impl Source for VmArena`: "a release of whole tracts that are all
/// imported is taken even if it is part of an import or spans two ...;
/// anything else is refused and changes nothing."
#[test]
fn vm_arena_source_release_rules() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let x = a.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let y = a.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(x.limit(), y.base(), "first fit: adjacent");
    let g = a.alloc(&Request::new(Pages(2), Owner(5))).unwrap();
    // Refused: a tract of another owner, a free tract, misaligned, outside.
    let c = a.committed();
    for r in [
        Range::new(y.base(), g.range.limit()).unwrap(),
        Range::new(x.base(), Addr(g.range.limit().0 + PAGE)).unwrap(),
        Range::from_size(Addr(x.base().0 + 1), Size(PAGE)).unwrap(),
        Range::from_size(a.range().limit(), Size(PAGE)).unwrap(),
        g.range,
    ] {
        assert!(a.release(r).is_err(), "{r}");
        assert_eq!(a.committed(), c);
        assert_eq!(a.allocated(), Size(10 * PAGE));
        a.check().unwrap();
    }
    // Taken: part of an import, then across two.
    a.release(Range::from_size(x.base(), Size(PAGE)).unwrap()).unwrap();
    a.release(Range::new(Addr(x.base().0 + PAGE), Addr(y.base().0 + PAGE)).unwrap()).unwrap();
    assert_eq!(a.tract(Addr(y.base().0 + PAGE)).unwrap().owner, IMPORT_OWNER);
    a.check().unwrap();
}

/// The same composition over a `VmArena` source, where it takes two
/// failures: the give-back's unmap fails part way and putting read-write
/// back fails too (`RollbackFailed`, tracts recorded inaccessible). The
/// release failed, so by `Source`'s contract the range "stays with the
/// caller", and the importing arena hands it out again: inaccessible.
#[test]
fn an_arena_reuses_a_vm_arena_span_left_inaccessible() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let inner = FaultInjector::new(&sim);
    let outer = FaultInjector::new(&inner);
    let mut vma = VmArena::new(&outer, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut a =
        Arena::new("r25", Size(PAGE), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut vma)
            .unwrap();
    let x = a.alloc(Size(8 * PAGE), Policy::FirstFit).unwrap();
    outer.only(&[Op::Unmap]);
    outer.set_shape(FaultShape::PartWay);
    outer.fail_nth(1);
    inner.only(&[Op::Protect]);
    inner.fail_nth(2); // the first is the part-way change itself; the second the put-back
    a.free(x, Size(8 * PAGE)).unwrap();
    assert_eq!(outer.changed_part_way(), 1);
    outer.clear();
    inner.clear();
    a.check().unwrap();
    let y = a.alloc(Size(8 * PAGE), Policy::FirstFit).unwrap();
    let r = Range::from_size(y, Size(8 * PAGE)).unwrap();
    let states: Vec<_> = pages_of(r).map(|p| sim.page_state(p)).collect();
    assert!(
        states.iter().all(|s| *s == Some(PageState::Mapped(Protection::ReadWrite))),
        "an allocation handed out pages: {states:?}"
    );
}
