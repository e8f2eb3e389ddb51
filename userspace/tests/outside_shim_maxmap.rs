//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the chunk map's `unmap` on the real mmap backend at
//! `vm.max_map_count`, where the `Decommit` strategy's
//! `mprotect(PROT_NONE)` changes the VMAs before a split it cannot make and
//! fails (the `PageOps` contract allows it for an unmap: "may leave part of
//! its range with the protection it asked for [...] the layers that know it
//! put it back (the VM arena and the chunk map do)").
//!
//! `ChunkMap::unmap`: "On failure no chunk's state has changed". So after
//! the failure every chunk it still calls mapped must be read-write: a GC
//! writes to it. Each test fills this process's VMAs to the
//! limit, and nothing else may map memory meanwhile.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::{MmapBackend, UnmapStrategy};

mod vma_limit;
use vma_limit::{dontfork, fill_to_limit, perms_at, unfill};

/// One test at a time fills the VMAs.
static AT_THE_LIMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn max_map_count() -> Option<usize> {
    let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65530);
    if max > 1 << 20 {
        eprintln!("vm.max_map_count {max}: too many VMAs to fill, skipped");
        return None;
    }
    Some(max)
}

/// Was a DEFECT, now fixed: `ChunkMap::unmap` of chunks [c1, c4) over two VMAs ([c1, c3)
/// and [c3, c5), marked `MADV_DONTFORK`) at the VMA limit: `mprotect`
/// makes [c1, c3) `PROT_NONE`, cannot split at c4, fails. The map returns
/// `Backend` and still says c1 is mapped; the kernel says `---p`, so the
/// next write to a chunk the map calls mapped is a SIGSEGV.
#[test]
fn chunkmap_unmap_failing_part_way_at_the_vma_limit_keeps_mapped_chunks_writable() {
    let _g = AT_THE_LIMIT.lock().unwrap_or_else(|p| p.into_inner());
    let Some(max) = max_map_count() else { return };
    let ops = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let page = ops.page_size().0;
    let mut map = ChunkMap::new(ops, ChunkMapConfig::new(Size(64 * page), Size(page))).unwrap();
    let sbase = map.space().base().0;
    let c = |i: usize| sbase + i * page;
    let cr = |i: usize, n: usize| Range::from_size(Addr(c(i)), Size(n * page)).unwrap();
    map.ensure_mapped(cr(0, 6)).unwrap();
    for i in 0..6 {
        // SAFETY: just mapped read-write by the chunk map.
        unsafe { (c(i) as *mut u8).write_volatile(1) };
    }
    for (i, n) in [(0, 1), (3, 2)] {
        dontfork(c(i), n * page);
    }
    let range = cr(1, 3);
    let (fb, flen, reached) = fill_to_limit(page, max + 16);
    let r = map.unmap(range);
    unfill(fb, flen);
    assert!(reached, "could not reach the VMA limit");
    let real: Vec<String> = (1..4).map(|i| perms_at(c(i))).collect();
    let said: Vec<bool> = (1..4).map(|i| map.is_mapped(Addr(c(i)))).collect();
    eprintln!("ChunkMap::unmap [c1, c4) at the limit: {r:?}; is_mapped {said:?}; /proc {real:?}");
    map.check().unwrap();
    for k in 0..3 {
        assert!(
            !said[k] || real[k] == "rw-p",
            "unmap failed ({r:?}); the chunk map says chunk {} is mapped (state {:?}), the kernel \
             says {}",
            k + 1,
            map.state(Addr(c(k + 1))),
            real[k]
        );
    }
}

/// Was a DEFECT, now fixed: `VmArena::free` of tracts [t1, t4) over two VMAs at the VMA
/// limit (the `Decommit` unmap's `mprotect(PROT_NONE)` changes [t1, t3),
/// cannot split at t4, fails): the free fails, the tracts stay allocated
/// to their owner and recorded read-write, the kernel says `---p`.
#[test]
fn vmarena_free_failing_part_way_at_the_vma_limit_keeps_owned_tracts_writable() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
    use vmspace::Pages;
    let _g = AT_THE_LIMIT.lock().unwrap_or_else(|p| p.into_inner());
    let Some(max) = max_map_count() else { return };
    let ops = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let page = ops.page_size().0;
    let mut va = VmArena::new(ops, VmArenaConfig::new(Size(256 * page))).unwrap();
    va.set_spare_limit(0).unwrap();
    let owner = Owner(7);
    let g = va.alloc(&Request::new(Pages(5), owner)).unwrap();
    let t = |i: usize| g.range.base().0 + i * page;
    for i in 0..5 {
        // SAFETY: the grant is committed read-write.
        unsafe { (t(i) as *mut u8).write_volatile(1) };
    }
    for (i, n) in [(0, 1), (3, 2)] {
        dontfork(t(i), n * page);
    }
    let range = Range::from_size(Addr(t(1)), Size(3 * page)).unwrap();
    let (fb, flen, reached) = fill_to_limit(page, max + 16);
    let r = va.free(range, owner);
    unfill(fb, flen);
    assert!(reached, "could not reach the VMA limit");
    let real: Vec<String> = (1..4).map(|i| perms_at(t(i))).collect();
    let rec: Vec<_> = (1..4).map(|i| va.tract(Addr(t(i)))).collect();
    eprintln!("VmArena::free [t1, t4) at the limit: {r:?}; tracts {rec:?}; /proc {real:?}");
    va.check().unwrap();
    for k in 0..3 {
        if let Some(tr) = rec[k] {
            assert!(
                tr.prot != vmspace_shim::Protection::ReadWrite || real[k] == "rw-p",
                "free failed ({r:?}); tract {} still owned by {:?}, recorded {:?}, the kernel \
                 says {}",
                k + 1,
                tr.owner,
                tr.prot,
                real[k]
            );
        }
    }
}
