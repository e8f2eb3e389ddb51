//! Fuzz `KeepFree` (an import quantum, spans given back kept for the next
//! imports of their size) between an arena and a parent arena: the input's
//! first byte picks the arena's quantum, the import quantum and how often
//! the kept spans are trimmed; the rest decodes into `ArenaOp`s applied to
//! the arena and to the reference model by `ArenaDriver` (outcomes, sizes,
//! counters and `check()` after every step). After each step the adapter
//! and the parent check too, and the books join: every span the arena
//! imported and every span kept is one live allocation of the parent, none
//! overlapping another, and the parent holds nothing else.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vmspace::arena::{Arena, Counters, NoSource, SegmentKinds};
use vmspace::sources::{KeepCounts, KeepFree};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Size};
use vmspace_workload::arena_ops::{ArenaDriver, ArenaOp, ArenaOpConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut ops)) = data.split_first() else { return };
    let q = [1usize, 16, 4096][head as usize % 3];
    let import = [4096usize, 4 * 4096, 64 * 4096][(head as usize / 3) % 3];
    let trim_every = [0usize, 1, 7, 64][(head as usize >> 4) % 4];
    let cfg = ArenaOpConfig::new(1 << 40, 1024 * q, q);
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut p = Arena::on_pages("parent", Size(4096), &sim, 1024, NoSource).unwrap();
    p.add(Addr(1 << 44), Size(1 << 24)).unwrap();
    let parent = RefCell::new(p);
    let keep = KeepFree::<_, 3>::new(&parent, Size(import));
    let mut a = Arena::on_pages("fuzz", Size(q), &sim, 4096, keep).unwrap();
    let mut driver = ArenaDriver::<256, 32>::new();
    let mut step = 0;
    while let Some(op) = ArenaOp::decode(&mut ops, &cfg) {
        driver.step(&mut a, &op).unwrap_or_else(|e| panic!("{e}"));
        step += 1;
        if trim_every != 0 && step % trim_every == 0 {
            a.source_mut().trim();
        }
        a.source().check().unwrap_or_else(|e| panic!("keep: {e}"));
        let p = parent.borrow();
        p.check().unwrap_or_else(|e| panic!("parent: {e}"));
        let kept = a.source().kept();
        let spans: Vec<_> =
            a.walk(SegmentKinds::SPANS).filter(|s| s.imported).map(|s| s.range).collect();
        for r in spans.iter().chain(kept) {
            assert_eq!(p.lookup(r.base()).map(|l| l.0), Some(*r), "{r} not one parent allocation");
        }
        for k in kept {
            assert!(!spans.iter().any(|r| r.overlaps(k)), "kept {k} is the arena's too");
        }
        let held = a.sizes().imported.0 + a.source().kept_size().0;
        assert_eq!(p.sizes().allocated.0, held, "the parent holds what is imported or kept");
        check_counts(&a.counters(), &p.counters(), &a.source().counts(), kept.len());
    }
});

/// The adapter's counts against the two arenas' counters (the parent is
/// honest and nothing is injected, so no give-back fails and no import is
/// given straight back): every import from the parent is one parent
/// allocation and every span released one parent free; the arena's imports
/// were served from below or from a kept span; and every span the arena gave
/// back was released at once or kept, and every kept span was reused,
/// released later (a trim) or is kept still, so the arena's give-backs are
/// the releases, the reuses and the spans kept now.
fn check_counts(arena: &Counters, parent: &Counters, keep: &KeepCounts, kept_now: usize) {
    let books = || format!("arena {arena:?}, parent {parent:?}, keep {keep:?}, {kept_now} kept");
    assert_eq!(keep.release_failures, 0, "a give-back failed: {}", books());
    assert_eq!(arena.export_failures, 0, "a give-back failed: {}", books());
    assert_eq!(parent.allocs, keep.imported, "imports from below: {}", books());
    assert_eq!(parent.frees, keep.released, "releases below: {}", books());
    assert_eq!(arena.imports, keep.imported + keep.reused, "imports: {}", books());
    assert_eq!(
        arena.exports,
        keep.released + keep.reused + kept_now as u64,
        "give-backs: {}",
        books()
    );
}
