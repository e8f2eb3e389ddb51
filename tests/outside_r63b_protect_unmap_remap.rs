//! Round 63b outside review: protect, then unmap, then map again, at each
//! layer: the pages come back read-write and reading zero, and the books
//! say read-write (a protection must not outlive the mapping).

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Pages, Protection};

const PAGE: usize = 64;

fn zero(r: Range) -> bool {
    // SAFETY: the callers pass read-write mapped ranges (checked first).
    unsafe { std::slice::from_raw_parts(r.base().0 as *const u8, r.size().0) }
        .iter()
        .all(|&b| b == 0)
}

fn fill(r: Range) {
    // SAFETY: the callers pass read-write mapped ranges.
    unsafe { std::ptr::write_bytes(r.base().0 as *mut u8, 0xA5, r.size().0) }
}

#[test]
fn vm_protect_unmap_map() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let r = Range::from_size(vm.base(), Size(8 * PAGE)).unwrap();
    for prot in [Protection::None, Protection::Read] {
        vm.map(r).unwrap();
        fill(r);
        vm.protect(r, prot).unwrap();
        vm.unmap(r).unwrap();
        vm.map(r).unwrap();
        for p in 0..8 {
            assert_eq!(sim.protection(Addr(r.base().0 + p * PAGE)), Some(Protection::ReadWrite));
        }
        assert!(zero(r));
        vm.unmap(r).unwrap();
        vm.check().unwrap();
    }
}

#[test]
fn vmarena_protect_free_alloc() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).spare_limit(64)).unwrap();
    for prot in [Protection::None, Protection::Read] {
        let g = a.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
        fill(g.range);
        // protect half of it
        let half = Range::from_size(g.range.base(), Size(4 * PAGE)).unwrap();
        a.protect(half, Owner(1), prot).unwrap();
        a.free(g.range, Owner(1)).unwrap();
        assert_eq!(a.spare(), Size(0), "a range with a protected tract is decommitted whole");
        let g2 = a.alloc(&Request::new(Pages(8), Owner(2))).unwrap();
        assert_eq!(g2.range, g.range);
        for p in 0..8 {
            let addr = Addr(g2.range.base().0 + p * PAGE);
            assert_eq!(sim.protection(addr), Some(Protection::ReadWrite));
            assert_eq!(a.tract(addr).unwrap().prot, Protection::ReadWrite);
        }
        assert!(zero(g2.range));
        a.free(g2.range, Owner(2)).unwrap();
        a.purge_spare().unwrap();
        a.check().unwrap();
    }
}

#[test]
fn chunkmap_protect_unmap_ensure() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut m =
        ChunkMap::new(&sim, ChunkMapConfig::new(Size(64 * 2 * PAGE), Size(2 * PAGE))).unwrap();
    let r = Range::from_size(m.space().base(), Size(8 * PAGE)).unwrap();
    m.ensure_mapped(r).unwrap();
    fill(r);
    m.protect(r).unwrap();
    m.unmap(r).unwrap();
    assert_eq!(m.state(r.base()), Some(ChunkState::Unmapped));
    m.ensure_mapped(r).unwrap();
    for p in 0..8 {
        assert_eq!(sim.protection(Addr(r.base().0 + p * PAGE)), Some(Protection::ReadWrite));
    }
    assert!(zero(r));
    // protect, then quarantine (no change), then ensure_mapped unprotects
    m.protect(r).unwrap();
    m.quarantine(r).unwrap();
    assert_eq!(m.state(r.base()), Some(ChunkState::Protected));
    fill_check_after_ensure(&mut m, r, &sim);
    m.check().unwrap();
}

fn fill_check_after_ensure(m: &mut ChunkMap<&SimBackend<'_>>, r: Range, sim: &SimBackend<'_>) {
    m.ensure_mapped(r).unwrap();
    assert_eq!(m.state(r.base()), Some(ChunkState::Mapped));
    for p in 0..8 {
        assert_eq!(sim.protection(Addr(r.base().0 + p * PAGE)), Some(Protection::ReadWrite));
    }
    assert!(zero(r), "unprotected chunks keep their (zero) contents");
}
