//! Round 27 outside review: the chunk map's documented contract
//! (`src/chunkmap/`): failure paths (clean, part way, stacked injectors),
//! statistics after every step, concurrency, extremes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, FaultInjector, FaultShape, PageOps, Protection, Range, ShimError, Size};

const PAGE: usize = 256;
const CHUNK: usize = 512;

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn states<P: PageOps>(m: &ChunkMap<P>) -> Vec<ChunkState> {
    let cs = m.chunk_size().0;
    (0..m.chunks()).map(|c| m.state(Addr(m.space().base().0 + c * cs)).unwrap()).collect()
}

fn chunks(base: Addr, lo: usize, hi: usize) -> Range {
    Range::new(Addr(base.0 + lo * CHUNK), Addr(base.0 + hi * CHUNK)).unwrap()
}

/// Pages agree with states: "the chunk's pages are committed exactly when
/// that state is mapped or protected, with read-write access exactly when
/// it is mapped"; after a RollbackFailed (`loose`), a protected chunk may
/// have read-write pages, never the other way round.
fn consistent<P: PageOps>(m: &ChunkMap<P>, sim: &SimBackend, loose: bool) -> Result<(), String> {
    let base = m.space().base().0;
    for (c, s) in states(m).into_iter().enumerate() {
        for p in 0..CHUNK / PAGE {
            let a = Addr(base + c * CHUNK + p * PAGE);
            let ps = sim.page_state(a).unwrap();
            let ok = match (s, ps) {
                (ChunkState::Unmapped | ChunkState::Quarantined, PageState::Reserved) => true,
                (ChunkState::Mapped, PageState::Mapped(Protection::ReadWrite)) => true,
                (ChunkState::Protected, PageState::Mapped(Protection::None)) => true,
                (ChunkState::Protected, PageState::Mapped(_)) => loose,
                _ => false,
            };
            if !ok {
                return Err(format!("chunk {c} page {p}: state {s:?}, page {ps:?}"));
            }
        }
    }
    let census = m.census();
    if census.iter().sum::<usize>() != m.chunks() {
        return Err(format!("census {census:?} does not add up to {}", m.chunks()));
    }
    if census[2] + census[3] != m.committed_chunks() {
        return Err(format!("census {census:?} vs committed {}", m.committed_chunks()));
    }
    if m.metadata_mapped().0 != m.leaves_present() * PAGE + PAGE {
        return Err(format!("metadata {:?} leaves {}", m.metadata_mapped(), m.leaves_present()));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Ensure(usize, usize),
    Quarantine(usize, usize),
    Protect(usize, usize),
    Unprotect(usize, usize),
    Unmap(usize, usize),
    Trim,
}

fn script(seed: u64, n: usize, chunks_n: usize) -> Vec<Act> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            let r = rng(&mut s);
            let lo = (rng(&mut s) as usize) % chunks_n;
            let len = 1 + (rng(&mut s) as usize) % 24;
            let hi = (lo + len).min(chunks_n);
            match r % 11 {
                0..=2 => Act::Ensure(lo, hi),
                3 => Act::Quarantine(lo, hi),
                4 | 5 => Act::Protect(lo, hi),
                6 | 7 => Act::Unprotect(lo, hi),
                8 | 9 => Act::Unmap(lo, hi),
                _ => Act::Trim,
            }
        })
        .collect()
}

fn run_act<P: PageOps>(m: &mut ChunkMap<P>, a: Act) -> Result<(), ChunkMapError> {
    let b = m.space().base();
    let skew = |lo: usize, hi: usize| {
        // Unaligned inside the chunks for the rounding operations.
        Range::new(Addr(b.0 + lo * CHUNK + 8), Addr(b.0 + hi * CHUNK - 8)).unwrap()
    };
    match a {
        Act::Ensure(lo, hi) => m.ensure_mapped(skew(lo, hi)),
        Act::Quarantine(lo, hi) => m.quarantine(skew(lo, hi)),
        Act::Protect(lo, hi) => m.protect(chunks(b, lo, hi)),
        Act::Unprotect(lo, hi) => m.unprotect(chunks(b, lo, hi)),
        Act::Unmap(lo, hi) => m.unmap(chunks(b, lo, hi)),
        Act::Trim => m.trim().map(|_| ()),
    }
}

/// One failure (clean or part way) at every call position of a script:
/// a failing operation other than `RollbackFailed` leaves every chunk's
/// state as it was; `RollbackFailed` changes only chunks in `lost`;
/// `check`, the census, the committed count and the pages agree after
/// every step.
fn sweep(stacked: bool) {
    let n_chunks = 600; // three leaves of 256 chunks (pages of 256 bytes)
    let mut acts = vec![Act::Ensure(200, 420), Act::Protect(250, 270), Act::Ensure(500, 560)];
    acts.extend(script(0xC0FFEE, 60, n_chunks));
    let mut nth = 1u64;
    let mut hit = 0;
    loop {
        let mut any_failed = false;
        for (shape, gap) in [0u64, 1, 2, 3]
            .iter()
            .flat_map(|&g| [(FaultShape::Clean, g), (FaultShape::PartWay, g)])
            .filter(|&(_, g)| stacked || g == 0)
        {
            let off = OFFSETS[(nth as usize) % OFFSETS.len()];
            let mut buf = Placed::new(1 << 20, off);
            let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
            let inner = FaultInjector::new(&sim);
            let outer = FaultInjector::new(&inner);
            let mut m =
                ChunkMap::new(&outer, ChunkMapConfig::new(Size(n_chunks * CHUNK), Size(CHUNK)))
                    .unwrap();
            outer.set_shape(shape);
            inner.set_shape(shape);
            outer.fail_nth(nth);
            if stacked {
                // The inner one fails a later call too: two failures in one
                // operation (undo fails).
                inner.fail_nth(nth + gap);
            }
            let mut loose = false;
            for (i, &a) in acts.iter().enumerate() {
                let before = states(&m);
                let (inj0, part0) = (outer.injected(), outer.changed_part_way());
                let r = run_act(&mut m, a);
                // The outer injector breaks the backend contract when the
                // inner one fails a call it makes to change a prefix part
                // way ("cannot keep the contract then, and does not count
                // the call"): not the map's fault, stop this run.
                let first_op = match &r {
                    Err(
                        ChunkMapError::Backend { op, .. }
                        | ChunkMapError::RollbackFailed { op, .. },
                    ) => Some(*op),
                    _ => None,
                };
                if stacked
                    && shape == FaultShape::PartWay
                    && outer.injected() > inj0
                    && outer.changed_part_way() == part0
                    && matches!(first_op, Some(vmspace_shim::Op::Unmap | vmspace_shim::Op::Protect))
                {
                    break;
                }
                match &r {
                    Ok(()) => {}
                    Err(ChunkMapError::RollbackFailed { lost, .. }) => {
                        ROLLBACKS.fetch_add(1, Ordering::Relaxed);
                        loose = true;
                        any_failed = true;
                        let after = states(&m);
                        for c in 0..n_chunks {
                            let inside = chunks(m.space().base(), c, c + 1).overlaps(lost);
                            assert!(
                                inside || after[c] == before[c],
                                "{shape:?} nth {nth} step {i} {a:?}: chunk {c} outside lost {lost:?} changed {:?} -> {:?}",
                                before[c],
                                after[c]
                            );
                        }
                    }
                    Err(e) => {
                        if let ChunkMapError::Backend { range, .. } = e {
                            assert!(!range.is_empty() && m.reservation().contains(range), "{e:?}");
                        }
                        if matches!(e, ChunkMapError::Backend { .. }) {
                            any_failed = true;
                        }
                        if !matches!(a, Act::Trim) {
                            assert_eq!(
                                states(&m),
                                before,
                                "{shape:?} nth {nth} step {i} {a:?}: {e:?}"
                            );
                        } else {
                            assert_eq!(states(&m), before);
                        }
                    }
                }
                if let Err(e) = m.check() {
                    panic!(
                        "{shape:?} gap {gap} nth {nth} step {i} {a:?}: {r:?}, then check: {e:?}"
                    );
                }
                if let Err(e) = consistent(&m, &sim, loose) {
                    panic!("{shape:?} gap {gap} nth {nth} step {i} {a:?}: {r:?}, then {e}");
                }
            }
            hit += outer.injected();
            if outer.injected() > 0 {
                any_failed = true;
            }
        }
        if !any_failed || nth > 400 {
            break;
        }
        nth += 1;
    }
    assert!(hit > 10);
    eprintln!(
        "stacked {stacked}: {hit} injected, {} RollbackFailed",
        ROLLBACKS.load(Ordering::Relaxed)
    );
}

static ROLLBACKS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn fault_sweep_single() {
    sweep(false);
}

#[test]
fn fault_sweep_stacked() {
    sweep(true);
}

/// A backend that blocks its `protect`/`map` calls while armed, so a test
/// can look at the map mid-change.
struct Gate<'a> {
    inner: &'a SimBackend<'a>,
    armed: AtomicBool,
    inside: AtomicBool,
    go: AtomicBool,
}

impl Gate<'_> {
    fn hold(&self) {
        if self.armed.load(Ordering::SeqCst) {
            self.inside.store(true, Ordering::SeqCst);
            while !self.go.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
    }
}

// SAFETY: every call goes to the inner backend unchanged (a protect only
// waits first), so its guarantees are the inner backend's.
unsafe impl PageOps for Gate<'_> {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        "gate"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        self.hold();
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.protect(range, prot) }
    }
}

/// `state`: "A chunk being changed reports the state it had"; `check`
/// reports a claim in progress; a racing `ensure_mapped` of a chunk being
/// protected waits, then finds it protected and unprotects it; neighbours
/// are untouched meanwhile.
#[test]
fn readers_mid_change_see_old_state() {
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let gate = Gate {
        inner: &sim,
        armed: AtomicBool::new(false),
        inside: AtomicBool::new(false),
        go: AtomicBool::new(false),
    };
    let m = ChunkMap::new(&gate, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))).unwrap();
    let b = m.space().base();
    m.ensure_mapped(chunks(b, 250, 260)).unwrap();
    gate.armed.store(true, Ordering::SeqCst);
    let ensured = AtomicBool::new(false);
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || m.protect(chunks(b, 254, 258)).unwrap());
        while !gate.inside.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Mid-protect.
        for c in 254..258 {
            assert_eq!(m.state(chunks(b, c, c + 1).base()), Some(ChunkState::Mapped), "chunk {c}");
        }
        assert_eq!(m.census(), [590, 0, 10, 0]);
        assert!(m.check().is_err(), "check must report the claim in progress");
        // Neighbours in the same leaf and the next leaf are free to change.
        let e = &ensured;
        let h = s.spawn(move || {
            m.ensure_mapped(chunks(b, 257, 259)).unwrap();
            e.store(true, Ordering::SeqCst);
        });
        m.ensure_mapped(chunks(b, 259, 262)).unwrap_err_or_ok();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!ensured.load(Ordering::SeqCst), "ensure_mapped of a claimed chunk did not wait");
        gate.armed.store(false, Ordering::SeqCst);
        gate.go.store(true, Ordering::SeqCst);
        h.join().unwrap();
    });
    let st = states(&m);
    assert_eq!(&st[254..257], &[ChunkState::Protected; 3]);
    assert_eq!(&st[257..262], &[ChunkState::Mapped; 5]);
    m.check().unwrap();
    assert_eq!(m.committed_chunks(), 12);
}

trait OkOrErr {
    fn unwrap_err_or_ok(self);
}
impl<E: std::fmt::Debug> OkOrErr for Result<(), E> {
    fn unwrap_err_or_ok(self) {
        self.unwrap()
    }
}

/// Threads racing ensure_mapped / quarantine / protect / unprotect on the
/// same and neighbouring chunks across leaf boundaries, with random clean
/// and part-way failures: afterwards check(), census, committed count and
/// the pages agree, and no operation panicked or hung.
#[test]
fn racing_mixed_ops_with_faults() {
    for (round, shape) in
        [(0u64, FaultShape::Clean), (1, FaultShape::PartWay), (2, FaultShape::Clean)]
    {
        let mut buf = Placed::new(1 << 20, OFFSETS[round as usize + 2]);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(520 * CHUNK), Size(CHUNK))).unwrap();
        let b = m.space().base();
        if round > 0 {
            fi.set_shape(shape);
            fi.fail_randomly(round * 99, 30_000);
        }
        let rollback = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let m = &m;
                let rollback = &rollback;
                s.spawn(move || {
                    let mut seed = 0xABCD ^ ((t + 1) * 0x9E37_79B9) ^ round;
                    for _ in 0..400 {
                        let r = rng(&mut seed);
                        // Around the leaf boundaries at 256 and 512.
                        let centre = if r & 1 == 0 { 256 } else { 512 };
                        let lo = centre - 4 + (r >> 8) as usize % 6;
                        let hi = (lo + 1 + (r >> 16) as usize % 5).min(520);
                        let res = match (r >> 24) % 4 {
                            0 => m.ensure_mapped(chunks(b, lo, hi)),
                            1 => m.quarantine(chunks(b, lo, hi)),
                            2 => m.protect(chunks(b, lo, hi)),
                            _ => m.unprotect(chunks(b, lo, hi)),
                        };
                        match res {
                            Ok(()) | Err(ChunkMapError::NotMapped { .. }) => {}
                            Err(ChunkMapError::Backend { .. }) if round > 0 => {}
                            Err(ChunkMapError::RollbackFailed { .. }) if round > 0 => {
                                rollback.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                        let cs = m.census();
                        assert_eq!(cs.iter().sum::<usize>(), 520, "census {cs:?} mid-race");
                        let _ = m.is_mapped(chunks(b, lo, hi).base());
                    }
                });
            }
        });
        fi.clear();
        m.check().unwrap();
        consistent(&m, &sim, rollback.load(Ordering::Relaxed) > 0).unwrap();
    }
}

/// Extremes: the largest chunk and space sizes a word holds are refused
/// with an error (never a panic); a chunk of one page; a space whose last
/// leaf is partial; the last chunk; a range ending at the space's limit.
#[test]
fn extremes() {
    let mut buf = Placed::new(1 << 20, 8);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    for (space, chunk) in [
        (1usize << 63, 1usize << 63),
        (usize::MAX - (PAGE - 1), PAGE),
        (1 << 62, 1 << 62),
        (usize::MAX & !((1 << 40) - 1), 1 << 40),
        (1 << 47, 4 << 20),
    ] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(space), Size(chunk))).map(|_| ())
        }));
        assert!(matches!(r, Ok(Err(_))), "space {space:#x} chunk {chunk:#x}: {r:?}");
    }
    // One-page chunks, 257 of them (a second leaf holding one chunk).
    let mut m = ChunkMap::new(&sim, ChunkMapConfig::new(Size(257 * PAGE), Size(PAGE))).unwrap();
    let lim = m.space().limit();
    let last = Range::new(Addr(lim.0 - PAGE), lim).unwrap();
    m.ensure_mapped(Range::new(Addr(lim.0 - 1), lim).unwrap()).unwrap();
    assert_eq!(m.state(last.base()), Some(ChunkState::Mapped));
    assert_eq!(m.state(lim), None);
    assert!(!m.is_mapped(lim));
    assert_eq!(m.leaves_present(), 1);
    m.protect(last).unwrap();
    assert_eq!(m.census(), [256, 0, 0, 1]);
    m.unmap(m.space()).unwrap();
    assert_eq!(m.trim().unwrap(), 1);
    assert_eq!(m.leaves_present(), 0);
    m.check().unwrap();
    // Ranges past the limit, or wrapping.
    assert!(m.ensure_mapped(Range::new(Addr(lim.0 - 1), Addr(lim.0 + 1)).unwrap()).is_err());
    assert!(m.quarantine(Range::new(Addr(0), Addr(usize::MAX)).unwrap()).is_err());
    m.check().unwrap();
}

/// A second map's addresses given to the first: refused with OutOfRange,
/// `state` None, `is_mapped` false; nothing changes.
#[test]
fn second_instance_addresses() {
    let mut b1 = Placed::new(1 << 20, 0);
    let mut b2 = Placed::new(1 << 20, 256);
    let s1 = SimBackend::new(b1.bytes(), PAGE).unwrap();
    let s2 = SimBackend::new(b2.bytes(), PAGE).unwrap();
    let mut m1 = ChunkMap::new(&s1, ChunkMapConfig::new(Size(64 * CHUNK), Size(CHUNK))).unwrap();
    let m2 = ChunkMap::new(&s2, ChunkMapConfig::new(Size(64 * CHUNK), Size(CHUNK))).unwrap();
    m2.ensure_mapped(m2.space()).unwrap();
    let r = chunks(m2.space().base(), 3, 5);
    assert!(m1.ensure_mapped(r).is_err());
    assert!(m1.quarantine(r).is_err());
    assert!(m1.protect(r).is_err());
    assert!(m1.unprotect(r).is_err());
    assert!(m1.unmap(r).is_err());
    assert_eq!(m1.state(r.base()), None);
    assert!(!m1.is_mapped(r.base()));
    assert!(!m1.lookup().is_mapped(r.base()));
    // The second map's table addresses too.
    assert_eq!(m1.state(m2.reservation().base()), None);
    assert_eq!(m1.committed_chunks(), 0);
    m1.check().unwrap();
    m2.check().unwrap();
}

/// `new`: a failed reserve names the size asked for at no address; a
/// failed directory map names the directory and releases the reservation.
#[test]
fn new_failures() {
    use vmspace_shim::Op;
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    fi.only(&[Op::Reserve]);
    fi.fail_nth(1);
    match ChunkMap::new(&fi, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))) {
        Err(ChunkMapError::Backend { op: Op::Reserve, range, .. }) => {
            assert_eq!(range.base(), Addr(0));
            assert_eq!(range.size(), Size(600 * CHUNK + 4 * PAGE));
        }
        other => panic!("{other:?}"),
    }
    fi.clear();
    fi.only(&[Op::Map]);
    fi.fail_nth(1);
    match ChunkMap::new(&fi, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))) {
        Err(ChunkMapError::Backend { op: Op::Map, range, .. }) => {
            assert_eq!(range.size(), Size(PAGE))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.stats().reservations, 0, "reservation leaked");
}

/// A backend panicking mid-operation (the docs say nothing about it):
/// the claimed chunks stay claimed; `check` reports it; `state` still
/// gives the old state. (Observation, not a contract.)
#[test]
fn panic_mid_operation_leaves_claim() {
    struct Boom<'a>(&'a SimBackend<'a>, AtomicBool);
    // SAFETY: every call goes to the simulator unchanged, or panics before
    // reaching it.
    unsafe impl PageOps for Boom<'_> {
        fn page_size(&self) -> Size {
            self.0.page_size()
        }
        fn name(&self) -> &'static str {
            "boom"
        }
        fn reserve(&self, s: Size, a: Size) -> Result<Range, ShimError> {
            self.0.reserve(s, a)
        }
        unsafe fn release(&self, r: Range) -> Result<(), ShimError> {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.0.release(r) }
        }
        unsafe fn map(&self, r: Range) -> Result<(), ShimError> {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.0.map(r) }
        }
        unsafe fn unmap(&self, r: Range) -> Result<(), ShimError> {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.0.unmap(r) }
        }
        unsafe fn protect(&self, r: Range, p: Protection) -> Result<(), ShimError> {
            if self.1.swap(false, Ordering::SeqCst) {
                panic!("backend panics");
            }
            // SAFETY: the caller's contract, passed on.
            unsafe { self.0.protect(r, p) }
        }
    }
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let boom = Boom(&sim, AtomicBool::new(false));
    let m = ChunkMap::new(&boom, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))).unwrap();
    let b = m.space().base();
    m.ensure_mapped(chunks(b, 0, 4)).unwrap();
    boom.1.store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.protect(chunks(b, 1, 3))));
    assert!(r.is_err());
    assert_eq!(m.state(chunks(b, 1, 2).base()), Some(ChunkState::Mapped));
    assert!(m.check().is_err(), "claim left behind after a panic");
    // Neighbours stay usable.
    m.protect(chunks(b, 3, 4)).unwrap();
}
