//! CPU pins for the per-CPU quantum caches (`CpuCaches`), and the shared
//! arena over slices they cache for, as the round 32 to 34 tests of
//! `CpuCaches` set them up: `OneSlot` (every thread on one slot), `Placed`
//! (a script says, per magazine operation, which slot it acts on or that
//! it is unplaced), `Setup` and `Slices` (the arena) and `with_one_slot`.
//!
//! (userspace/tests/pins/mod.rs has the same pins for the vmspace-user
//! tests: test modules are not shared between the workspace's crates.)
// Each test binary that declares this module uses only some of it (a file
// with a scripted pin has no use for `with_one_slot`): the rest would be
// dead code there.
#![allow(dead_code)]

use vmspace::arena::{Arena, NoSource, SliceStore};
use vmspace::qcache::{
    CpuMags, CpuPin, MagSlots, Magazine, Popped, Pushed, QCacheConfig, QCacheStats, SlotFlag,
};
use vmspace::sync::{CpuCaches, NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Size};

/// The shared arena, over slices.
pub type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;
/// Per-CPU caches over a `Shared`, behind the pin `P`.
pub type Cpu<'s, 'a, P = OneSlot> = CpuCaches<'s, SpinLock, NoWait, SliceStore<'a>, NoSource, P>;

/// One slot behind a try-lock (the pin the `CpuCaches` doc example shows).
pub struct OneSlot(pub SlotFlag);
// SAFETY: one slot, handed out only while its flag is taken.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {
            std::hint::spin_loop();
        }
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: `pin` took the flag, nothing released it since.
        unsafe { self.0.release() }
    }
}

/// A magazine operation, as `Placed`'s script is asked about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Pop,
    Push,
    Spill,
    Install,
}

/// `N` slots, each behind a try-lock, with the magazine operations
/// overridden: for each one the script `place` (called once per
/// operation) says which slot it acts on, or `None`: unplaced, it touches
/// nothing (`Unpinned`, `false`), as `RseqPin` leaves a thread on a CPU
/// numbered past its slots.
pub struct Placed<const N: usize> {
    flags: [SlotFlag; N],
    place: fn(Op) -> Option<usize>,
}

impl<const N: usize> Placed<N> {
    pub fn new(place: fn(Op) -> Option<usize>) -> Self {
        Placed { flags: core::array::from_fn(|_| SlotFlag::new()), place }
    }

    fn take(&self, i: usize) {
        while SlotFlag::take_any(core::slice::from_ref(&self.flags[i]), 0).is_none() {
            std::hint::spin_loop();
        }
    }

    /// Run `f` on the slot of `mags` the script places `op` on, with that
    /// slot's flag taken; `None` when it leaves `op` unplaced.
    fn on<R>(&self, op: Op, mags: MagSlots, f: impl FnOnce(&mut CpuMags) -> R) -> Option<R> {
        let i = (self.place)(op)?;
        assert!(i < N, "the script placed {op:?} on slot {i} of {N}");
        self.take(i);
        // SAFETY: `i < N = slots` (asserted); the slot's flag gives
        // exclusive use.
        let r = f(unsafe { mags.at(i) });
        // SAFETY: taken above, not released since.
        unsafe { self.flags[i].release() };
        Some(r)
    }
}

// SAFETY: `N` slots (the tests use 1 or 2); every placed magazine operation
// runs the `CpuMags` method of its name on one slot below `N` with that
// slot's flag taken (so no two act on one slot at once, and the flag's
// acquire and release order them); an unplaced one touches nothing and
// says so (`Unpinned`, `false`); `pin` is never used by `CpuCaches`, and
// takes slot 0's flag.
unsafe impl<const N: usize> CpuPin for Placed<N> {
    fn slots(&self) -> usize {
        N
    }
    fn pin(&self) -> usize {
        self.take(0);
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: `pin` took slot 0's flag, nothing released it since.
        unsafe { self.flags[0].release() }
    }
    unsafe fn pop(&self, mags: MagSlots) -> Popped {
        self.on(Op::Pop, mags, |m| m.pop()).unwrap_or(Popped::Unpinned)
    }
    unsafe fn push(&self, mags: MagSlots, addr: usize) -> Pushed {
        self.on(Op::Push, mags, |m| m.push(addr)).unwrap_or(Pushed::Unpinned)
    }
    unsafe fn spill(&self, mags: MagSlots, out: &mut Magazine) -> bool {
        self.on(Op::Spill, mags, |m| m.spill(out)).unwrap_or(false)
    }
    unsafe fn install(&self, mags: MagSlots, mag: &Magazine) -> bool {
        self.on(Op::Install, mags, |m| m.install(mag)).unwrap_or(false)
    }
}

/// What `Slices::shared` builds: an arena `name` of quantum `quantum` with
/// one span of `span` bytes at 1 GiB, `meta` bytes for each of its two
/// metadata stores, and quantum caches for 1 to `classes` quanta.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub name: &'static str,
    pub quantum: usize,
    pub span: usize,
    pub meta: usize,
    pub classes: usize,
}

impl Setup {
    /// 64 KiB for each metadata store, caches for 1 to 4 quanta.
    pub fn new(name: &'static str, quantum: usize, span: usize) -> Self {
        Setup { name, quantum, span, meta: 1 << 16, classes: 4 }
    }
}

/// The slices a `Setup`'s arena is kept in: its two metadata stores, its
/// quantum caches' store (64 KiB) and a store for per-CPU magazines
/// (16 KiB).
pub struct Slices {
    setup: Setup,
    tags: Vec<u8>,
    hash: Vec<u8>,
    qc: Vec<u8>,
    mags: Vec<u8>,
}

impl Slices {
    pub fn new(setup: Setup) -> Self {
        Slices {
            setup,
            tags: vec![0u8; setup.meta],
            hash: vec![0u8; setup.meta],
            qc: vec![0u8; 1 << 16],
            mags: vec![0u8; 1 << 14],
        }
    }

    /// The shared arena the setup says, and the store for per-CPU
    /// magazines.
    pub fn shared(&mut self) -> (Shared<'_>, SliceStore<'_>) {
        let Slices { setup, tags, hash, qc, mags } = self;
        let mut a = Arena::new(
            setup.name,
            Size(setup.quantum),
            SliceStore::new(tags),
            SliceStore::new(hash),
            NoSource,
        )
        .unwrap();
        a.add(Addr(1 << 30), Size(setup.span)).unwrap();
        let s: Shared<'_> = SyncArena::with_quantum_caches(
            a,
            QCacheConfig::new(setup.classes, SliceStore::new(qc)),
        )
        .unwrap();
        (s, SliceStore::new(mags))
    }
}

/// Build the arena (`Slices::shared`) and per-CPU caches behind a
/// `OneSlot`, run `f` with them, drop the caches, and return the
/// statistics after (the caches flush their counts as they drop); then
/// reclaim and check the arena.
pub fn with_one_slot<R>(
    setup: Setup,
    f: impl FnOnce(&Shared<'_>, &Cpu<'_, '_>) -> R,
) -> (R, QCacheStats) {
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), mags).unwrap();
    let r = f(&s, &cpu);
    drop(cpu);
    let st = s.qcache_stats();
    s.reclaim();
    s.check().unwrap();
    (r, st)
}
