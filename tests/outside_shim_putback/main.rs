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

mod chunk_map;
mod vm_arena;
