use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

const PAGE: usize = 64;
const TOP: usize = usize::MAX;

/// Reservations of absurd sizes and grains are errors, never panics,
/// and leave nothing reserved in the backend.
#[test]
fn reserve_absurd_sizes_and_grains() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let sizes = [TOP, TOP - PAGE + 1, TOP & !(PAGE - 1), 1 << 63, (1 << 63) + 1, 1 << 40];
    for s in sizes {
        for g in [PAGE, 1 << 12, 1 << 63] {
            assert!(Vm::reserve(&sim, Size(s), Size(g)).is_err(), "size {s:#x} grain {g:#x}");
        }
    }
    for g in [0usize, 3, PAGE + 1, TOP, (1 << 63) + 1, 1 << 63, 1 << 40] {
        assert!(Vm::reserve(&sim, Size(PAGE), Size(g)).is_err(), "grain {g:#x}");
    }
    assert_eq!(sim.stats().reservations, 0, "a failed reserve keeps nothing");
    assert_eq!(sim.stats().mapped_pages, 0);
}

/// The smallest reservations: zero bytes (an error, or an empty VM in
/// which every range is refused), one byte (one grain).
#[test]
fn reserve_smallest() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    if let Ok(mut vm) = Vm::reserve(&sim, Size(0), Size(PAGE)) {
        vm.check().unwrap();
        assert!(vm.range().size().0 % PAGE == 0);
        let r = Range::from_size(vm.base(), Size(PAGE)).unwrap();
        if vm.range().is_empty() {
            assert!(vm.map(r).is_err());
        }
        vm.check().unwrap();
    }
    for g in [PAGE, 4 * PAGE, 1 << 12] {
        let mut vm = Vm::reserve(&sim, Size(1), Size(g)).unwrap();
        assert_eq!(vm.range().size(), Size(g), "one byte rounds up to one grain");
        assert!(vm.base().is_aligned(Size(g)) && vm.limit().is_aligned(Size(g)));
        vm.map(vm.range()).unwrap();
        assert_eq!(vm.mapped(), Size(g));
        vm.check().unwrap();
        vm.unmap(vm.range()).unwrap();
        assert_eq!(vm.mapped(), Size(0));
        vm.check().unwrap();
    }
    assert_eq!(sim.stats().reservations, 0);
}

/// Ranges outside the VM, at its edges, at 0 and at the top of the
/// address space are refused by every call, nothing changed; the last
/// page of the VM maps, protects, unmaps and trims.
#[test]
fn ranges_at_the_extremes() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let (b, l) = (vm.base().0, vm.limit().0);
    let top = TOP & !(PAGE - 1);
    let bad = [
        Range::new(Addr(l), Addr(l + PAGE)).unwrap(),
        Range::new(Addr(l - PAGE), Addr(l + PAGE)).unwrap(),
        Range::new(Addr(b - PAGE), Addr(b)).unwrap(),
        Range::new(Addr(b - PAGE), Addr(b + PAGE)).unwrap(),
        Range::new(Addr(0), Addr(PAGE)).unwrap(),
        Range::new(Addr(0), Addr(top)).unwrap(),
        Range::new(Addr(top - PAGE), Addr(top)).unwrap(),
        Range::new(Addr(b), Addr(top)).unwrap(),
        Range::new(Addr(TOP - 1), Addr(TOP)).unwrap(),
        Range::new(Addr(l), Addr(TOP)).unwrap(),
        Range::empty(Addr(b)),
        Range::empty(Addr(l)),
        Range::empty(Addr(TOP)),
        Range::new(Addr(b + 1), Addr(b + PAGE)).unwrap(),
        Range::new(Addr(b), Addr(l - 1)).unwrap(),
    ];
    for r in bad {
        assert!(vm.map(r).is_err(), "map {r}");
        assert!(vm.unmap(r).is_err(), "unmap {r}");
        assert!(vm.unmap_deferred(r).is_err(), "unmap_deferred {r}");
        assert!(vm.protect(r, Protection::Read).is_err(), "protect {r}");
        assert!(vm.is_range_mapped(r).is_err(), "is_range_mapped {r}");
        assert!(vm.trim_range(r).is_err(), "trim_range {r}");
        vm.check().unwrap();
    }
    for a in [0usize, 1, b - 1, l, l + 1, TOP, TOP - 1] {
        assert!(!vm.is_mapped(Addr(a)), "{a:#x}");
    }
    let last = Range::new(Addr(l - PAGE), Addr(l)).unwrap();
    vm.map(last).unwrap();
    assert!(vm.is_mapped(Addr(l - 1)));
    assert!(!vm.is_mapped(Addr(l)));
    assert!(vm.is_range_mapped(last).unwrap());
    vm.protect(last, Protection::None).unwrap();
    vm.protect(last, Protection::ReadWrite).unwrap();
    vm.unmap(last).unwrap();
    vm.trim_range(last).unwrap();
    vm.check().unwrap();
    assert_eq!(vm.mapped(), Size(0));
    // The whole VM, then the whole VM deferred.
    vm.map(vm.range()).unwrap();
    assert_eq!(vm.mapped(), vm.range().size());
    assert_eq!(vm.mapped_runs().count(), 1);
    vm.unmap_deferred(vm.range()).unwrap();
    assert_eq!(vm.flush(), 64);
    vm.trim().unwrap();
    vm.check().unwrap();
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(sim.unflushed_pages(), 0);
}

/// On real mmap, a reservation past any address space is an error.
#[test]
fn mmap_reserve_absurd() {
    let be = vmspace_user::MmapBackend::new();
    let page = be.page_size().0;
    for s in [TOP, TOP & !(page - 1), 1 << 63, 1 << 62] {
        for g in [page, 1 << 21, 1 << 62] {
            assert!(Vm::reserve(be, Size(s), Size(g)).is_err(), "{s:#x} {g:#x}");
        }
    }
    assert!(Vm::reserve(be, Size(page), Size(1 << 63)).is_err());
}
