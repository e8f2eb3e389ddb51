//! Written from the documentation by an outside reviewer: failed
//! constructors and drops of a whole runtime leave no mapping behind
//! (VmSize from /proc/self/status before and after, one test per binary so
//! no other test maps meanwhile).

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::qcache::QCacheConfig;
use vmspace::sources::VmSource;
use vmspace::sync::CacheHandle;
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::{Addr, Pages, Range, Size};
use vmspace_user::{MmapBackend, RseqPin, UserArena, UserCpuCaches};

fn vm_size_kb() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn store(bytes: usize) -> PageStore<MmapBackend> {
    PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()
}

fn round() {
    let be = MmapBackend::new();
    // Failing constructors.
    assert!(Arena::<PageStore<MmapBackend>, NoSource>::on_pages(
        "x",
        Size(3),
        be,
        1 << 16,
        NoSource
    )
    .is_err());
    let a = Arena::on_pages("x", Size(16), be, 1 << 12, NoSource).unwrap();
    assert!(UserArena::with_quantum_caches(a, QCacheConfig::new(0, store(1 << 22))).is_err());
    let mut vm = Vm::reserve(be, Size(1 << 30), Size(1 << 21)).unwrap();
    vm.map(Range::from_size(vm.base(), Size(4096)).unwrap()).unwrap();
    assert!(VmSource::new(vm, store(1 << 20), store(1 << 16)).is_err());
    assert!(ChunkMap::new(be, ChunkMapConfig::new(Size(1 << 30), Size(3 << 20))).is_err());
    assert!(VmArena::new(be, VmArenaConfig::new(Size(1 << 30)).zone_shift(2)).is_err());
    // A whole runtime, used and dropped with things still live.
    let mut ids = Arena::on_pages("ids", Size(16), be, 1 << 12, NoSource).unwrap();
    ids.add(Addr(1 << 40), Size(1 << 30)).unwrap();
    let sh = UserArena::with_quantum_caches(ids, QCacheConfig::new(8, store(1 << 22))).unwrap();
    {
        let caches = UserCpuCaches::new(&sh, RseqPin::new(), store(1 << 20)).unwrap();
        let mut h = CacheHandle::new(&sh);
        for i in 0..1000usize {
            let _ = caches.alloc(Size(16 * (1 + i % 8))).unwrap();
            let _ = h.alloc(Size(16 * (1 + i % 8))).unwrap();
        }
        let mut child = Arena::on_pages("child", Size(16), be, 1 << 12, &sh).unwrap();
        child.alloc(Size(4096), Policy::InstantFit).unwrap();
    }
    drop(sh);
    let mut va = VmArena::new(be, VmArenaConfig::new(Size(1 << 30)).spare_limit(8)).unwrap();
    let g = va.alloc(&Request::new(Pages(16), Owner(1))).unwrap();
    {
        let mut code = Arena::on_pages("code", Size(64), be, 1 << 12, &mut va).unwrap();
        code.alloc(Size(100), Policy::InstantFit).unwrap();
    }
    let _ = g;
    drop(va);
    let vm = Vm::reserve(be, Size(1 << 30), Size(1 << 21)).unwrap();
    let mut src = VmSource::new(vm, store(1 << 20), store(1 << 16)).unwrap();
    src.set_flush_threshold(4).unwrap();
    {
        let mut heap = Arena::on_pages("heap", Size(16), be, 1 << 12, &mut src).unwrap();
        heap.alloc(Size(1 << 16), Policy::InstantFit).unwrap();
    }
    drop(src);
    let map = ChunkMap::new(be, ChunkMapConfig::new(Size(1 << 34), Size(1 << 20))).unwrap();
    map.ensure_mapped(Range::from_size(map.space().base(), Size(3 << 20)).unwrap()).unwrap();
    drop(map);
}

#[test]
fn nothing_stays_mapped() {
    round();
    let before = vm_size_kb();
    for _ in 0..20 {
        round();
    }
    let after = vm_size_kb();
    // Allow a little for the allocator and thread stacks; a leaked
    // reservation here is at least 16 MiB.
    assert!(after <= before + 8 * 1024, "VmSize {before} kB -> {after} kB");
}
