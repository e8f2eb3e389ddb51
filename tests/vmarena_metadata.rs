//! Metadata overhead of a VM arena: 64 GiB reserved and nothing allocated
//! maps under 64 KiB of metadata, and what it maps grows in proportion to
//! what is allocated and goes back when it is freed.
//!
//! Where a run's descriptors and bits fall depends on where the
//! reservation lands (alignment is absolute, and mmap places the
//! reservation where it likes), so the expected counts are derived from
//! the arena's geometry for whatever placement this run got; the
//! simulated backend then places the runs on purpose so that every case
//! (no straddle, a straddled page-table page, straddled table pages of
//! every kind) is exercised on every run.

use std::collections::BTreeSet;

use vmspace::vmarena::Owner;
use vmspace::vmarena::{Grant, Request, VmArena, VmArenaConfig};
use vmspace::Pages;
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{PageOps, Size};
use vmspace_user::MmapBackend;

/// Bytes of one page-table descriptor.
const DESCRIPTOR: usize = 8;

/// What one spread of runs showed.
#[derive(Debug, Default)]
struct Spread {
    /// The first run's tract index within the arena.
    first_run: usize,
    /// Whether each run straddled two page-table pages.
    straddles_table: bool,
    /// Whether each run straddled two allocation-table pages (and so two
    /// pages of the VM's mapped-state table).
    straddles_bits: bool,
    /// Pages of metadata mapped with every run allocated, past the idle ones.
    grown: usize,
}

/// Allocate `count` runs of `run` pages, `stride` pages apart (absolute
/// alignment), in an arena of `size` bytes over `ops`; check that the
/// metadata mapped is exactly what the geometry says after each one, that
/// it stays proportional, and that it all goes back with the frees.
fn spread_runs<P: PageOps>(ops: P, size: Size, run: usize, stride: usize, count: usize) -> Spread {
    let page = ops.page_size().0;
    let mut arena = VmArena::new(ops, VmArenaConfig::new(size)).unwrap();
    let idle = arena.metadata_mapped();
    arena.check().unwrap();

    // The geometry: tracts, then the page table, then the allocation
    // table, all in the VM's client pages; the VM keeps one mapped bit per
    // client page, `8 * page` bits to a page of its own table.
    let tracts = size.0 / page;
    let per_table_page = page / DESCRIPTOR;
    let per_bit_page = page * 8;
    let table_pages_total = tracts.div_ceil(per_table_page);
    let pages_of = |lo: usize, n: usize, per: usize| lo / per..=(lo + n - 1) / per;

    let base = arena.base().0;
    let mut grants: Vec<Grant> = Vec::new();
    let mut table = BTreeSet::new();
    let mut bits = BTreeSet::new();
    let mut vm_table = BTreeSet::new();
    let mut spread = Spread::default();
    let mut last = idle;
    for i in 0..count {
        let g = arena.alloc(&Request::new(Pages(run), Owner(1)).align(Pages(stride))).unwrap();
        let first = (g.range.base().0 - base) / page;
        if i == 0 {
            spread.first_run = first;
            spread.straddles_table = pages_of(first, run, per_table_page).count() == 2;
            spread.straddles_bits = pages_of(first, run, per_bit_page).count() == 2;
        } else {
            assert_eq!(first, spread.first_run + i * stride, "runs are a stride apart");
        }
        grants.push(g);
        table.extend(pages_of(first, run, per_table_page));
        bits.extend(pages_of(first, run, per_bit_page));
        // The VM's table covers the run's tracts and every arena table page
        // now mapped (their VM page indices follow the tracts).
        vm_table.extend(pages_of(first, run, per_bit_page));
        vm_table.extend(table.iter().map(|k| (tracts + k) / per_bit_page));
        vm_table.extend(bits.iter().map(|j| (tracts + table_pages_total + j) / per_bit_page));

        assert_eq!(arena.table_pages_mapped(), table.len(), "page-table pages after run {i}");
        assert_eq!(arena.bit_pages_mapped(), bits.len(), "allocation-table pages after run {i}");
        let now = arena.metadata_mapped();
        let expected = (table.len() + bits.len() + vm_table.len()) * page;
        assert_eq!(now.0 - idle.0, expected, "metadata after run {i}");
        assert!(now > last, "metadata grows with allocation");
        last = now;
        arena.check().unwrap();
    }
    spread.grown = (last.0 - idle.0) / page;

    for g in grants {
        arena.free(g.range, Owner(1)).unwrap();
        arena.check().unwrap();
    }
    assert_eq!(arena.table_pages_mapped(), 0);
    assert_eq!(arena.bit_pages_mapped(), 0);
    assert_eq!(arena.committed(), Size(0));
    assert_eq!(arena.metadata_mapped(), idle, "metadata goes back with the frees");
    spread
}

#[test]
fn sixty_four_gib_idle_maps_under_64_kib() {
    let ops = MmapBackend::new();
    let page = ops.page_size().0;
    let arena = VmArena::new(ops, VmArenaConfig::new(Size(64 << 30))).unwrap();
    let idle = arena.metadata_mapped();
    assert!(idle < Size(64 << 10), "idle metadata {idle}");
    // Just the VM's summary of its own mapped-state table.
    assert_eq!(idle, Size(page));
    drop(arena);

    // 1 MiB runs spread over the whole space, 1 GiB apart: each needs its
    // own table pages, so metadata grows with every allocation. Per 1 MiB
    // (256 descriptors of 8 bytes, half a page), two to six pages: far
    // below 3% of what is allocated, whatever the placement.
    let spread =
        spread_runs(MmapBackend::new(), Size(64 << 30), (1 << 20) / page, (1 << 30) / page, 16);
    eprintln!("mmap placement: {spread:?}");
    // Per run one or two pages of each table (two where it straddles a
    // boundary); the 16 page-table pages span 8192 VM pages and the 16
    // allocation-table pages 128, so at most two VM-table pages each.
    assert!(spread.grown <= 6 * 16 + 4, "{spread:?}");
    assert!(spread.grown >= 3 * 16, "{spread:?}");
}

/// The simulated backend places its region where its buffer is, so the
/// runs land on chosen tract indices: aligned to every table page, across
/// a page-table page boundary only, and across every table's boundary.
#[test]
fn every_straddle_case_on_the_simulated_backend() {
    const PAGE: usize = 64;
    // The same shape as the 64 GiB case, scaled to 64-byte pages: a run is
    // half a page-table page (4 descriptors of 8 bytes); an allocation-table
    // page holds 512 bits.
    const RUN: usize = 4;
    const STRIDE: usize = 1024;
    const COUNT: usize = 16;
    let size = Size((COUNT + 1) * STRIDE * PAGE);
    let len = 2 * size.0;
    let at = |offset: usize| {
        let mut buf = Placed::new(len, offset);
        spread_runs(SimBackend::new(buf.bytes(), PAGE).unwrap(), size, RUN, STRIDE, COUNT)
    };
    // Moving the buffer up by `d` pages moves the region up by `d` pages,
    // and so the first aligned run `d` tracts nearer the arena's start.
    let r0 = at(0).first_run;
    for (target, table, bits) in [(0, false, false), (6, true, false), (510, true, true)] {
        let d = (r0 + STRIDE - target) % STRIDE;
        let spread = at(d * PAGE);
        let got = (spread.first_run, spread.straddles_table, spread.straddles_bits);
        assert_eq!(got, (target, table, bits), "buffer moved by {d} pages");
        // Three pages a run, six where it straddles every table; the 16
        // page-table pages span 2048 VM pages (at most five VM-table pages)
        // and the allocation-table pages 32 (at most two).
        let per_run = if bits {
            6
        } else if table {
            4
        } else {
            3
        };
        assert!((per_run * COUNT + 1..=per_run * COUNT + 7).contains(&spread.grown), "{spread:?}");
    }
}

/// Spare pages decommitted by a purge, or by a free past the spare bound,
/// take the VM's record of them with them: an arena with nothing allocated
/// is back to its idle page, whichever way its pages went. (Purges left
/// one empty page of the VM's table mapped per 128 MiB they touched; found
/// by a test written outside the project.)
#[test]
fn decommitted_pages_take_their_metadata_with_them() {
    for limit in [0, 8, 1 << 20] {
        let ops = MmapBackend::new();
        let cfg = VmArenaConfig::new(Size(64 << 30)).spare_limit(limit);
        let mut a = VmArena::new(ops, cfg).unwrap();
        let idle = a.metadata_mapped();
        // Runs far apart, so they need VM-table pages of their own.
        let runs: Vec<Grant> = (0..4)
            .map(|i| a.alloc(&Request::new(Pages(16 + i), Owner(1)).align(Pages(1 << 18))).unwrap())
            .collect();
        for g in runs {
            a.free(g.range, Owner(1)).unwrap();
        }
        a.purge_spare().unwrap();
        a.check().unwrap();
        assert_eq!((a.allocated(), a.spare(), a.committed()), (Size(0), Size(0), Size(0)));
        assert_eq!(a.metadata_mapped(), idle, "spare limit {limit}");
    }
}

/// A failed allocation leaves every count as it was, also after a purge
/// (whose VM-table page the allocation's rollback used to trim: the
/// metadata count then moved by a page), failed at each backend call in
/// turn.
#[test]
fn a_failed_alloc_after_a_purge_changes_no_count() {
    const PAGE: usize = 4096;
    let tracts = 70_000;
    let mut buf = vec![0u8; (tracts + 300) * PAGE + (2 << 20)];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faults = vmspace_shim::FaultInjector::new(&sim);
    let mut a =
        VmArena::new(&faults, VmArenaConfig::new(Size(tracts * PAGE)).spare_limit(8)).unwrap();
    let _first = a.alloc(&Request::new(Pages(32_768), Owner(1))).unwrap();
    let mut failed = 0;
    for n in 1.. {
        // One tract past the first 128 MiB (a VM-table page of its own),
        // freed into the spare pages and purged.
        let b = a.alloc(&Request::new(Pages(1), Owner(2))).unwrap();
        a.free(b.range, Owner(2)).unwrap();
        assert_eq!(a.purge_spare().unwrap(), 1);
        let counts = |a: &VmArena<_>| {
            (a.metadata_mapped(), a.vm().metadata_mapped(), a.committed(), a.allocated())
        };
        let before = counts(&a);
        faults.fail_nth(n);
        let r = a.alloc(&Request::new(Pages(1), Owner(3)));
        faults.fail_nth(0);
        a.check().unwrap();
        match r {
            Err(_) => {
                failed += 1;
                assert_eq!(counts(&a), before, "failed at call {n}");
            }
            Ok(g) => {
                a.free(g.range, Owner(3)).unwrap();
                break;
            }
        }
    }
    assert!(failed >= 2, "only {failed} calls to fail");
}
