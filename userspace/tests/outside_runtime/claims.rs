//! Claims of README.md and the rustdoc, checked one by one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SegmentKinds};
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::{Addr, Pages, Protection, Range, Size};
use vmspace_user::MmapBackend;

use crate::{store, vmas_in, Store};

/// Rss in kB of the VMAs overlapping `[lo, hi)`, from /proc/self/smaps.
fn rss_kb(lo: usize, hi: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    let mut kb = 0;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = a < hi && lo < b;
                continue;
            }
        }
        if inside && l.starts_with("Rss:") {
            kb += l.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap();
        }
    }
    kb
}

#[test]
fn one_tib_commits_nothing_and_64gib_vmarena_maps_one_page() {
    let vm = Vm::reserve(MmapBackend::new(), Size(1 << 40), Size(2 << 20)).unwrap();
    let r = vm.reservation();
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(rss_kb(r.base().0, r.limit().0), 0);
    drop(vm);
    let va = VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(64 << 30))).unwrap();
    assert_eq!(va.metadata_mapped(), Size(4096), "README: one 4 KiB page of metadata");
    assert_eq!(va.committed(), Size(0));
}

#[test]
fn chunk_map_directory_two_pages_for_47_bits() {
    let m = ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(1 << 46), Size(4 << 20)))
        .unwrap();
    assert_eq!(m.metadata_mapped(), Size(4096));
    assert_eq!(m.leaves_present(), 0);
}

#[test]
fn decommit_vmas_are_two_per_run_plus_one() {
    let be = MmapBackend::with_strategy(vmspace_user::UnmapStrategy::Decommit);
    let mut vm = Vm::reserve(be, Size(1 << 30), Size(2 << 20)).unwrap();
    let (b, l) = (vm.base().0, vm.limit().0);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let pages = 512usize;
    for _ in 0..4000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = 1 + (x as usize % (pages - 2));
        let r = Range::from_size(Addr(b + p * 4096), Size(4096)).unwrap();
        if vm.is_mapped(r.base()) {
            vm.unmap(r).unwrap();
        } else {
            vm.map(r).unwrap();
            // SAFETY: just mapped.
            unsafe { r.base().as_ptr::<u8>().write(1) };
        }
    }
    let runs = vm.mapped_runs().count();
    assert_eq!(vmas_in(b, l), 2 * runs + 1, "runs {runs}");
}

#[test]
fn vmarena_spare_pages_keep_contents_fresh_read_zero() {
    let mut va =
        VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(16 << 20)).spare_limit(2))
            .unwrap();
    let o = Owner(5);
    let g = va.alloc(&Request::new(Pages(4), o)).unwrap();
    for i in 0..4 {
        // SAFETY: allocated read-write.
        unsafe { Addr(g.range.base().0 + i * 4096).as_ptr::<u8>().write(0xAA) };
    }
    va.free(g.range, o).unwrap();
    assert_eq!(va.spare(), Size(2 * 4096), "the lowest two kept spare");
    let g2 = va.alloc(&Request::new(Pages(4), o)).unwrap();
    assert_eq!(g2.range, g.range);
    // SAFETY: allocated.
    let bytes: Vec<u8> = (0..4)
        .map(|i| unsafe { Addr(g2.range.base().0 + i * 4096).as_ptr::<u8>().read() })
        .collect();
    assert_eq!(bytes, [0xAA, 0xAA, 0, 0]);
    assert_eq!(va.spare(), Size(0));
    va.check().unwrap();
}

#[test]
fn vmarena_commit_limit_purges_spare_and_stays_under() {
    let page = 4096;
    let limit = 64 * page;
    let cfg = VmArenaConfig::new(Size(64 << 20)).spare_limit(1000).commit_limit(Size(limit));
    let mut va = VmArena::new(MmapBackend::new(), cfg).unwrap();
    let o = Owner(1);
    let g = va.alloc(&Request::new(Pages(40), o)).unwrap();
    va.free(g.range, o).unwrap();
    assert_eq!(va.spare(), Size(40 * page));
    // 40 spare + 1 table page mapped stay within 64; 60 more need a purge.
    let far = Request::new(Pages(60), o).align(Pages(64));
    let g = va.alloc(&far).unwrap();
    assert!(va.committed().0 <= limit, "committed {:?}", va.committed());
    va.check().unwrap();
    let r = va.alloc(&Request::new(Pages(10), o));
    assert!(r.is_err());
    assert!(va.committed().0 <= limit);
    va.free(g.range, o).unwrap();
    va.check().unwrap();
}

#[test]
fn vmarena_client_bits_and_protection_in_the_table() {
    let mut va = VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(16 << 20))).unwrap();
    let o = Owner(9);
    let g = va.alloc(&Request::new(Pages(2), o)).unwrap();
    va.set_client(g.range.base(), 0xBEEF).unwrap();
    va.protect(g.range, o, Protection::None).unwrap();
    let t = va.tract(g.range.base()).unwrap();
    assert_eq!((t.owner, t.prot, t.client), (o, Protection::None, 0xBEEF));
    assert!(va.set_client(Addr(g.range.limit().0), 1).is_err());
    assert!(va.protect(g.range, Owner(8), Protection::Read).is_err());
    assert_eq!(va.tract(g.range.base()).unwrap().prot, Protection::None);
    va.free(g.range, o).unwrap();
    assert!(va.tract(g.range.base()).is_none());
    va.check().unwrap();
}

static LEAKS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
static LEAK_CALLS: AtomicUsize = AtomicUsize::new(0);
fn hook(name: &'static str, r: Range) {
    assert_eq!(name, "leaky");
    LEAK_CALLS.fetch_add(1, Ordering::SeqCst);
    LEAKS.lock().unwrap().push((r.base().0, r.size().0));
}

#[test]
fn leak_hook_reports_requested_sizes() {
    let mut a: Arena<Store, NoSource> =
        Arena::on_pages("leaky", Size(16), MmapBackend::new(), 1 << 10, NoSource).unwrap();
    a.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    let x = a.alloc(Size(20), Policy::FirstFit).unwrap();
    let h = a.alloc_handle(Size(33), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(16), Policy::FirstFit).unwrap();
    a.free(y, Size(16)).unwrap();
    a.set_leak_hook(Some(hook));
    drop(a);
    let mut got = LEAKS.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![(x.0, 20), (h.addr().0, 33)]);
}

#[test]
fn extend_bridges_two_spans() {
    let mut a: Arena<Store, NoSource> =
        Arena::on_pages("ext", Size(16), MmapBackend::new(), 1 << 10, NoSource).unwrap();
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    a.add(Addr(0x3000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x1000), Policy::FirstFit).unwrap();
    assert_eq!(x, Addr(0x1000));
    assert_eq!(a.span_count(), 2);
    a.extend(Addr(0x2000), Size(0x1000)).unwrap();
    assert_eq!(a.span_count(), 1);
    assert_eq!(a.walk(SegmentKinds::SPANS).count(), 1);
    assert_eq!(a.largest_free(), Size(0x2000));
    assert!(a.contains(Addr(0x1000), Size(0x3000)));
    assert!(matches!(a.extend(Addr(0x8000), Size(16)), Err(ArenaError::NotAdjacent(_))));
    assert!(matches!(a.extend(Addr(0x2000), Size(16)), Err(ArenaError::SpanOverlap(_))));
    a.free(x, Size(0x1000)).unwrap();
    assert_eq!(a.largest_free(), Size(0x3000));
    a.check().unwrap();
}

#[test]
fn mtbf_injects_and_counts() {
    let mut a: Arena<Store, NoSource> =
        Arena::on_pages("mtbf", Size(16), MmapBackend::new(), 1 << 12, NoSource).unwrap();
    a.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    a.set_mtbf(42, 3);
    let mut live = Vec::new();
    let mut injected = 0u64;
    for _ in 0..300 {
        match a.alloc(Size(16), Policy::InstantFit) {
            Ok(x) => live.push(x),
            Err(ArenaError::Injected) => injected += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let c = a.counters();
    assert!(injected > 0);
    assert_eq!(c.injected, injected);
    assert_eq!(c.failures, injected);
    assert_eq!(c.allocs, live.len() as u64);
    a.set_mtbf(0, 0);
    for x in live {
        a.free(x, Size(16)).unwrap();
    }
    a.check().unwrap();
    let _ = store(4096);
}
