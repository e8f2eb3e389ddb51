//! Round 63b outside review: values at and near `usize::MAX` fed to the
//! VM layers' public functions: errors or plain answers, never a panic.

use vmspace::arena::Source;
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Pages, Protection};

const PAGE: usize = 64;

fn top_ranges() -> Vec<Range> {
    let m = usize::MAX;
    let mut v = vec![];
    for (b, l) in [
        (m - 63, m),
        (m & !63, m),
        (m - 127, m & !63),
        (0, m),
        (0, 64),
        (64, m & !63),
        ((m & !63) - 64, m & !63),
    ] {
        if let Some(r) = Range::new(Addr(b), Addr(l)) {
            v.push(r);
        }
    }
    v
}

#[test]
fn vm_at_the_top() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    for a in [0, 1, usize::MAX, usize::MAX - 63, usize::MAX & !63] {
        assert!(!vm.is_mapped(Addr(a)));
        assert_eq!(vm.mapped_runs_from(Addr(a)).count(), 0);
    }
    for r in top_ranges() {
        assert!(vm.map(r).is_err());
        assert!(vm.unmap(r).is_err());
        assert!(vm.unmap_deferred(r).is_err());
        assert!(vm.protect(r, Protection::None).is_err());
        assert!(vm.is_range_mapped(r).is_err());
        assert!(vm.trim_range(r).is_err());
    }
    vm.check().unwrap();
    for (size, grain) in [
        (usize::MAX, PAGE),
        (usize::MAX - 4095, 4096),
        (1, 1usize << 63),
        (usize::MAX / 2, 1usize << 62),
        (1usize << 62, PAGE),
    ] {
        assert!(Vm::reserve(&sim, Size(size), Size(grain)).is_err(), "{size:#x} {grain:#x}");
    }
}

#[test]
fn vmarena_at_the_top() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(256 * PAGE)).zone_shift(63)).unwrap();
    for n in [usize::MAX, usize::MAX / 2, usize::MAX - 255, 1 << 40, 257] {
        for al in [1usize, 1 << 62, 1 << 63] {
            let req = Request::new(Pages(n), Owner(1)).align(Pages(al)).prefer(ZoneSet::single(1));
            assert!(a.alloc(&req).is_err(), "{n:#x} {al:#x}");
        }
    }
    for al in [1usize << 62, 1 << 63, 1 << 40] {
        let r = a.alloc(&Request::new(Pages(1), Owner(1)).align(Pages(al)));
        // the arena base is not that aligned (almost surely): refused
        if let Ok(g) = r {
            assert_eq!(g.range.base().0 % (al.saturating_mul(PAGE)).max(1), 0);
            a.free(g.range, Owner(1)).unwrap();
        }
    }
    for r in top_ranges() {
        assert!(a.free(r, Owner(1)).is_err());
        assert!(a.protect(r, Owner(1), Protection::Read).is_err());
        let _ = a.zones_of(r);
        assert!(Source::release(&mut a, r).is_err());
    }
    for addr in [0, usize::MAX, usize::MAX & !63] {
        assert!(a.set_client(Addr(addr), 1).is_err());
        assert_eq!(a.tract(Addr(addr)), None);
        let _ = a.zone_of(Addr(addr));
    }
    for (size, align) in [
        (usize::MAX & !63, PAGE),
        (PAGE, 1usize << 63),
        (usize::MAX & !63, 1 << 63),
        (1 << 62, 1 << 62),
    ] {
        assert!(a.import(Size(size), Size(align)).is_err());
    }
    assert!(a.set_commit_limit(Size(usize::MAX)).is_ok());
    assert!(a.set_spare_limit(usize::MAX).is_ok());
    let g = a.alloc(&Request::new(Pages(3), Owner(2))).unwrap();
    a.free(g.range, Owner(2)).unwrap();
    assert!(a.purge_spare().is_ok());
    a.check().unwrap();
    for bad in [
        VmArenaConfig::new(Size(usize::MAX)),
        VmArenaConfig::new(Size(usize::MAX - 63)),
        VmArenaConfig::new(Size(1 << 62)),
        VmArenaConfig::new(Size(PAGE)).zone_shift(64),
        VmArenaConfig::new(Size(PAGE)).zone_shift(u32::MAX),
        VmArenaConfig::new(Size(PAGE)).zone_shift(5),
    ] {
        assert!(VmArena::new(&sim, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn chunkmap_at_the_top() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut m = ChunkMap::new(&sim, ChunkMapConfig::new(Size(64 * 128), Size(128))).unwrap();
    for r in top_ranges() {
        assert!(m.ensure_mapped(r).is_err());
        assert!(m.quarantine(r).is_err());
        assert!(m.protect(r).is_err());
        assert!(m.unprotect(r).is_err());
        assert!(m.unmap(r).is_err());
    }
    for a in [0, usize::MAX, usize::MAX & !63] {
        assert!(!m.is_mapped(Addr(a)));
        assert_eq!(m.state(Addr(a)), None);
    }
    m.check().unwrap();
    for (space, chunk) in [
        (usize::MAX & !127, 128usize),
        (1usize << 63, 1 << 63),
        (usize::MAX & !((1 << 20) - 1), 1 << 20),
        (1 << 62, 1 << 62),
        (0, 128),
        (128, 0),
        (128, 32),
        (192, 128),
    ] {
        assert!(
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(space), Size(chunk))).is_err(),
            "{space:#x} {chunk:#x}"
        );
    }
}
