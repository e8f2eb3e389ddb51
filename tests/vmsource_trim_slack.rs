//! `VmSource`'s trim slack: a give-back that leaves more of the VM's
//! bookkeeping (bit-table) pages recording nothing than the slack allows
//! gives back the empty ones of its range, so no more than the slack stays
//! mapped for nothing; within the slack a lone import's page stays (no
//! map and unmap of it with every pair). Both give-back paths (unbatched
//! and batched), the slack's two ends (0 and `usize::MAX`), and a trim whose
//! unmap fails (the give-back stands; the page waits for the next one).

use vmspace::arena::{SliceStore, Source};
use vmspace::sources::{VmSource, DEFAULT_TRIM_SLACK};
use vmspace::vm::Vm;
use vmspace::{Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op, PageOps};
use vmspace_workload::Rng;

const PAGE: usize = 64;
/// Client pages one bit-table page records (8 bits a byte).
const PER_TABLE_PAGE: usize = 8 * PAGE;
/// Bit-table pages of the VM.
const TABLE_PAGES: usize = 48;

/// A source over a VM of `TABLE_PAGES` bit-table pages on `ops`, batching
/// `batch` pages (0: unbatched), over tag and hash stores in `t` and `h`.
fn source<'a, P: PageOps>(
    ops: P,
    batch: usize,
    t: &'a mut [u8],
    h: &'a mut [u8],
) -> VmSource<P, SliceStore<'a>> {
    let vm = Vm::reserve(ops, Size(TABLE_PAGES * PER_TABLE_PAGE * PAGE), Size(PAGE)).unwrap();
    let mut src = VmSource::new(vm, SliceStore::new(t), SliceStore::new(h))
        .unwrap_or_else(|_| panic!("source"));
    src.set_flush_threshold(batch).unwrap();
    src
}

fn trimmable_pages<P: PageOps, S: vmspace::arena::Store>(src: &VmSource<P, S>) -> usize {
    src.vm().metadata_trimmable().0 / PAGE
}

#[test]
fn the_slack_bounds_what_records_nothing_after_every_give_back() {
    for batch in [0, 5] {
        for slack in [None, Some(0), Some(3)] {
            let mut buf = vec![0u8; 8 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
            let mut src = source(&sim, batch, &mut t, &mut h);
            assert_eq!(src.trim_slack(), DEFAULT_TRIM_SLACK);
            if let Some(s) = slack {
                src.set_trim_slack(s);
            }
            let allowed = src.trim_slack();
            let floor = src.vm().metadata_mapped();
            // Imports of 1..700 pages until the VM is nearly full: most
            // bit-table pages record one; then give them back in a random
            // order, and some again.
            let mut rng = Rng::new(0x51ac + batch as u64);
            let mut live: Vec<Range> = Vec::new();
            while let Ok(r) = src.import(Size(rng.between(1, 700) * PAGE), Size(PAGE)) {
                live.push(r);
            }
            assert!(src.vm().metadata_mapped().0 >= floor.0 + (TABLE_PAGES - 2) * PAGE);
            let mut most_unused = 0;
            while !live.is_empty() {
                let r = live.swap_remove(rng.below(live.len()));
                src.release(r).unwrap();
                src.check().unwrap();
                let unused = trimmable_pages(&src);
                most_unused = most_unused.max(unused);
                assert!(
                    unused <= allowed,
                    "batch {batch}, slack {allowed}: {unused} bookkeeping pages record nothing"
                );
                if rng.chance(300) {
                    if let Ok(again) = src.import(Size(rng.between(1, 40) * PAGE), Size(PAGE)) {
                        live.push(again);
                    }
                }
            }
            // The slack was used, not only honoured (a source that trimmed
            // everything at once would pass the bound above too).
            assert_eq!(most_unused, allowed, "batch {batch}, slack {allowed}");
            let left = trimmable_pages(&src);
            assert_eq!(src.vm().metadata_mapped().0, floor.0 + left * PAGE);
            assert_eq!(src.trim(), Ok(left));
            assert_eq!(src.vm().metadata_mapped(), floor);
        }
    }
}

/// Within the slack a pair of one import and its give-back maps and
/// unmaps its one range and nothing else, the bookkeeping page staying;
/// with no slack the page comes and goes with the pair.
#[test]
fn a_lone_pair_leaves_its_bookkeeping_page_within_the_slack() {
    for (slack, table_calls) in [(1, 0), (0, 1)] {
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
        let mut src = source(&sim, 0, &mut t, &mut h);
        src.set_trim_slack(slack);
        let floor = src.vm().metadata_mapped();
        let r = src.import(Size(3 * PAGE), Size(PAGE)).unwrap();
        src.release(r).unwrap();
        let before = (sim.stats().calls_of(Op::Map), sim.stats().calls_of(Op::Unmap));
        for _ in 0..10 {
            let r = src.import(Size(3 * PAGE), Size(PAGE)).unwrap();
            src.release(r).unwrap();
        }
        let after = (sim.stats().calls_of(Op::Map), sim.stats().calls_of(Op::Unmap));
        let per_pair = ((after.0 - before.0) / 10, (after.1 - before.1) / 10);
        assert_eq!(per_pair, (1 + table_calls, 1 + table_calls), "slack {slack}");
        let left = if slack == 0 { 0 } else { PAGE };
        assert_eq!(src.vm().metadata_mapped().0, floor.0 + left, "slack {slack}");
        src.check().unwrap();
    }
}

/// `usize::MAX`: never trimmed but by `trim` (the behaviour before the
/// slack), and a slack lowered below what records nothing trims nothing
/// itself, nor does a later give-back beyond its own range: `trim` does.
#[test]
fn an_endless_slack_never_trims_and_a_lowered_one_waits_for_a_give_back() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
    let mut src = source(&sim, 0, &mut t, &mut h);
    src.set_trim_slack(usize::MAX);
    assert_eq!(src.trim_slack(), usize::MAX);
    let big = src.import(Size(20 * PER_TABLE_PAGE * PAGE), Size(PAGE)).unwrap();
    let small = src.import(Size(PAGE), Size(PAGE)).unwrap();
    src.release(big).unwrap();
    assert_eq!(trimmable_pages(&src), 20);
    src.set_trim_slack(2);
    assert_eq!(trimmable_pages(&src), 20, "setting the slack trims nothing");
    // The small import's page is in the table page after the big one's:
    // its give-back trims only its own range's page.
    src.release(small).unwrap();
    assert_eq!(trimmable_pages(&src), 20);
    assert_eq!(src.trim(), Ok(20));
    src.check().unwrap();
}

/// A trim at a give-back whose unmap fails: the give-back stands, the page
/// stays mapped and recording nothing, the source checks, and a later
/// give-back in the same page (or `trim`) gives it back.
#[test]
fn a_failed_trim_at_a_give_back_leaves_the_give_back_done() {
    for batch in [0, 4] {
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
        let mut src = source(&faulty, batch, &mut t, &mut h);
        src.set_trim_slack(0);
        let floor = src.vm().metadata_mapped();
        let a = src.import(Size(PAGE), Size(PAGE)).unwrap();
        let b = src.import(Size(PAGE), Size(PAGE)).unwrap();
        src.release(a).unwrap();
        // b's give-back: its own unmap (deferred when batched: also an
        // `Unmap` to the injector) succeeds, the trim's unmap of the
        // bit-table page fails.
        faulty.only(&[Op::Unmap]);
        faulty.fail_nth(2);
        src.release(b).unwrap();
        faulty.clear();
        src.check().unwrap();
        assert_eq!(src.vm().mapped(), Size(0), "batch {batch}");
        assert_eq!(trimmable_pages(&src), 1, "batch {batch}: the page waits");
        let c = src.import(Size(PAGE), Size(PAGE)).unwrap();
        src.release(c).unwrap();
        assert_eq!(src.vm().metadata_mapped(), floor, "batch {batch}: the next give-back trims");
        src.check().unwrap();
        src.flush();
        let vm = src.into_vm().unwrap_or_else(|_| panic!("into_vm"));
        assert_eq!(vm.metadata_mapped(), floor);
    }
}
