//! CPU pins for the per-CPU quantum caches (`CpuCaches`), and the shared
//! arena over slices they cache for, as the round 32 to 34 tests of
//! `CpuCaches` set them up: `OneSlot` and `Placed` (from
//! `vmspace_workload::pins`, which the user-space crate's tests share),
//! `Setup` and `Slices` (the arena) and `with_one_slot`.
// Each test binary that declares this module uses only some of it (a file
// with a scripted pin has no use for `with_one_slot`): the rest would be
// dead code there (and a pin it re-exports, an unused import).
#![allow(dead_code, unused_imports)]

use vmspace::arena::{Arena, NoSource, SliceStore};
use vmspace::qcache::{QCacheConfig, QCacheStats, SlotFlag};
use vmspace::sync::{CpuCaches, NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Size};
pub use vmspace_workload::pins::{OneSlot, Op, Placed};

/// The shared arena, over slices.
pub type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;
/// Per-CPU caches over a `Shared`, behind the pin `P`.
pub type Cpu<'s, 'a, P = OneSlot> = CpuCaches<'s, SpinLock, NoWait, SliceStore<'a>, NoSource, P>;

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
