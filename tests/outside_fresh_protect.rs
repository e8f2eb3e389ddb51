//! An outside reviewer's tests of the protection put back after a failed
//! protect (`VmArena::protect`, the chunk map's `protect`/`unprotect`),
//! against a backend that fails as Linux's `mprotect` does at the VMA
//! limit: part of the range changed, then an error. After every failure
//! `check()` must pass and each page's protection in the simulated backend
//! must be the one recorded.

use std::sync::atomic::{AtomicU64, Ordering};

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::Pages;
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};

const PAGE: usize = 256;

/// A backend whose armed protect call (1-based, counting protects only)
/// changes the first `partial` pages of its range, then fails.
struct PartialProtect<'a> {
    sim: &'a SimBackend<'a>,
    protects: AtomicU64,
    fail_at: AtomicU64,
    /// A later protect call that fails without changing anything.
    fail_also: AtomicU64,
    partial: usize,
}

impl<'a> PartialProtect<'a> {
    fn new(sim: &'a SimBackend<'a>, partial: usize) -> Self {
        PartialProtect {
            sim,
            protects: AtomicU64::new(0),
            fail_at: AtomicU64::new(0),
            fail_also: AtomicU64::new(0),
            partial,
        }
    }
    fn arm(&self, n: u64) {
        self.protects.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
        self.fail_also.store(0, Ordering::SeqCst);
    }
    fn arm_twice(&self, n: u64, also: u64) {
        self.arm(n);
        self.fail_also.store(also, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded to the simulated backend with its own
// arguments, or (an armed protect) with a prefix of its range.
unsafe impl PageOps for PartialProtect<'_> {
    fn page_size(&self) -> Size {
        self.sim.page_size()
    }
    fn name(&self) -> &'static str {
        "partial protect"
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
        // SAFETY: forwarded.
        unsafe { self.sim.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        let n = self.protects.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            let pages = (range.size().0 / PAGE).min(self.partial);
            if pages > 0 {
                let part = Range::from_size(range.base(), Size(pages * PAGE)).unwrap();
                // SAFETY: a prefix of the caller's range, under its contract.
                unsafe { self.sim.protect(part, prot) }.unwrap();
            }
            return Err(ShimError::Injected { op: Op::Protect });
        }
        if n == self.fail_also.load(Ordering::SeqCst) {
            return Err(ShimError::Injected { op: Op::Protect });
        }
        // SAFETY: forwarded.
        unsafe { self.sim.protect(range, prot) }
    }
}

fn prots() -> [Protection; 3] {
    [Protection::ReadWrite, Protection::Read, Protection::None]
}

/// Four tracts of one owner with protections RW, Read, None, Read; a
/// protect of all four to each protection failing part way (1..=3 pages
/// changed): every tract keeps its recorded protection in the backend.
#[test]
fn vmarena_failed_protect_restores_every_tract() {
    for partial in 1..=3 {
        for target in prots() {
            let mut buf = vec![0u8; 1 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let ops = PartialProtect::new(&sim, partial);
            let mut a = VmArena::new(&ops, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
            let g = a.alloc(&Request::new(Pages(4), Owner(7))).unwrap();
            let base = g.range.base().0;
            let tract = |i: usize| Range::from_size(Addr(base + i * PAGE), Size(PAGE)).unwrap();
            let before =
                [Protection::ReadWrite, Protection::Read, Protection::None, Protection::Read];
            for (i, p) in before.iter().enumerate() {
                a.protect(tract(i), Owner(7), *p).unwrap();
            }
            ops.arm(1);
            let r = a.protect(g.range, Owner(7), target);
            assert!(r.is_err(), "partial {partial} {target:?}: the armed call fails");
            a.check().unwrap();
            for (i, p) in before.iter().enumerate() {
                assert_eq!(a.tract(Addr(base + i * PAGE)).unwrap().prot, *p, "recorded {i}");
                assert_eq!(
                    sim.page_state(Addr(base + i * PAGE)),
                    Some(PageState::Mapped(*p)),
                    "partial {partial} target {target:?}: tract {i} in the backend"
                );
            }
            // And a later protect works and is recorded.
            a.protect(g.range, Owner(7), target).unwrap();
            for i in 0..4 {
                assert_eq!(sim.page_state(Addr(base + i * PAGE)), Some(PageState::Mapped(target)));
            }
            a.free(g.range, Owner(7)).unwrap();
            a.check().unwrap();
        }
    }
}

const CHUNK: usize = 1024;

/// A chunk map with chunks mapped, protected and unmapped; a protect and an
/// unprotect over several chunks whose backend call fails part way: each
/// chunk's state and its pages in the backend agree.
#[test]
fn chunkmap_failed_protect_restores_every_chunk() {
    for partial in 1..=7 {
        for n in 1..=3 {
            let mut buf = vec![0u8; 1 << 21];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let ops = PartialProtect::new(&sim, partial);
            let m =
                ChunkMap::new(&ops, ChunkMapConfig::new(Size(64 * CHUNK), Size(CHUNK))).unwrap();
            let sp = m.space().base().0;
            let chunks = |first: usize, k: usize| {
                Range::from_size(Addr(sp + first * CHUNK), Size(k * CHUNK)).unwrap()
            };
            m.ensure_mapped(chunks(0, 4)).unwrap();
            m.protect(chunks(2, 1)).unwrap();
            ops.arm(n);
            let _ = m.protect(chunks(0, 2));
            agree(&m, &sim, sp, &format!("protect partial {partial} call {n}"));
            m.check().unwrap();
            ops.arm(n);
            let _ = m.unprotect(chunks(0, 4));
            agree(&m, &sim, sp, &format!("unprotect partial {partial} call {n}"));
            m.check().unwrap();
        }
    }
}

fn agree<P: PageOps>(m: &ChunkMap<P>, sim: &SimBackend<'_>, sp: usize, what: &str) {
    for c in 0..8 {
        let a = Addr(sp + c * CHUNK);
        let want = match m.state(a).unwrap() {
            ChunkState::Unmapped | ChunkState::Quarantined => PageState::Reserved,
            ChunkState::Mapped => PageState::Mapped(Protection::ReadWrite),
            ChunkState::Protected => PageState::Mapped(Protection::None),
        };
        for p in 0..CHUNK / PAGE {
            assert_eq!(
                sim.page_state(Addr(a.0 + p * PAGE)),
                Some(want),
                "{what}: chunk {c} page {p}"
            );
        }
    }
}

/// A protect failing part way whose restoring protect fails too: the
/// arena cannot put the old protection back, and must not say that the
/// tracts have it (the chunk map reports `RollbackFailed` and records what
/// the backend holds). Either the recorded protection matches the backend,
/// or the error tells the caller that it does not.
#[test]
fn vmarena_failed_restore_is_not_silent() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = PartialProtect::new(&sim, 2);
    let mut a = VmArena::new(&ops, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let g = a.alloc(&Request::new(Pages(4), Owner(7))).unwrap();
    let base = g.range.base().0;
    ops.arm_twice(1, 2);
    let r = a.protect(g.range, Owner(7), Protection::None);
    a.check().unwrap();
    // (The maintainers' addition: the error says so.)
    assert!(matches!(r, Err(vmspace::vmarena::VmArenaError::RollbackFailed { .. })), "{r:?}");
    let mismatched: Vec<usize> = (0..4)
        .filter(|&i| {
            let at = Addr(base + i * PAGE);
            sim.page_state(at) != Some(PageState::Mapped(a.tract(at).unwrap().prot))
        })
        .collect();
    assert!(
        mismatched.is_empty(),
        "protect returned {r:?}, an error that does not say the old protection was not put \
         back; tracts {mismatched:?} are recorded {:?} but the backend has {:?}",
        a.tract(Addr(base)).unwrap().prot,
        sim.page_state(Addr(base)),
    );
}

/// The consequence: after that double failure, the tracts freed and
/// allocated again (kept spare, as recorded read-write) come back
/// `PROT_NONE`, though a fresh allocation is committed read-write.
#[test]
fn vmarena_reallocation_after_failed_restore_is_read_write() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = PartialProtect::new(&sim, 2);
    let cfg = VmArenaConfig::new(Size(64 * PAGE)).spare_limit(8);
    let mut a = VmArena::new(&ops, cfg).unwrap();
    let g = a.alloc(&Request::new(Pages(4), Owner(7))).unwrap();
    ops.arm_twice(1, 2);
    let _ = a.protect(g.range, Owner(7), Protection::None);
    ops.arm(0);
    a.free(g.range, Owner(7)).unwrap();
    let h = a.alloc(&Request::new(Pages(4), Owner(8))).unwrap();
    a.check().unwrap();
    for i in 0..4 {
        let at = Addr(h.range.base().0 + i * PAGE);
        assert_eq!(
            sim.page_state(at),
            Some(PageState::Mapped(Protection::ReadWrite)),
            "page {i} of a fresh allocation"
        );
    }
}
