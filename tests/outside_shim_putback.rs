//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the chunk map's put-back after backend calls that fail
//! part way, as Linux's `mprotect` does at `vm.max_map_count`.
//!
//! The `PageOps` contract: "a failed `protect` or `unmap` of a system
//! backend may leave part of its range with the protection it asked for
//! [...] the layers that know it put it back (the VM arena and the chunk
//! map do)". `ChunkMapError::RollbackFailed`: "`check` still holds [...]
//! no chunk is recorded more open than its pages are, and an `unprotect`
//! makes state and pages agree again". `ChunkMapError`: "A failing
//! operation leaves every chunk in the state it had before the call".
//!
//! A partial failure here is modelled exactly as the mmap backend's
//! `Decommit` unmap fails at the map count: `madvise(MADV_DONTNEED)` went
//! through, then `mprotect(PROT_NONE)` changed a prefix (the first page)
//! and failed. A partial protect changes the first page and fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{seed_mix, Addr, Op, PageOps, Protection, Range, ShimError, Size};

const PAGE: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fail {
    Clean,
    Partial,
}

/// A simulated backend whose numbered protect and unmap calls fail as
/// scripted, or (random mode) whose protects fail with a seeded chance.
struct Scripted<'a> {
    sim: &'a SimBackend<'a>,
    protects: AtomicU32,
    unmaps: AtomicU32,
    script: Mutex<HashMap<(Op, u32), Fail>>,
    random: AtomicBool,
    rng: AtomicU64,
}

impl<'a> Scripted<'a> {
    fn new(sim: &'a SimBackend<'a>) -> Self {
        Scripted {
            sim,
            protects: AtomicU32::new(0),
            unmaps: AtomicU32::new(0),
            script: Mutex::new(HashMap::new()),
            random: AtomicBool::new(false),
            rng: AtomicU64::new(1),
        }
    }
    fn arm(&self, script: &[((Op, u32), Fail)]) {
        self.protects.store(0, Ordering::SeqCst);
        self.unmaps.store(0, Ordering::SeqCst);
        *self.script.lock().unwrap() = script.iter().copied().collect();
    }
    fn randomly(&self, seed: u64, on: bool) {
        self.rng.store(seed, Ordering::SeqCst);
        self.random.store(on, Ordering::SeqCst);
    }
    fn decide(&self, op: Op, n: u32) -> Option<Fail> {
        if self.random.load(Ordering::SeqCst) {
            let r = seed_mix(self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst));
            return match r % 4 {
                0 => Some(Fail::Clean),
                1 => Some(Fail::Partial),
                _ => None,
            };
        }
        self.script.lock().unwrap().get(&(op, n)).copied()
    }
    fn first_page(range: Range) -> Range {
        Range::from_size(range.base(), Size(PAGE)).unwrap()
    }
}

// SAFETY: every call is forwarded to the simulated backend with its own
// arguments, or (a partial failure) with a prefix of its range.
unsafe impl PageOps for Scripted<'_> {
    fn page_size(&self) -> Size {
        self.sim.page_size()
    }
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.sim.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.sim.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.sim.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        let n = self.unmaps.fetch_add(1, Ordering::SeqCst) + 1;
        if self.random.load(Ordering::SeqCst) {
            // SAFETY: forwarded.
            return unsafe { self.sim.unmap(range) };
        }
        match self.decide(Op::Unmap, n) {
            None => {}
            Some(Fail::Clean) => return Err(ShimError::Os { op: Op::Unmap, errno: 12 }),
            Some(Fail::Partial) => {
                // madvise went through (contents gone), then mprotect(NONE)
                // changed the first page and failed.
                // SAFETY: a prefix of the caller's mapped range.
                unsafe { self.sim.protect(Self::first_page(range), Protection::None) }.unwrap();
                return Err(ShimError::Os { op: Op::Unmap, errno: 12 });
            }
        }
        // SAFETY: forwarded.
        unsafe { self.sim.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        let n = self.protects.fetch_add(1, Ordering::SeqCst) + 1;
        match self.decide(Op::Protect, n) {
            None => {}
            Some(Fail::Clean) => return Err(ShimError::Os { op: Op::Protect, errno: 12 }),
            Some(Fail::Partial) => {
                // SAFETY: a prefix of the caller's range, under its contract.
                unsafe { self.sim.protect(Self::first_page(range), prot) }.unwrap();
                return Err(ShimError::Os { op: Op::Protect, errno: 12 });
            }
        }
        // SAFETY: forwarded.
        unsafe { self.sim.protect(range, prot) }
    }
}

fn chunks(m: &ChunkMap<impl PageOps>, first: usize, n: usize) -> Range {
    let c = m.chunk_size().0;
    Range::from_size(Addr(m.space().base().0 + first * c), Size(n * c)).unwrap()
}

fn state(m: &ChunkMap<impl PageOps>, c: usize) -> ChunkState {
    m.state(chunks(m, c, 1).base()).unwrap()
}

fn pages(m: &ChunkMap<impl PageOps>, sim: &SimBackend<'_>, c: usize) -> Vec<PageState> {
    let base = chunks(m, c, 1).base().0;
    (0..m.chunk_size().0 / PAGE).map(|p| sim.page_state(Addr(base + p * PAGE)).unwrap()).collect()
}

/// Panics when a chunk is recorded more open than its pages are.
fn never_more_open(m: &ChunkMap<impl PageOps>, sim: &SimBackend<'_>, n: usize, what: &str) {
    for c in 0..n {
        let p = pages(m, sim, c);
        match state(m, c) {
            ChunkState::Mapped => assert!(
                p.iter().all(|&p| p == PageState::Mapped(Protection::ReadWrite)),
                "{what}: chunk {c} recorded Mapped over pages {p:?}"
            ),
            ChunkState::Protected => assert!(
                p.iter().all(|p| matches!(p, PageState::Mapped(_))),
                "{what}: chunk {c} recorded Protected over pages {p:?}"
            ),
            _ => {}
        }
    }
}

/// Whether every chunk's pages hold exactly what its state says.
fn exact(m: &ChunkMap<impl PageOps>, sim: &SimBackend<'_>, n: usize) -> bool {
    (0..n).all(|c| {
        let want = match state(m, c) {
            ChunkState::Unmapped | ChunkState::Quarantined => PageState::Reserved,
            ChunkState::Mapped => PageState::Mapped(Protection::ReadWrite),
            ChunkState::Protected => PageState::Mapped(Protection::None),
        };
        pages(m, sim, c).iter().all(|&p| p == want)
    })
}

fn setup(m: &ChunkMap<impl PageOps>, layout: &[ChunkState]) {
    for (c, s) in layout.iter().enumerate() {
        match s {
            ChunkState::Mapped => m.ensure_mapped(chunks(m, c, 1)).unwrap(),
            ChunkState::Protected => {
                m.ensure_mapped(chunks(m, c, 1)).unwrap();
                m.protect(chunks(m, c, 1)).unwrap();
            }
            ChunkState::Quarantined => m.quarantine(chunks(m, c, 1)).unwrap(),
            ChunkState::Unmapped => {}
        }
    }
}

/// The documented recovery: unprotect every committed chunk, then state and
/// pages agree.
fn recover(m: &ChunkMap<impl PageOps>, sim: &SimBackend<'_>, n: usize, what: &str) {
    for c in 0..n {
        if matches!(state(m, c), ChunkState::Mapped | ChunkState::Protected) {
            m.unprotect(chunks(m, c, 1)).unwrap();
        }
    }
    m.check().unwrap();
    assert!(exact(m, sim, n), "{what}: an unprotect of every committed chunk did not recover");
}

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

/// Was a DEFECT, now fixed (same contract, the other layer the trait names: "the layers
/// that know it put it back (the VM arena and the chunk map do)"):
/// `VmArena::free` whose decommit fails part way returns the error with
/// the tracts still allocated and recorded read-write ("fails with the
/// arena unchanged"), though the first page is now `PROT_NONE`: the owner,
/// told its free failed, still holds a grant it cannot write.
#[test]
fn vmarena_free_failing_part_way_leaves_owned_tracts_recorded_rw_over_prot_none() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(0).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    ops.arm(&[((Op::Unmap, 1), Fail::Partial)]);
    let r = va.free(g.range, owner);
    ops.arm(&[]);
    assert!(r.is_err(), "{r:?}");
    va.check().unwrap();
    for k in 0..4 {
        let a = Addr(g.range.base().0 + k * PAGE);
        let t = va.tract(a);
        let real = sim.page_state(a).unwrap();
        if let Some(t) = t {
            assert!(
                t.prot != Protection::ReadWrite || real == PageState::Mapped(Protection::ReadWrite),
                "free failed ({r:?}); tract {k} still owned, recorded {:?}, the page is {real:?}",
                t.prot
            );
        }
    }
}

/// Was a DEFECT, now fixed (consequence of the same gap): a `purge_spare` whose decommit
/// fails part way keeps the run spare ("the rest stay spare"), committed
/// read-write as far as the arena knows, though its first page is now
/// `PROT_NONE`; the next allocation reuses spare pages without a backend
/// call and hands its owner a `Grant` ("committed, owned by the
/// requester") with a page it cannot touch.
#[test]
fn vmarena_purge_failing_part_way_then_alloc_grants_a_prot_none_page() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(64).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    va.free(g.range, owner).unwrap();
    assert_eq!(va.spare(), Size(4 * PAGE), "the freed pages stay spare");
    ops.arm(&[((Op::Unmap, 1), Fail::Partial)]);
    let r = va.purge_spare();
    ops.arm(&[]);
    assert!(r.is_err(), "{r:?}");
    va.check().unwrap();
    let g2 = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    for k in 0..4 {
        let a = Addr(g2.range.base().0 + k * PAGE);
        assert_eq!(
            sim.page_state(a),
            Some(PageState::Mapped(Protection::ReadWrite)),
            "purge failed ({r:?}); the next grant {:?} has page {k} not read-write",
            g2.range
        );
    }
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

/// `VmArena::free` fails part way and the recorded protection cannot be
/// put back: `RollbackFailed` names the tracts, which stay allocated and
/// are recorded inaccessible.
#[test]
fn vmarena_free_failing_part_way_whose_put_back_fails_records_none() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(0).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    ops.arm(&[((Op::Unmap, 1), Fail::Partial), ((Op::Protect, 1), Fail::Clean)]);
    let r = va.free(g.range, owner);
    ops.arm(&[]);
    assert!(
        matches!(r, Err(VmArenaError::RollbackFailed { range, .. }) if range == g.range),
        "{r:?}"
    );
    va.check().unwrap();
    for k in 0..4 {
        let a = Addr(g.range.base().0 + k * PAGE);
        assert_eq!(va.tract(a).unwrap().prot, Protection::None, "tract {k}");
    }
    // Freed now, it is decommitted, not kept spare.
    va.set_spare_limit(64).unwrap();
    va.free(g.range, owner).unwrap();
    assert_eq!(va.spare(), Size(0));
    va.check().unwrap();
}

/// A purge fails part way and read-write cannot be put back over the
/// spare run (`RollbackFailed`): the run stays spare, and an allocation
/// that reuses it makes it read-write first; when that fails too, the
/// allocation fails and changes nothing.
#[test]
fn vmarena_purge_whose_put_back_fails_makes_reused_spare_read_write() {
    use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
    use vmspace::Pages;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    va.set_spare_limit(64).unwrap();
    let owner = Owner(3);
    let g = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    va.free(g.range, owner).unwrap();
    ops.arm(&[((Op::Unmap, 1), Fail::Partial), ((Op::Protect, 1), Fail::Clean)]);
    let r = va.purge_spare();
    ops.arm(&[]);
    assert!(
        matches!(r, Err(VmArenaError::RollbackFailed { range, .. }) if range == g.range),
        "{r:?}"
    );
    va.check().unwrap();
    assert_eq!(va.spare(), Size(4 * PAGE), "the run stays spare");
    let first = Addr(g.range.base().0);
    assert_eq!(sim.page_state(first), Some(PageState::Mapped(Protection::None)));
    // Reusing it, the read-write protect fails: nothing changes.
    ops.arm(&[((Op::Protect, 1), Fail::Clean)]);
    let again = va.alloc(&Request::new(Pages(4), owner));
    ops.arm(&[]);
    assert!(again.is_err(), "{again:?}");
    va.check().unwrap();
    assert_eq!((va.spare(), va.allocated()), (Size(4 * PAGE), Size(0)));
    // Then it succeeds, and every page granted is read-write.
    let g2 = va.alloc(&Request::new(Pages(4), owner)).unwrap();
    assert_eq!(g2.range, g.range, "the spare run is reused");
    va.check().unwrap();
    for k in 0..4 {
        let a = Addr(g2.range.base().0 + k * PAGE);
        assert_eq!(sim.page_state(a), Some(PageState::Mapped(Protection::ReadWrite)), "page {k}");
    }
}
