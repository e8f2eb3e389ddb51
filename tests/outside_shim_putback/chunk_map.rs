//! The chunk map's put-back after unmaps and protects that fail part way.

use super::*;
use ChunkState::{Mapped as M, Protected as P, Unmapped as U};

/// Was a DEFECT, now fixed: `ChunkMap::unmap` whose backend unmap fails part way (the
/// trait allows it: "a failed protect or unmap of a system backend may
/// leave part of its range with the protection it asked for") returns
/// `Backend` and keeps the run recorded `Mapped`, though its first page is
/// now `PROT_NONE`: nothing puts read-write back, so the next write to a
/// chunk the map calls mapped faults.
#[test]
fn unmap_failing_part_way_leaves_mapped_chunks_over_prot_none_pages() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut m =
        ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * 4 * PAGE), Size(4 * PAGE))).unwrap();
    setup(&m, &[M, M, M, M]);
    ops.arm(&[((Op::Unmap, 1), Fail::Partial)]);
    let r = m.unmap(chunks(&m, 0, 4));
    ops.arm(&[]);
    assert!(matches!(r, Err(ChunkMapError::Backend { op: Op::Unmap, .. })), "{r:?}");
    m.check().unwrap();
    assert_eq!((0..4).map(|c| state(&m, c)).collect::<Vec<_>>(), [M, M, M, M]);
    never_more_open(&m, &sim, 4, "unmap failed part way (Backend)");
}

/// Was a DEFECT, now fixed: `ChunkMap::unmap`'s undo re-protects a protected run it had
/// decommitted; when that protect fails part way it records the run
/// `Mapped` ("one that cannot be protected again as mapped") over a page
/// that is `PROT_NONE`: recorded more open than its pages, against
/// `RollbackFailed`'s contract; and `unprotect` (a no-op on a chunk
/// recorded mapped) does not recover it.
#[test]
fn unmap_undo_reprotect_failing_part_way_records_mapped_over_prot_none() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut m =
        ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * 4 * PAGE), Size(4 * PAGE))).unwrap();
    setup(&m, &[P, P, M, M]);
    // Unmap 1 (the protected run) succeeds, unmap 2 (the mapped run) fails
    // cleanly; the undo maps run 1 again and its protect fails part way.
    ops.arm(&[((Op::Unmap, 2), Fail::Clean), ((Op::Protect, 1), Fail::Partial)]);
    let r = m.unmap(chunks(&m, 0, 4));
    ops.arm(&[]);
    assert!(matches!(r, Err(ChunkMapError::RollbackFailed { .. })), "{r:?}");
    m.check().unwrap();
    never_more_open(&m, &sim, 4, "unmap undo: protect failed part way");
    recover(&m, &sim, 4, "unmap undo");
}

/// Was a DEFECT, now fixed: `ensure_mapped` maps an unmapped run, then an unprotect of the
/// next run fails (put back cleanly); the undo's unmap of the first run
/// fails part way; the run is published `Mapped` ("A chunk whose unmap
/// failed is recorded mapped") though its first page is now `PROT_NONE`.
#[test]
fn ensure_mapped_undo_unmap_failing_part_way_records_mapped_over_prot_none() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let m = ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * 4 * PAGE), Size(4 * PAGE))).unwrap();
    setup(&m, &[U, U, P, P]);
    ops.arm(&[((Op::Protect, 1), Fail::Clean), ((Op::Unmap, 1), Fail::Partial)]);
    let r = m.ensure_mapped(chunks(&m, 0, 4));
    ops.arm(&[]);
    assert!(matches!(r, Err(ChunkMapError::RollbackFailed { .. })), "{r:?}");
    m.check().unwrap();
    never_more_open(&m, &sim, 4, "ensure_mapped undo: unmap failed part way");
}

/// Holds: a clean unmap failure in `ChunkMap::unmap` with a clean undo
/// leaves every state and page as it was (`Backend`).
#[test]
fn unmap_clean_failure_with_clean_undo_is_backend_and_exact() {
    for fail_at in 1..=3u32 {
        let mut buf = vec![0u8; 1 << 17];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let ops = Scripted::new(&sim);
        let mut m =
            ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * 4 * PAGE), Size(4 * PAGE))).unwrap();
        let layout = [P, M, U, P, P, M];
        setup(&m, &layout);
        ops.arm(&[((Op::Unmap, fail_at), Fail::Clean)]);
        let r = m.unmap(chunks(&m, 0, 6));
        ops.arm(&[]);
        assert!(matches!(r, Err(ChunkMapError::Backend { .. })), "at {fail_at}: {r:?}");
        m.check().unwrap();
        assert_eq!((0..6).map(|c| state(&m, c)).collect::<Vec<_>>(), layout, "at {fail_at}");
        assert!(exact(&m, &sim, 6), "at {fail_at}");
    }
}

/// Holds (edge geometries): chunk = page (a partial failure of a one-page
/// run changes all of it), runs across leaf pages (256 chunks a leaf with
/// 256-byte pages), the last chunk of a space that ends inside a leaf; every
/// script of two protect failures over protect/unprotect: `check()`, never
/// more open, `Backend` exact, recovery by `unprotect`.
#[test]
fn protect_failures_across_leaves_and_at_the_end_of_the_space() {
    const N: usize = 600; // 3 leaves, the last partly used
    let kinds = [None, Some(Fail::Clean), Some(Fail::Partial)];
    let mut outcomes = [0usize; 2];
    for (lo, hi) in [(250usize, 262usize), (N - 5, N), (255, 257), (0, 1)] {
        for op in 0..2 {
            for a in kinds {
                for b in kinds {
                    for c3 in kinds {
                        let mut buf = vec![0u8; (2 * N + 64) * PAGE];
                        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
                        let ops = Scripted::new(&sim);
                        let m =
                            ChunkMap::new(&ops, ChunkMapConfig::new(Size(N * PAGE), Size(PAGE)))
                                .unwrap();
                        // Alternate runs: mapped, protected.
                        for c in lo..hi {
                            m.ensure_mapped(chunks(&m, c, 1)).unwrap();
                            if (c / 3) % 2 == 1 {
                                m.protect(chunks(&m, c, 1)).unwrap();
                            }
                        }
                        let before: Vec<_> = (lo..hi).map(|c| state(&m, c)).collect();
                        let mut script = vec![];
                        for (i, k) in [a, b, c3].into_iter().enumerate() {
                            if let Some(k) = k {
                                script.push(((Op::Protect, i as u32 + 1), k));
                            }
                        }
                        ops.arm(&script);
                        let range = chunks(&m, lo, hi - lo);
                        let r = if op == 0 { m.protect(range) } else { m.unprotect(range) };
                        ops.arm(&[]);
                        let what = format!("[{lo},{hi}) op {op} script {script:?}: {r:?}");
                        m.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                        let all = N;
                        never_more_open(&m, &sim, all, &what);
                        match r {
                            Ok(()) => assert!(exact(&m, &sim, all), "{what}"),
                            Err(ChunkMapError::Backend { .. }) => {
                                outcomes[0] += 1;
                                let now: Vec<_> = (lo..hi).map(|c| state(&m, c)).collect();
                                assert_eq!(now, before, "{what}");
                                assert!(exact(&m, &sim, all), "{what}");
                            }
                            Err(ChunkMapError::RollbackFailed { .. }) => outcomes[1] += 1,
                            Err(e) => panic!("{what}: {e}"),
                        }
                        recover(&m, &sim, all, &what);
                    }
                }
            }
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// Holds (threads): four threads protect, unprotect and ensure_mapped
/// overlapping ranges while a quarter of all protects fail cleanly and a
/// quarter part way; afterwards `check()`, never more open, recovery.
#[test]
fn threads_with_random_partial_protect_failures() {
    const N: usize = 64;
    const CHUNK: usize = 2 * PAGE;
    for seed in 1..=4u64 {
        let mut buf = vec![0u8; (3 * N * 2 + 64) * PAGE];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let ops = Scripted::new(&sim);
        let m = ChunkMap::new(&ops, ChunkMapConfig::new(Size(N * CHUNK), Size(CHUNK))).unwrap();
        m.ensure_mapped(chunks(&m, 0, N)).unwrap();
        ops.randomly(seed, true);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let m = &m;
                s.spawn(move || {
                    let mut r = vmspace_workload::Rng::new(seed * 100 + t);
                    for _ in 0..300 {
                        let lo = r.below(N - 1);
                        let hi = r.between(lo + 1, (lo + 9).min(N));
                        let range = chunks(m, lo, hi - lo);
                        let res = match r.below(3) {
                            0 => m.protect(range),
                            1 => m.unprotect(range),
                            _ => m.ensure_mapped(range),
                        };
                        if let Err(e) = res {
                            assert!(
                                matches!(
                                    e,
                                    ChunkMapError::Backend { .. }
                                        | ChunkMapError::RollbackFailed { .. }
                                ),
                                "{e}"
                            );
                        }
                    }
                });
            }
        });
        ops.randomly(0, false);
        m.check().unwrap();
        never_more_open(&m, &sim, N, &format!("seed {seed}"));
        recover(&m, &sim, N, &format!("seed {seed}"));
    }
}

/// Was a DEFECT, now fixed: the documented way back after `RollbackFailed` ("an `unprotect`
/// makes state and pages agree again") does not work for a chunk that
/// `unmap`'s undo recorded `Mapped` over a `PROT_NONE` page: `unprotect` of
/// a chunk recorded mapped makes no backend call.
#[test]
fn unprotect_recovers_after_unmap_undo_rollback_failed() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut m =
        ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * 4 * PAGE), Size(4 * PAGE))).unwrap();
    setup(&m, &[P, P, M, M]);
    ops.arm(&[((Op::Unmap, 2), Fail::Clean), ((Op::Protect, 1), Fail::Partial)]);
    let r = m.unmap(chunks(&m, 0, 4));
    ops.arm(&[]);
    assert!(matches!(r, Err(ChunkMapError::RollbackFailed { .. })), "{r:?}");
    recover(&m, &sim, 4, "unmap undo then unprotect");
}

// The maintainers' additions: the second failure, where putting the old
// protection back after a failed unmap fails too.

/// `ChunkMap::unmap` fails part way and read-write cannot be put back:
/// the run is recorded protected (`RollbackFailed`), never more open than
/// its pages, and an `unprotect` recovers it.
#[test]
fn unmap_failing_part_way_whose_put_back_fails_records_protected() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut m =
        ChunkMap::new(&ops, ChunkMapConfig::new(Size(16 * 4 * PAGE), Size(4 * PAGE))).unwrap();
    setup(&m, &[P, M, M, U]);
    // Unmap 1 (the protected chunk) succeeds, unmap 2 (the mapped run)
    // fails part way, protect 1 (read-write back over it) fails.
    ops.arm(&[((Op::Unmap, 2), Fail::Partial), ((Op::Protect, 1), Fail::Clean)]);
    let r = m.unmap(chunks(&m, 0, 4));
    ops.arm(&[]);
    assert!(
        matches!(r, Err(ChunkMapError::RollbackFailed { op: Op::Unmap, range, .. }) if range == chunks(&m, 1, 2)),
        "{r:?}"
    );
    m.check().unwrap();
    assert_eq!((0..4).map(|c| state(&m, c)).collect::<Vec<_>>(), [P, P, P, U]);
    never_more_open(&m, &sim, 4, "unmap part way, put-back failed");
    recover(&m, &sim, 4, "unmap part way, put-back failed");
}
