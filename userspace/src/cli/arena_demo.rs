//! The arena part of the demo: a page arena importing from a VM, then an
//! arena shared by threads through quantum caches.

use vmspace::arena::{
    Arena, Constraints, NoSource, PageStore, Policy, SegmentKind, SegmentKinds, Store,
};
use vmspace::qcache::{table_store_bytes, QCacheConfig};
use vmspace::sources::VmSource;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::vm::Vm;
use vmspace::{Addr, Size};
use vmspace_shim::PageOps;
use vmspace_user::{MmapBackend, UserArena};
use vmspace_workload::Rng;

use crate::args::DemoArgs as Options;
use crate::out::outln;
use crate::sizes::{bins, histogram_line};
use crate::svg::Map;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Every allocated and free segment: start, end, allocated.
fn segments<S: Store>(a: &Arena<S, NoSource>) -> Vec<(usize, usize, bool)> {
    a.walk(SegmentKinds::FREE.union(SegmentKinds::ALLOCATED))
        .map(|s| (s.range.base().0, s.range.limit().0, s.kind == SegmentKind::Allocated))
        .collect()
}

/// Run the arena demos.
pub fn run(o: &Options) -> Result<(), String> {
    pages_from_a_vm(o)?;
    shared_with_quantum_caches(o)
}

fn pages_from_a_vm(o: &Options) -> Result<(), String> {
    let be = MmapBackend::new();
    let page = be.page_size();
    let mut vm = Vm::reserve(be, Size(1 << 30), Size(2 << 20)).map_err(err)?;
    outln!("\narena \"space\": the 1 GiB range of a VM, quantum {page}; allocations are mapped and touched");
    let mut space = Arena::on_pages("space", page, be, 1 << 16, NoSource).map_err(err)?;
    space.add(vm.base(), vm.range().size()).map_err(err)?;

    let mut rng = Rng::new(o.seed);
    let policies = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit];
    let mut live = Vec::new();
    for _ in 0..2000 {
        let size = Size(page.0 * rng.between(1, 64));
        let a = space.alloc(size, policies[rng.below(4)]).map_err(err)?;
        let r = vmspace::Range::from_size(a, size).map_err(err)?;
        vm.map(r).map_err(err)?;
        // SAFETY: the VM just mapped `r` read-write.
        unsafe { a.as_ptr::<u8>().write(1) };
        live.push((a, size));
    }
    let report = |space: &Arena<_, NoSource>, vm: &Vm<MmapBackend>, what: &str| {
        let s = space.sizes();
        outln!(
            "  {what:<34} allocated {:>10}  free {:>10}  VM mapped {:>10}",
            s.allocated.to_string(),
            s.free.to_string(),
            vm.mapped().to_string()
        );
    };
    report(&space, &vm, "2000 allocations of 1-64 pages");
    let peak = if o.svg.is_some() { segments(&space) } else { Vec::new() };
    let mut kept = Vec::new();
    for (i, (a, s)) in live.into_iter().enumerate() {
        if i % 2 == 1 {
            vm.unmap(vmspace::Range::from_size(a, s).map_err(err)?).map_err(err)?;
            space.free(a, s).map_err(err)?;
        } else {
            kept.push((a, s));
        }
    }
    report(&space, &vm, "every other one unmapped and freed");
    let bins = bins(&space.free_histogram());
    outln!("  free segments by size: {}", histogram_line(&bins));
    outln!(
        "  largest free {}, fragmentation {} per mille",
        space.largest_free(),
        space.fragmentation()
    );
    if let Some(path) = &o.svg {
        let maps = [
            Map { title: "after 2000 allocations".into(), segments: peak },
            Map { title: "after freeing every other one".into(), segments: segments(&space) },
        ];
        let title = "vmspace demo: arena \"space\" (1 GiB of a VM, quantum one page)";
        crate::svg::write(path, title, &maps, &bins)?;
        outln!("  picture: {}", crate::input::shown(path));
    }
    let (a, s) = kept[0];
    match space.free(a, Size(s.0 + page.0)) {
        Err(e) => outln!("  free with the wrong size (refused, nothing changed): {e}"),
        Ok(()) => return Err("a bad free succeeded".into()),
    }
    let c = Constraints::new(Size(64 << 10))
        .align(Size(1 << 20))
        .nocross(Size(2 << 20))
        .policy(Policy::BestFit);
    let x = space.xalloc(&c).map_err(err)?;
    outln!("  xalloc 64 KiB aligned to 1 MiB, not crossing 2 MiB: {x}");
    space.free(x, Size(64 << 10)).map_err(err)?;
    let h = space.alloc_handle(Size(3 * page.0), Policy::InstantFit).map_err(err)?;
    outln!(
        "  alloc_handle 3 pages: {} (tag {}; freed by handle, no address lookup)",
        h.addr(),
        h.tag()
    );
    let freed = space.free_handle(h).map_err(err)?;
    match space.free_handle(h) {
        Err(e) => outln!("  freed {freed}; the same handle again (refused): {e}"),
        Ok(_) => return Err("a stale handle was freed".into()),
    }
    for (a, s) in kept {
        vm.unmap(vmspace::Range::from_size(a, s).map_err(err)?).map_err(err)?;
        space.free(a, s).map_err(err)?;
    }
    report(&space, &vm, "all freed");
    let n = space.counters();
    outln!(
        "  counters: {} allocs, {} frees, {} bad frees, {} search steps",
        n.allocs,
        n.frees,
        n.bad_frees,
        n.search_steps
    );
    space.check().map_err(err)?;
    vm.check().map_err(err)?;

    outln!("\narena \"heap\": imports mapped pages from a VM source, gives wholly free spans back");
    let store = || PageStore::new(be, Size(1 << 20)).map_err(err);
    let source = VmSource::new(vm, store()?, store()?).map_err(err)?;
    let mut heap = Arena::on_pages("heap", Size(64), be, 1 << 12, source).map_err(err)?;
    let objs: Vec<_> = (0..16)
        .map(|i| {
            heap.alloc(Size(100 << 10 | i), Policy::InstantFit).map(|a| (a, Size(100 << 10 | i)))
        })
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let imported = |heap: &Arena<_, VmSource<_, _>>, what: &str| {
        outln!(
            "  {what:<34} allocated {:>10}  imported {:>10}  VM mapped {:>10}",
            heap.sizes().allocated.to_string(),
            heap.sizes().imported.to_string(),
            heap.source().vm().mapped().to_string()
        );
    };
    imported(&heap, "16 allocations of ~100 KiB");
    for (a, s) in objs {
        heap.free(a, s).map_err(err)?;
    }
    imported(&heap, "all freed");
    let n = heap.counters();
    outln!("  counters: {} imports, {} given back", n.imports, n.exports);
    heap.check().map_err(err)?;
    heap.source().check().map_err(err)
}

fn shared_with_quantum_caches(o: &Options) -> Result<(), String> {
    const THREADS: usize = 2;
    const OPS: usize = 100_000;
    let be = MmapBackend::new();
    let mut ids = Arena::on_pages("ids", Size(16), be, 1 << 16, NoSource).map_err(err)?;
    ids.add(Addr(1 << 40), Size(1 << 30)).map_err(err)?;
    let qc = PageStore::new(be, Size(table_store_bytes(8))).map_err(err)?;
    let shared = UserArena::with_quantum_caches(ids, QCacheConfig::new(8, qc)).map_err(err)?;
    outln!(
        "\narena \"ids\": quantum 16 units, shared by {THREADS} threads, quantum caches up to {}",
        shared.qcache_max().0
    );
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let shared = &shared;
            scope.spawn(move || -> Result<(), String> {
                let mut rng = Rng::new(o.seed ^ (t as u64 + 1));
                let mut cache = CacheHandle::new(shared);
                let mut live = Vec::new();
                for _ in 0..OPS {
                    if live.len() > 64 || (!live.is_empty() && rng.chance(400)) {
                        let (a, s) = live.swap_remove(rng.below(live.len()));
                        cache.free(a, s).map_err(err)?;
                    } else if rng.chance(900) {
                        let s = Size(16 * rng.between(1, 8));
                        live.push((cache.alloc(s).map_err(err)?, s));
                    } else {
                        let s = Size(rng.between(129, 4096));
                        live.push((shared.alloc(s, Policy::BestFit, Wait::No).map_err(err)?, s));
                    }
                }
                for (a, s) in live {
                    cache.free(a, s).map_err(err)?;
                }
                Ok(())
            });
        }
    });
    let q = shared.qcache_stats();
    outln!(
        "  {} operations: cache hits {}, misses {}, depot {} magazines, {} slabs ({} created)",
        THREADS * OPS,
        q.hits,
        q.misses,
        q.depot_magazines,
        q.slabs,
        q.slabs_created
    );
    let freed = shared.reclaim();
    let s = shared.with(|a| a.sizes());
    outln!("  reclaim gave back {freed} slabs: allocated {}, free {}", s.allocated, s.free);
    shared.check().map_err(err)
}
