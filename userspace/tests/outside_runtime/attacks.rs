//! Attacks: extreme values, wrong frees, failed calls that must change
//! nothing, counters and walks against what was done, the Source contract.

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds, Source,
};
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::qcache::QCacheConfig;
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace::{Addr, PageOps, Pages, Range, Size};
use vmspace_user::{MmapBackend, UserArena};

use crate::{store, Store};

fn arena(q: usize) -> Arena<Store, NoSource> {
    let mut a = Arena::on_pages("atk", Size(q), MmapBackend::new(), 1 << 12, NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 30)).unwrap();
    a
}

type Snap = (vmspace::arena::Sizes, Vec<vmspace::arena::Segment>, usize);
fn snap<I: Source>(a: &Arena<Store, I>) -> Snap {
    (a.sizes(), a.walk(SegmentKinds::ALL).collect(), a.live())
}

#[test]
fn extreme_sizes_are_errors_not_panics() {
    let mut a = arena(16);
    let s0 = snap(&a);
    for size in [0, usize::MAX, usize::MAX - 15, 1 << 63, (1 << 30) + 1] {
        for p in Policy::ALL {
            assert!(a.alloc(Size(size), p).is_err(), "alloc {size:#x} {p:?}");
            assert!(a.alloc_handle(Size(size), p).is_err());
        }
        assert!(a.xalloc(&Constraints::new(Size(size))).is_err());
        assert!(a.xalloc(&Constraints::new(Size(size)).from_top(true)).is_err());
    }
    let cs = [
        Constraints::new(Size(16)).align(Size(1 << 63)),
        Constraints::new(Size(16)).align(Size(1 << 63)).phase(Size(1 << 62)),
        Constraints::new(Size(16)).nocross(Size(1 << 63)).phase(Size(usize::MAX - 15)),
        Constraints::new(Size(16)).min_addr(Addr(usize::MAX)),
        Constraints::new(Size(16)).max_addr(Addr(0)),
        Constraints::new(Size(16)).exact(Addr(usize::MAX - 15)),
        Constraints::new(Size(16)).exact(Addr(usize::MAX & !15)),
        Constraints::new(Size(usize::MAX - 15)).min_addr(Addr(16)),
        Constraints::new(Size(32)).nocross(Size(16)),
    ];
    for c in cs {
        for p in Policy::ALL {
            for top in [false, true] {
                let r = a.xalloc(&c.policy(p).from_top(top));
                assert!(r.is_err(), "{c:?} gave {r:?}");
            }
        }
    }
    assert_eq!(snap(&a), s0);
    a.check().unwrap();
}

#[test]
fn bad_frees_change_nothing_and_are_counted() {
    let mut a = arena(16);
    let x = a.alloc(Size(40), Policy::InstantFit).unwrap();
    let h = a.alloc_handle(Size(40), Policy::InstantFit).unwrap();
    let s0 = snap(&a);
    let c0 = a.counters();
    let attempts: Vec<Result<(), ArenaError>> = vec![
        a.free(x, Size(48)), // same rounded size, other asked size
        a.free(x, Size(32)),
        a.free(x, Size(0)),
        a.free(x, Size(usize::MAX)),
        a.free(Addr(x.0 + 16), Size(24)),
        a.free(h.addr(), Size(40)), // held: not by address
        a.free(Addr(usize::MAX), Size(1)),
        a.free_part(x, Size(usize::MAX), Size(16)),
        a.free_part(x, Size(16), Size(usize::MAX)),
        a.free_part(x, Size(0), Size(0)),
        a.free_part(x, Size(8), Size(16)),
        a.free_part(x, Size(32), Size(16)), // past asked end 40
        a.resize(x, Size(41), Size(16)),
        a.free_deferred(x, Size(39)),
    ];
    for (i, r) in attempts.iter().enumerate() {
        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "attempt {i}: {r:?}");
    }
    assert_eq!(snap(&a), s0);
    let c1 = a.counters();
    assert_eq!(c1.bad_frees - c0.bad_frees, attempts.len() as u64, "{c0:?} -> {c1:?}");
    assert_eq!(c1.failures, c0.failures, "bad claims count in bad_frees, not failures");
    a.free(x, Size(40)).unwrap();
    assert_eq!(a.free_handle(h), Ok(Size(40)));
    a.check().unwrap();
}

#[test]
fn resize_to_extremes_changes_nothing() {
    let mut a = arena(16);
    let x = a.alloc(Size(40), Policy::FirstFit).unwrap();
    let s0 = snap(&a);
    assert!(a.resize(x, Size(40), Size(0)).is_err());
    assert_eq!(a.resize(x, Size(40), Size(usize::MAX)), Err(ArenaError::Overflow));
    assert!(matches!(
        a.resize(x, Size(40), Size(usize::MAX - 15)),
        Err(ArenaError::NoSpace { .. })
    ));
    assert!(matches!(a.resize(x, Size(40), Size(1 << 31)), Err(ArenaError::NoSpace { .. })));
    assert_eq!(snap(&a), s0);
    a.resize(x, Size(40), Size(41)).unwrap();
    assert_eq!(a.lookup(x).map(|l| l.1), Some(Size(41)));
    a.free(x, Size(41)).unwrap();
    a.check().unwrap();
}

#[test]
fn free_part_of_whole_counts_as_a_free() {
    let mut a = arena(16);
    let x = a.alloc(Size(64), Policy::InstantFit).unwrap();
    let c0 = a.counters();
    a.free_part(x, Size(0), Size(64)).unwrap();
    let c1 = a.counters();
    assert_eq!(c1.frees, c0.frees + 1, "doc: freeing the whole allocation counts as a free");
    let y = a.alloc(Size(64), Policy::InstantFit).unwrap();
    let c2 = a.counters();
    a.free_part(y, Size(16), Size(16)).unwrap();
    assert_eq!(a.counters().frees, c2.frees, "a partial free counts none");
    a.free(y, Size(16)).unwrap();
    a.free(Addr(y.0 + 32), Size(32)).unwrap();
    a.check().unwrap();
    assert_eq!(a.live(), 0);
}

#[test]
fn foreign_and_forged_handles() {
    let mut a = arena(16);
    let mut b = arena(16);
    let ha = a.alloc_handle(Size(16), Policy::FirstFit).unwrap();
    let hb = b.alloc_handle(Size(16), Policy::FirstFit).unwrap();
    assert_eq!(ha.addr(), hb.addr());
    assert_eq!(ha.tag(), hb.tag());
    assert!(matches!(a.free_handle(hb), Err(ArenaError::BadHandle { .. })));
    for tag in [1, 2, u32::MAX, u32::MAX - 1, 1 << 20] {
        let f = a.handle_from_parts(ha.addr(), tag);
        if tag != ha.tag() {
            assert!(a.lookup_handle(f.unwrap()).is_none());
            assert!(a.free_handle(f.unwrap()).is_err());
        }
    }
    assert!(a.handle_from_parts(ha.addr(), 0).is_none());
    assert_eq!(a.free_handle(ha), Ok(Size(16)));
    assert_eq!(b.free_handle(hb), Ok(Size(16)));
    a.check().unwrap();
    b.check().unwrap();
}

#[test]
fn walk_and_sizes_agree_with_operations() {
    let mut a = arena(64);
    let mut live = Vec::new();
    for i in 0..200usize {
        let size = 1 + (i * 37) % 1000;
        let x = a.alloc(Size(size), Policy::ALL[i % 4]).unwrap();
        live.push((x, size));
    }
    for (i, &(x, s)) in live.iter().enumerate() {
        if i % 3 == 0 {
            a.free(x, Size(s)).unwrap();
        }
    }
    let kept: Vec<_> =
        live.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, v)| *v).collect();
    let walked: Vec<_> = a.walk(SegmentKinds::ALLOCATED).collect();
    assert_eq!(walked.len(), kept.len());
    assert_eq!(a.live(), kept.len());
    let mut sum = 0;
    for seg in &walked {
        let (x, s) = kept.iter().find(|(x, _)| *x == seg.range.base()).unwrap();
        assert_eq!(seg.requested, Size(*s));
        assert_eq!(seg.range.size().0, s.div_ceil(64) * 64);
        assert_eq!(a.lookup(*x), Some((seg.range, Size(*s))));
        sum += seg.range.size().0;
    }
    let sz = a.sizes();
    assert_eq!(sz.allocated, Size(sum));
    let free: usize = a.walk(SegmentKinds::FREE).map(|s| s.range.size().0).sum();
    assert_eq!(sz.free, Size(free));
    assert_eq!(sz.total, Size(1 << 30));
    let hist: usize = a.free_histogram().iter().sum();
    assert_eq!(hist, a.walk(SegmentKinds::FREE).count());
    let largest = a.walk(SegmentKinds::FREE).map(|s| s.range.size()).max().unwrap();
    assert_eq!(a.largest_free(), largest);
    assert_eq!(a.walk(SegmentKinds::SPANS).next().unwrap().kind, SegmentKind::Span);
    for (x, s) in kept {
        a.free(x, Size(s)).unwrap();
    }
    assert_eq!(a.fragmentation(), 0);
    a.check().unwrap();
}

/// The `Source` contract: "the sources of this crate refuse anything else
/// with an error" (size not a non-zero multiple of the quantum, align not a
/// power of two at least the quantum).
#[test]
fn sources_refuse_bad_import_arguments() {
    let be = MmapBackend::new();
    let page = be.page_size().0;
    let bad = [(0, page), (page / 2, page), (page, page / 2), (page, 3 * page), (page + 1, page)];
    let mut accepted = Vec::new();
    // A VM source.
    let vm = Vm::reserve(be, Size(64 << 20), Size(page)).unwrap();
    let mut vs = VmSource::new(vm, store(1 << 20), store(1 << 16)).unwrap();
    for (s, al) in bad {
        if let Ok(r) = vs.import(Size(s), Size(al)) {
            accepted.push(format!("VmSource import({s:#x}, {al:#x}) = {r}"));
        }
    }
    // A VM arena.
    let mut va = VmArena::new(be, VmArenaConfig::new(Size(64 << 20))).unwrap();
    for (s, al) in bad {
        if let Ok(r) = va.import(Size(s), Size(al)) {
            accepted.push(format!("VmArena import({s:#x}, {al:#x}) = {r}"));
        }
    }
    // An arena.
    let mut ar = arena(page);
    for (s, al) in bad {
        if let Ok(r) = ar.import(Size(s), Size(al)) {
            accepted.push(format!("Arena import({s:#x}, {al:#x}) = {r}"));
        }
    }
    // A shared arena.
    let sh: UserArena<Store, NoSource> = UserArena::new(arena(page));
    let mut shr = &sh;
    for (s, al) in bad {
        if let Ok(r) = shr.import(Size(s), Size(al)) {
            accepted.push(format!("&SyncArena import({s:#x}, {al:#x}) = {r}"));
        }
    }
    assert!(accepted.is_empty(), "accepted against the Source contract:\n{}", accepted.join("\n"));
}

#[test]
fn vm_extremes() {
    let be = MmapBackend::new();
    for (size, grain) in [
        (usize::MAX, 4096),
        (usize::MAX - 4095, 4096),
        (1 << 62, 4096),
        (4096, 1 << 63),
        (0, 4096),
        (4096, 0),
        (4096, 3 << 12),
    ] {
        assert!(Vm::reserve(be, Size(size), Size(grain)).is_err(), "{size:#x} {grain:#x}");
    }
    let mut vm = Vm::reserve(be, Size(1 << 24), Size(1 << 21)).unwrap();
    let lim = vm.limit();
    assert!(!vm.is_mapped(lim));
    assert!(!vm.is_mapped(Addr(usize::MAX)));
    let top = Range::from_size(Addr(lim.0 - 4096), Size(4096)).unwrap();
    vm.map(top).unwrap();
    assert!(vm.map(Range::from_size(lim, Size(4096)).unwrap()).is_err());
    let meta = vm.metadata_mapped();
    assert!(vm.unmap(Range::from_size(vm.base(), Size(8192)).unwrap()).is_err());
    assert_eq!(vm.metadata_mapped(), meta);
    vm.unmap(top).unwrap();
    assert_eq!(vm.trim_range(top).unwrap(), 1);
    vm.check().unwrap();
}

#[test]
fn vmarena_extremes() {
    let be = MmapBackend::new();
    for cfg in [
        VmArenaConfig::new(Size(0)),
        VmArenaConfig::new(Size(usize::MAX)),
        VmArenaConfig::new(Size(1 << 20)).zone_shift(64),
        VmArenaConfig::new(Size(1 << 20)).zone_shift(3),
    ] {
        assert!(VmArena::new(be, cfg).is_err(), "{cfg:?}");
    }
    let mut va =
        VmArena::new(be, VmArenaConfig::new(Size(16 << 20)).commit_limit(Size(1 << 20))).unwrap();
    let o = Owner(3);
    for req in [
        Request::new(Pages(0), o),
        Request::new(Pages(1), Owner::NONE),
        Request::new(Pages(usize::MAX), o),
        Request::new(Pages(usize::MAX / 2), o),
        Request::new(Pages(1), o).align(Pages(0)),
        Request::new(Pages(1), o).align(Pages(3)),
        Request::new(Pages(1), o).align(Pages(1 << 62)),
        Request::new(Pages(1 << 40), o).align(Pages(1 << 40)),
        Request::new(Pages(257), o), // past the commit limit
        Request::new(Pages(1), o).prefer(ZoneSet::EMPTY).avoid(ZoneSet::ALL).align(Pages(1 << 63)),
    ] {
        let r = va.alloc(&req);
        assert!(r.is_err(), "{req:?} gave {r:?}");
    }
    assert_eq!(va.committed(), Size(0));
    assert_eq!(va.allocated(), Size(0));
    va.check().unwrap();
    // Everything avoided: still placed, and says so.
    let g = va.alloc(&Request::new(Pages(1), o).avoid(ZoneSet::ALL)).unwrap();
    assert!(g.fell_back());
    va.free(g.range, o).unwrap();
    va.check().unwrap();
}

#[test]
fn chunkmap_extremes() {
    let be = MmapBackend::new();
    for (s, c) in
        [(0, 1 << 20), (1 << 20, 0), (usize::MAX, 1 << 20), (1 << 63, 1 << 63), (3 << 20, 1 << 21)]
    {
        assert!(ChunkMap::new(be, ChunkMapConfig::new(Size(s), Size(c))).is_err(), "{s:#x} {c:#x}");
    }
    let mut m = ChunkMap::new(be, ChunkMapConfig::new(Size(1 << 30), Size(1 << 20))).unwrap();
    let sp = m.space();
    let last = Range::from_size(Addr(sp.limit().0 - 1), Size(1)).unwrap();
    m.ensure_mapped(last).unwrap();
    assert!(m.is_mapped(Addr(sp.limit().0 - 1)));
    assert!(!m.is_mapped(sp.limit()));
    assert_eq!(m.state(sp.limit()), None);
    assert!(m.ensure_mapped(Range::from_size(sp.limit(), Size(1)).unwrap()).is_err());
    assert!(m.unmap(Range::from_size(Addr(sp.limit().0 - 1), Size(1)).unwrap()).is_err());
    assert_eq!(m.committed_chunks(), 1);
    m.unmap(Range::from_size(Addr(sp.limit().0 - (1 << 20)), Size(1 << 20)).unwrap()).unwrap();
    m.check().unwrap();
}

#[test]
fn qcache_config_extremes() {
    for classes in [0usize, 1, 8, 9, 16, 64, usize::MAX] {
        let mut a = Arena::on_pages("q", Size(16), MmapBackend::new(), 1 << 12, NoSource).unwrap();
        a.add(Addr(1 << 40), Size(1 << 30)).unwrap();
        let r: Result<UserArena<Store, NoSource>, _> =
            UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store(1 << 22)));
        if let Ok(sh) = r {
            let max = sh.qcache_max();
            assert!(max.0 <= 16 * classes.min(64), "classes {classes}: max {max:?}");
        }
    }
}
