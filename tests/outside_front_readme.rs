//! An outside newcomer's checks of README.md's and the crate docs' concrete
//! claims, written as the README tells a user to write programs.

use vmspace::arena::{
    Arena, ArenaError, Handle, NoSource, PageStore, Policy, SegmentKinds, SliceStore,
};
use vmspace::chunkmap::ChunkMapConfig;
use vmspace::qcache::{self, magazine_store_bytes, table_store_bytes, CpuPin, QCacheConfig};
use vmspace::sync::CpuCaches;
use vmspace::sync::Wait;
use vmspace::vm::{Vm, VmError};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::{Addr, Size};
use vmspace_shim::{PageOps, Range};
use vmspace_user::{procfs, MmapBackend, RseqPin, UnmapStrategy, UserArena};

fn page() -> usize {
    MmapBackend::new().page_size().0
}

/// README, "The VM layer": "Reserving 1 TiB commits nothing but that summary
/// (32 KiB)" and "one 4 KiB table page covers 128 MiB".
#[test]
fn vm_1tib_commits_only_a_32k_summary() {
    if page() != 4096 {
        return;
    }
    let vm = Vm::reserve(MmapBackend::new(), Size(1 << 40), Size(2 << 20)).unwrap();
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(vm.metadata_mapped(), Size(32 << 10));
}

/// README: "Misaligned ranges, ranges outside the VM, mapping what is mapped
/// and unmapping what is not are errors that leave the VM unchanged".
#[test]
fn vm_bad_requests_are_errors_and_change_nothing() {
    let p = page();
    let mut vm = Vm::reserve(MmapBackend::new(), Size(64 << 20), Size(2 << 20)).unwrap();
    let base = vm.base();
    let r = Range::from_size(base, Size(4 * p)).unwrap();
    vm.map(r).unwrap();
    let meta = vm.metadata_mapped();
    // misaligned
    let mis = Range::from_size(Addr(base.0 + 8 * p + 1), Size(p)).unwrap();
    assert!(vm.map(mis).is_err());
    // outside
    let out = Range::from_size(vm.limit(), Size(p)).unwrap();
    assert!(vm.map(out).is_err());
    let below = Range::from_size(Addr(base.0 - p), Size(2 * p)).unwrap();
    assert!(vm.map(below).is_err());
    // mapping what is mapped
    assert!(matches!(vm.map(r), Err(VmError::AlreadyMapped(_))));
    // unmapping what is not
    let r2 = Range::from_size(Addr(base.0 + 16 * p), Size(p)).unwrap();
    assert!(matches!(vm.unmap(r2), Err(VmError::NotMapped(_))));
    assert_eq!(vm.mapped(), Size(4 * p));
    assert_eq!(vm.metadata_mapped(), meta);
    vm.check().unwrap();
}

/// `Vm::reserve` docs: "A size of 0, or a grain that is not a power of two
/// at least the backend's page size, is refused with an error."
#[test]
fn vm_reserve_refuses_zero_size_and_bad_grains() {
    let p = page();
    assert!(Vm::reserve(MmapBackend::new(), Size(0), Size(p)).is_err());
    assert!(Vm::reserve(MmapBackend::new(), Size(1 << 20), Size(3 * p)).is_err());
    assert!(Vm::reserve(MmapBackend::new(), Size(1 << 20), Size(p / 2)).is_err());
}

/// README, "The arena": "a `Handle` (the address and the boundary tag's
/// index, 16 bytes, `Copy`)".
#[test]
fn handle_is_16_bytes() {
    assert_eq!(core::mem::size_of::<Handle>(), 16);
    assert_eq!(core::mem::size_of::<Option<Handle>>(), 16);
}

/// README: "slabs of 64 objects ... (at most `qcache::SLABS`, 32, a class at
/// once"; C API table: qcache_max "at most 8".
#[test]
fn qcache_constants_are_as_documented() {
    assert_eq!(qcache::OBJECTS, 64);
    assert_eq!(qcache::SLABS, 32);
    assert_eq!(qcache::MAX_CLASSES, 8);
}

fn arena16<'a>(tags: &'a mut [u8], hash: &'a mut [u8]) -> Arena<SliceStore<'a>, NoSource> {
    let mut a =
        Arena::new("t", Size(16), SliceStore::new(tags), SliceStore::new(hash), NoSource).unwrap();
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    a
}

/// `Arena::free` docs: "which must be live and have been allocated with
/// exactly `size`. A bad free returns BadFree and changes nothing".
#[test]
fn free_needs_exactly_the_size_allocated() {
    let (mut tags, mut hash) = ([0u8; 16384], [0u8; 4096]);
    let mut a = arena16(&mut tags, &mut hash);
    let x = a.alloc(Size(10), Policy::InstantFit).unwrap();
    let before = a.sizes();
    let r = a.free(x, Size(16)); // same quanta, not the size asked for
    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
    assert_eq!(a.sizes(), before);
    assert_eq!(a.counters().bad_frees, 1);
    a.free(x, Size(10)).unwrap();
    a.check().unwrap();
}

/// `free_part` docs: a piece not starting at a multiple of the quantum "is a
/// BadFree that changes nothing (but the bad-free counter)"; Counters docs:
/// a bad claim counts in `bad_frees` instead of `failures`.
#[test]
fn free_part_misaligned_is_badfree_counted_as_bad_free() {
    let (mut tags, mut hash) = ([0u8; 16384], [0u8; 4096]);
    let mut a = arena16(&mut tags, &mut hash);
    let x = a.alloc(Size(64), Policy::FirstFit).unwrap();
    let c0 = a.counters();
    let r = a.free_part(x, Size(8), Size(16));
    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
    let c1 = a.counters();
    assert_eq!(c1.bad_frees, c0.bad_frees + 1);
    assert_eq!(c1.failures, c0.failures);
    assert_eq!(a.lookup(x).map(|(_, s)| s), Some(Size(64)));
    a.check().unwrap();
}

/// README: resize "grows it into the free segment right after it in its span;
/// when that is not enough it fails with `NoSpace`, changing nothing".
#[test]
fn resize_without_room_is_nospace_and_changes_nothing() {
    let (mut tags, mut hash) = ([0u8; 16384], [0u8; 4096]);
    let mut a = arena16(&mut tags, &mut hash);
    let x = a.alloc(Size(64), Policy::FirstFit).unwrap();
    let _y = a.alloc(Size(64), Policy::FirstFit).unwrap();
    let s = a.sizes();
    let r = a.resize(x, Size(64), Size(128));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    assert_eq!(a.sizes(), s);
    a.check().unwrap();
}

/// README: fragmentation "1 - largest free / all free"; the replay prints it
/// per mille.
#[test]
fn fragmentation_is_one_minus_largest_over_all_per_mille() {
    let mut tags = [0u8; 16384];
    let mut hash = [0u8; 4096];
    let mut a =
        Arena::new("f", Size(1), SliceStore::new(&mut tags), SliceStore::new(&mut hash), NoSource)
            .unwrap();
    a.add(Addr(1000), Size(500)).unwrap();
    // [1000,1100) free 100, [1100,1200) alloc, [1200,1500) free 300.
    let x = a.xalloc(&vmspace::arena::Constraints::new(Size(100)).exact(Addr(1100))).unwrap();
    assert_eq!(x, Addr(1100));
    assert_eq!(a.largest_free(), Size(300));
    assert_eq!(a.fragmentation(), 250);
}

/// `free_histogram` docs: "The number of free segments with size in
/// [2^k, 2^(k+1)), for each k".
#[test]
fn free_histogram_counts_by_power_of_two() {
    let mut tags = [0u8; 16384];
    let mut hash = [0u8; 4096];
    let mut a =
        Arena::new("h", Size(1), SliceStore::new(&mut tags), SliceStore::new(&mut hash), NoSource)
            .unwrap();
    a.add(Addr(0), Size(5)).unwrap();
    a.add(Addr(100), Size(6)).unwrap();
    a.add(Addr(200), Size(7)).unwrap();
    let h = a.free_histogram();
    assert_eq!(h[2], 3);
    assert_eq!(h.iter().sum::<usize>(), 3);
}

/// README, "The VM arena": "64 GiB reserved with nothing allocated maps one
/// 4 KiB page of metadata."
#[test]
fn vmarena_64g_idle_maps_one_page_of_metadata() {
    if page() != 4096 {
        return;
    }
    let arena = VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(64 << 30))).unwrap();
    assert_eq!(arena.metadata_mapped(), Size(4096));
}

/// README sample: `.zone_shift(20) // 64 zones of 1 MiB stripes` (the module
/// docs: "64 zones repeat every 2^zone_shift * 64").
#[test]
fn vmarena_zones_repeat_every_64_stripes() {
    let arena =
        VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(256 << 20)).zone_shift(20))
            .unwrap();
    let b = arena.base();
    let z0 = arena.zone_of(b);
    assert_eq!(arena.zone_of(Addr(b.0 + (64 << 20))), z0);
    assert_eq!(arena.zone_of(Addr(b.0 + (1 << 20))), (z0 + 1) % 64);
}

/// README, "The chunk map": "default 2^47 bytes in 4 MiB chunks".
#[test]
fn chunkmap_default_is_2_47_in_4m_chunks() {
    let d = ChunkMapConfig::default();
    assert_eq!(d, ChunkMapConfig::new(Size(1 << 47), Size(4 << 20)));
}

/// README, quantum caches: "a size other than the one allocated (even in the
/// same class) ... is `BadFree`", and `qcache_stats()` reports "refused
/// frees" (`QCacheStats::bad_frees`: "Frees of a cached object refused: not
/// live (a double free) or live with another size"). Set up as the README's
/// sample does, through `CpuCaches`.
#[test]
fn qcache_free_of_another_size_in_the_class_is_badfree_and_counted() {
    let be = MmapBackend::new();
    let mut ids = Arena::on_pages("ids", Size(16), be, 1 << 12, NoSource).unwrap();
    ids.add(Addr(1 << 40), Size(1 << 24)).unwrap();
    let slabs = PageStore::new(be, Size(table_store_bytes(8))).unwrap();
    let shared = UserArena::with_quantum_caches(ids, QCacheConfig::new(8, slabs)).unwrap();
    let pin = RseqPin::new();
    let bytes = magazine_store_bytes(8, pin.slots()).unwrap();
    let caches = CpuCaches::new(&shared, pin, PageStore::new(be, Size(bytes)).unwrap()).unwrap();
    let a = caches.alloc(Size(48)).unwrap();
    let r = caches.free(a, Size(40)); // 40 rounds to 3 quanta as 48 does
    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
    caches.free(a, Size(48)).unwrap();
    let r = caches.free(a, Size(48)); // double free
    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
    let r = shared.free(a, Size(48)); // double free through the arena
    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
    drop(caches);
    assert_eq!(shared.qcache_stats().bad_frees, 3, "{:?}", shared.qcache_stats());
}

/// README: "With quantum caches (`SyncArena::with_quantum_caches` ...), sizes
/// of 1 to `classes` quanta come from slabs of 64 objects". Through the
/// shared arena's own `alloc` they do not (only through a `CacheHandle` or
/// `CpuCaches`). Records what the code does; see the report.
#[test]
fn sync_arena_alloc_of_a_small_size_takes_no_slab() {
    let be = MmapBackend::new();
    let mut ids = Arena::on_pages("ids", Size(16), be, 1 << 12, NoSource).unwrap();
    ids.add(Addr(1 << 40), Size(1 << 24)).unwrap();
    let slabs = PageStore::new(be, Size(table_store_bytes(8))).unwrap();
    let shared = UserArena::with_quantum_caches(ids, QCacheConfig::new(8, slabs)).unwrap();
    let a = shared.alloc(Size(48), Policy::InstantFit, Wait::No).unwrap();
    assert_eq!(shared.qcache_stats().slabs, 0);
    shared.free(a, Size(48)).unwrap();
}

/// README, "The mmap backend": under `Decommit` "VMAs stay exactly one a run
/// and one a gap (2 x runs + 1 when no run touches either end of the
/// reservation)".
#[test]
fn decommit_vmas_are_two_per_run_plus_one() {
    let p = page();
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let mut vm = Vm::reserve(be, Size(4096 * p), Size(p)).unwrap();
    let base = vm.base().0;
    // Runs touched apart, then joined, then split again.
    let pages = [10usize, 12, 11, 40, 41, 43, 42, 100, 200, 201];
    for &i in &pages {
        let r = Range::from_size(Addr(base + i * p), Size(p)).unwrap();
        vm.map(r).unwrap();
        // SAFETY: just mapped read-write.
        unsafe { (r.base().0 as *mut u8).write(1) };
    }
    let r = Range::from_size(Addr(base + 41 * p), Size(p)).unwrap();
    vm.unmap(r).unwrap();
    let runs = vm.mapped_runs().count();
    let vmas = procfs::vmas_in(vm.range()).unwrap().len();
    assert_eq!(vmas, 2 * runs + 1, "{runs} runs");
}

/// README, VmSource sample: the walk of unflushed segments after a release.
#[test]
fn readme_segment_kinds_exist() {
    let _ = SegmentKinds::UNFLUSHED;
}
