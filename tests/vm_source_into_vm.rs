//! `VmSource::into_vm`: the VM back once nothing is imported (flushed
//! first), else the source back unchanged.

use vmspace::arena::{ArenaError, PageStore, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Op, Size};

const PAGE: usize = 4096;

fn source<P: vmspace_shim::PageOps + Clone>(ops: P) -> VmSource<P, PageStore<P>> {
    let vm = Vm::reserve(ops.clone(), Size(64 * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(ops.clone(), Size(16 * PAGE)).unwrap();
    VmSource::new(vm, tags, PageStore::new(ops, Size(PAGE)).unwrap()).unwrap()
}

#[test]
fn the_vm_comes_back_unmapped_and_serves_a_new_source() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut s = source(&sim);
    let range = s.vm().range();
    let a = s.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    s.release(a).unwrap();
    let vm = s.into_vm().unwrap_or_else(|_| panic!("nothing imported"));
    assert_eq!((vm.range(), vm.mapped()), (range, Size(0)), "the same reservation, unmapped");
    vm.check().unwrap();
    let (t, h) =
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap());
    let mut again = VmSource::new(vm, t, h).unwrap();
    assert_eq!(again.import(Size(4 * PAGE), Size(PAGE)).unwrap(), a, "the same space again");
}

#[test]
fn an_outstanding_import_gives_the_source_back_unchanged() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut s = source(&sim);
    let a = s.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    let Err(refused) = s.into_vm() else { panic!("an import outstanding") };
    let want = ArenaError::InUse { what: "imports outstanding", size: Size(2 * PAGE) };
    assert_eq!(refused.error(), want);
    let mut s = refused.into_inner();
    assert!(s.vm().is_mapped(a.base()), "still mapped");
    s.check().unwrap();
    s.release(a).unwrap();
    assert!(s.into_vm().is_ok());
}

#[test]
fn what_waits_for_a_flush_is_flushed_first() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut s = source(&sim);
    s.set_flush_threshold(1000).unwrap();
    let a = s.import(Size(3 * PAGE), Size(PAGE)).unwrap();
    s.release(a).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 3, "batched: not flushed yet");
    let vm = s.into_vm().unwrap_or_else(|_| panic!("nothing imported"));
    assert_eq!(sim.stats().unflushed_pages, 0, "flushed on the way out");
    assert_eq!(vm.mapped(), Size(0));
}

#[test]
fn a_stranded_range_counts_as_imported() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inner = FaultInjector::new(&sim);
    let outer = FaultInjector::new(&inner);
    let mut s = source(&outer);
    let a = s.import(Size(8 * PAGE), Size(PAGE)).unwrap();
    outer.only(&[Op::Unmap]);
    outer.set_shape(FaultShape::PartWay);
    outer.fail_nth(1);
    inner.only(&[Op::Protect]);
    inner.fail_nth(2);
    assert!(matches!(s.release(a), Err(ArenaError::Stranded { .. })));
    outer.clear();
    inner.clear();
    assert!(s.into_vm().is_err(), "a stranded range stays imported");
}
