//! The chunk map after protects and unmaps that fail, part way or
//! cleanly, in any combination: in the call that failed, in putting the
//! old protection back, in retrying, and in undoing the runs before it.
//!
//! Linux's `mprotect` can change part of a range and then fail (when a
//! split would pass `vm.max_map_count`), and so can an unmap made of
//! `madvise` and `mprotect(PROT_NONE)`, so after two failures the pages
//! of a run may hold either protection. The contract checked here: after
//! every operation `check()` passes and no chunk is recorded more open
//! than its pages are (mapped means every page read-write); `Backend`
//! means every chunk has its old state and the backend agrees exactly;
//! only `RollbackFailed` may leave a chunk recorded protected over
//! read-write pages, and a later `unprotect` recovers from it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

mod scripted;
use scripted::{Fail, Scripted, PAGE};

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, Size};

const CHUNK: usize = 4 * PAGE;
/// Chunks the operations cover.
const SPAN: usize = 8;
/// Protect and unmap calls that may be failed (numbered together from 1
/// in each operation).
const CALLS: u32 = 6;

/// The layout every scenario starts from: runs of each protect direction
/// for both operations, and an unmapped chunk for `ensure_mapped`.
const START: [ChunkState; SPAN] = {
    use ChunkState::*;
    [Protected, Protected, Mapped, Protected, Unmapped, Mapped, Mapped, Protected]
};

fn chunk(m: &ChunkMap<impl PageOps>, first: usize, n: usize) -> Range {
    Range::from_size(Addr(m.space().base().0 + first * CHUNK), Size(n * CHUNK)).unwrap()
}

fn states(m: &ChunkMap<impl PageOps>) -> Vec<ChunkState> {
    (0..SPAN).map(|c| m.state(chunk(m, c, 1).base()).unwrap()).collect()
}

fn pages(m: &ChunkMap<impl PageOps>, sim: &SimBackend<'_>, c: usize) -> Vec<PageState> {
    let base = chunk(m, c, 1).base().0;
    (0..CHUNK / PAGE).map(|p| sim.page_state(Addr(base + p * PAGE)).unwrap()).collect()
}

/// Whether chunk `c`'s pages hold exactly what its state says.
fn exact(m: &ChunkMap<impl PageOps>, sim: &SimBackend<'_>, c: usize) -> bool {
    let want = match states(m)[c] {
        ChunkState::Unmapped | ChunkState::Quarantined => PageState::Reserved,
        ChunkState::Mapped => PageState::Mapped(Protection::ReadWrite),
        ChunkState::Protected => PageState::Mapped(Protection::None),
    };
    pages(m, sim, c).iter().all(|&p| p == want)
}

/// Every failure script over the first `CALLS` protect calls: each call
/// succeeds, fails cleanly or fails part way.
fn scripts() -> impl Iterator<Item = HashMap<u32, Fail>> {
    (0..3u32.pow(CALLS)).map(|mut k| {
        let mut s = HashMap::new();
        for call in 1..=CALLS {
            match k % 3 {
                1 => drop(s.insert(call, Fail::Clean)),
                2 => drop(s.insert(call, Fail::Partial)),
                _ => {}
            }
            k /= 3;
        }
        s
    })
}

#[derive(Default, Debug)]
struct Seen {
    backend: usize,
    rollback: usize,
    /// `RollbackFailed` with a chunk recorded protected over pages that are
    /// not all `PROT_NONE`.
    rollback_mixed: usize,
}

fn scenario(op: usize, script: HashMap<u32, Fail>, seen: &mut Seen) {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let m = ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * CHUNK), Size(CHUNK))).unwrap();
    for (c, s) in START.iter().enumerate() {
        match s {
            ChunkState::Mapped => m.ensure_mapped(chunk(&m, c, 1)).unwrap(),
            ChunkState::Protected => {
                m.ensure_mapped(chunk(&m, c, 1)).unwrap();
                m.protect(chunk(&m, c, 1)).unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(states(&m), START);
    let what = format!("op {op} script {script:?}");
    ops.arm_script(script.clone());
    let mut m = m;
    let r = match op {
        0 => m.protect(chunk(&m, 0, 4)).and_then(|()| m.protect(chunk(&m, 5, 3))),
        1 => m.unprotect(chunk(&m, 0, 4)).and_then(|()| m.unprotect(chunk(&m, 5, 3))),
        2 => m.ensure_mapped(chunk(&m, 0, SPAN)),
        _ => m.unmap(chunk(&m, 0, SPAN)),
    };
    let failed_calls = script.keys().filter(|&&n| n <= ops.changes.load(Ordering::SeqCst)).count();
    ops.disarm();
    m.check().unwrap_or_else(|e| panic!("{what}: check: {e}"));
    let now = states(&m);
    for (c, &state) in now.iter().enumerate() {
        let p = pages(&m, &sim, c);
        if state == ChunkState::Mapped {
            assert!(
                p.iter().all(|&p| p == PageState::Mapped(Protection::ReadWrite)),
                "{what}: {r:?}: chunk {c} recorded mapped over {p:?}"
            );
        }
        if state == ChunkState::Protected {
            assert!(p.iter().all(|p| matches!(p, PageState::Mapped(_))), "{what}: chunk {c}");
        }
    }
    let all_exact = (0..SPAN).all(|c| exact(&m, &sim, c));
    match r {
        Ok(()) => {
            assert!(all_exact, "{what}: succeeded, the backend disagrees");
            if op == 3 {
                assert!(now.iter().all(|&s| s == ChunkState::Unmapped), "{what}: {now:?}");
            }
        }
        Err(ChunkMapError::Backend { .. }) => {
            seen.backend += 1;
            // The protect and unprotect ops are two calls: a failure in the
            // second keeps the first's effect.
            let first_done = op < 2 && now[..4] != START[..4];
            if !first_done {
                assert_eq!(now, START, "{what}: Backend changed a state");
            }
            assert!(all_exact, "{what}: Backend, but the backend disagrees with a state");
        }
        Err(ChunkMapError::RollbackFailed { .. }) => {
            seen.rollback += 1;
            assert!(failed_calls >= 2, "{what}: RollbackFailed from one failure");
            if !all_exact {
                seen.rollback_mixed += 1;
            }
        }
        Err(e) => panic!("{what}: unexpected {e}"),
    }
    // Recovery: an unprotect of everything committed makes it all exact.
    for (c, &state) in now.iter().enumerate() {
        if state == ChunkState::Protected {
            m.unprotect(chunk(&m, c, 1)).unwrap();
        }
    }
    m.check().unwrap();
    assert!((0..SPAN).all(|c| exact(&m, &sim, c)), "{what}: after recovery");
}

#[test]
fn every_script_of_failing_protects_and_unmaps_leaves_states_never_more_open() {
    for op in 0..4 {
        let mut seen = Seen::default();
        for script in scripts() {
            scenario(op, script, &mut seen);
        }
        // The scripts reach every outcome, or the test proves nothing.
        assert!(seen.backend > 0 && seen.rollback > 0, "op {op}: {seen:?}");
        if op != 2 {
            assert!(seen.rollback_mixed > 0, "op {op}: {seen:?}");
        }
    }
}

/// A backend that refuses every protect before doing anything (the kernel
/// module's committed memory cannot change protection): a protect or an
/// unprotect fails with `Backend` and changes no chunk, with no put-back
/// recorded as protected.
#[test]
fn a_backend_that_refuses_protect_changes_nothing() {
    for op in 0..2 {
        let mut buf = vec![0u8; 1 << 17];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let ops = Scripted::new(&sim);
        let m = ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * CHUNK), Size(CHUNK))).unwrap();
        m.ensure_mapped(chunk(&m, 0, SPAN)).unwrap();
        if op == 1 {
            m.protect(chunk(&m, 0, 4)).unwrap();
        }
        let before = states(&m);
        ops.arm_script((1..=8).map(|n| (n, Fail::Refused)).collect());
        let r = if op == 0 { m.protect(chunk(&m, 0, 4)) } else { m.unprotect(chunk(&m, 0, 4)) };
        let calls = ops.changes.load(Ordering::SeqCst);
        ops.disarm();
        assert!(matches!(r, Err(ChunkMapError::Backend { op: Op::Protect, .. })), "{r:?}");
        assert_eq!(states(&m), before);
        assert_eq!(calls, 1, "one call, no put-back");
        m.check().unwrap();
    }
}
