//! Tract allocation and free in a VM arena, with and without zone
//! preferences.
//!
//! A 1 GiB arena on mmap with a large spare bound, so that after warm-up
//! allocate+free reuses spare pages and makes no system call: the figures
//! are the arena's own work (placement, tables, descriptors). 2048
//! single-page holes are left below the free space, so first fit walks
//! past a fragmented prefix as a busy arena's would. A neighbouring
//! allocation keeps the page-table page in use; `table_churn` leaves it
//! out, so each allocation maps and each free unmaps table pages.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;
use vmspace::vmarena::Owner;
use vmspace::Pages;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vmspace::vmarena::{Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace_shim::Size;
use vmspace_user::MmapBackend;

fn alloc_free(c: &mut Criterion) {
    let config = VmArenaConfig::new(Size(1 << 30)).zone_shift(20).spare_limit(1 << 16);
    let mut arena = VmArena::new(MmapBackend::new(), config).unwrap();
    // A fragmented prefix: 4096 pages with every other one allocated.
    let pins: Vec<_> =
        (0..4096).map(|_| arena.alloc(&Request::new(Pages(1), Owner(1))).unwrap()).collect();
    for g in pins.iter().step_by(2) {
        arena.free(g.range, Owner(1)).unwrap();
    }
    let zone = arena.zone_of(arena.base());
    let cases = [
        ("anywhere", ZoneSet::ALL, ZoneSet::EMPTY),
        ("prefer_one_zone", ZoneSet::single(zone + 20), ZoneSet::EMPTY),
        ("avoid_half", ZoneSet::ALL, ZoneSet(0x5555_5555_5555_5555)),
    ];
    let mut g = c.benchmark_group("vmarena_alloc_free");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for pages in [1usize, 8] {
        for (name, prefer, avoid) in cases {
            let req = Request::new(Pages(pages), Owner(2)).prefer(prefer).avoid(avoid);
            // A neighbour that keeps the page-table page of the benchmarked
            // allocations in use, so they measure the arena's own work.
            let neighbour = arena.alloc(&req).unwrap();
            g.bench_with_input(BenchmarkId::new(name, pages), &req, |b, req| {
                b.iter(|| {
                    let grant = arena.alloc(black_box(req)).unwrap();
                    arena.free(grant.range, Owner(2)).unwrap();
                })
            });
            arena.free(neighbour.range, Owner(2)).unwrap();
        }
    }
    // Without a neighbour: every allocation maps a page-table page and an
    // allocation-table page and every free unmaps them again (no
    // hysteresis): the cost of that policy, system calls included.
    let req = Request::new(Pages(8), Owner(2)).prefer(ZoneSet::single(zone + 40));
    g.bench_function("table_churn/8", |b| {
        b.iter(|| {
            let grant = arena.alloc(black_box(&req)).unwrap();
            arena.free(grant.range, Owner(2)).unwrap();
        })
    });
    g.finish();
    arena.check().unwrap();
}

criterion_group!(benches, alloc_free);
criterion_main!(benches);
