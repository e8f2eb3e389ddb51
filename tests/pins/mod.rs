//! CPU pins for the per-CPU quantum caches (`CpuCaches`), and the shared
//! arena over slices they cache for, as the round 32 to 34 tests of
//! `CpuCaches` set them up: `OneSlot` and `Placed` (from
//! `vmspace_workload::pins`, which the user-space crate's tests share),
//! `Setup` and `Slices` (the arena) and `with_one_slot`; for the round 37
//! to 39 tests of unplaced callers, `placed` (caches behind a `Placed<2>`
//! that `set_slot` steers, thread by thread), `free_slab_of`, `hold` and
//! `release` (a worker's round, against a shadow set) and `Spin`.
// Each test binary that declares this module uses only some of it (a file
// with a scripted pin has no use for `with_one_slot`): the rest would be
// dead code there (and a pin it re-exports, an unused import).
#![allow(dead_code, unused_imports)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vmspace::arena::{Arena, ArenaError, NoSource, SliceStore};
use vmspace::qcache::{QCacheConfig, QCacheStats, SlotFlag};
use vmspace::sync::{CpuCaches, NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Size};
pub use vmspace_workload::pins::{
    alloc_n_on, by_thread, free_all_and_empty, reclaim_and_check_empty, set_slot, OneSlot, Op,
    Placed,
};

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

/// Per-CPU caches over `s` behind a `Placed<2>` whose script is
/// `by_thread`: each thread's operations on the slot it names with
/// `set_slot` (slot 0 until then; `None`: unplaced).
pub fn placed<'s, 'a>(s: &'s Shared<'a>, mags: SliceStore<'a>) -> Cpu<'s, 'a, Placed<2>> {
    placed_by(s, mags, by_thread)
}

/// Per-CPU caches over `s` behind a `Placed<2>` whose script is `script`.
pub fn placed_by<'s, 'a>(
    s: &'s Shared<'a>,
    mags: SliceStore<'a>,
    script: fn(Op) -> Option<usize>,
) -> Cpu<'s, 'a, Placed<2>> {
    CpuCaches::new(s, Placed::new(script), mags).unwrap()
}

/// A slab of the class of `size` wholly free in the slabs: slot 1
/// allocates once (the slab), the object is freed unplaced (back to its
/// slab) and a flush puts the slot's rest back in the slab. This thread is
/// left unplaced.
pub fn free_slab_of(cpu: &mut Cpu<'_, '_, Placed<2>>, size: Size) {
    set_slot(Some(1));
    let a = cpu.alloc(size).unwrap();
    set_slot(None);
    cpu.free(a, size).unwrap();
    cpu.flush();
}

/// A worker's allocations for one round: `size` from `alloc` until it
/// fails with `NoSpace` or `most` are held (any other error panics), each
/// address new to `shadow` (asserted: no object live twice). What is held,
/// and the calls made (the failure included).
pub fn hold(
    mut alloc: impl FnMut(Size) -> Result<Addr, ArenaError>,
    size: Size,
    most: usize,
    shadow: &Mutex<HashSet<Addr>>,
) -> (Vec<Addr>, u64) {
    let (mut held, mut calls) = (Vec::new(), 0u64);
    while held.len() < most {
        calls += 1;
        match alloc(size) {
            Ok(a) => {
                assert!(shadow.lock().unwrap().insert(a), "{a:?} live twice");
                held.push(a);
            }
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    (held, calls)
}

/// Free what `hold` gave (each of `size`) with `free`, each taken out of
/// `shadow` (asserted: it was live).
pub fn release(
    held: Vec<Addr>,
    size: Size,
    shadow: &Mutex<HashSet<Addr>>,
    mut free: impl FnMut(Addr, Size) -> Result<(), ArenaError>,
) {
    for a in held {
        assert!(shadow.lock().unwrap().remove(&a));
        free(a, size).unwrap();
    }
}

/// A barrier of two threads that spins (a sleeping one wakes too late
/// for the two calls to meet).
#[derive(Default)]
pub struct Spin(AtomicUsize);

impl Spin {
    pub fn wait(&self) {
        let n = self.0.fetch_add(1, Ordering::AcqRel) + 1;
        let target = n.div_ceil(2) * 2;
        while self.0.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
    }
}
