//! CPU pins for the per-CPU quantum caches (`CpuCaches`), and the shared
//! arena over mmap-backed page stores they cache for, as the round 32 to
//! 34 tests of waiting cached-size allocations set them up: `OneSlot`
//! (every thread on one slot), `Placed` (a script says, per magazine
//! operation, which slot it acts on or that it is unplaced), `store`,
//! `cached`, `take_all` and `until_waiting`.
//!
//! (The pins are those of the root crate's tests/pins/mod.rs: test
//! modules are not shared between the workspace's crates.)
// Each test binary that declares this module uses only some of it (a file
// with a one-slot pin has no use for `Placed`): the rest would be dead code
// there.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Source};
use vmspace::qcache::{
    CpuMags, CpuPin, MagSlots, Magazine, Popped, Pushed, QCacheConfig, SlotFlag,
};
use vmspace::sync::CpuCaches;
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, UserArena};

pub type Store = PageStore<MmapBackend>;

/// A page store of up to 4 MiB.
pub fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(4 << 20)).unwrap()
}

/// A shared arena `name` of quantum `quantum` with one span of `span`
/// bytes at 1 TiB, and quantum caches for 1 to 4 quanta.
pub fn cached(name: &'static str, quantum: usize, span: usize) -> UserArena<Store, NoSource> {
    let mut a = Arena::new(name, Size(quantum), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(span)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

/// Every object of `size` there is, taken through `cpu` (its magazines
/// end empty, the arena full), and how many allocations that took (the
/// last one failed).
pub fn take_all<P: CpuPin>(
    cpu: &CpuCaches<'_, ParkingLock, CondvarWaiter, Store, NoSource, P>,
    size: Size,
) -> (Vec<Addr>, u64) {
    let (mut xs, mut made) = (Vec::new(), 0);
    loop {
        made += 1;
        match cpu.alloc(size) {
            Ok(x) => xs.push(x),
            Err(ArenaError::NoSpace { .. }) => return (xs, made),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Wait until an allocation waits on `s` (30 s at most, a bound for
/// liveness only), and assert that one does.
pub fn until_waiting<I: Source>(s: &UserArena<Store, I>) {
    let start = Instant::now();
    while s.waiting() == 0 && start.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    assert_eq!(s.waiting(), 1, "the allocation waits");
}

/// One slot behind a try-lock.
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
        // SAFETY: `pin` took the flag.
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
