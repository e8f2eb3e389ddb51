//! CPU pins for tests of the per-CPU quantum caches (`CpuCaches`), where
//! a test, not the CPU, says which slot an operation acts on: [`OneSlot`]
//! (every thread on one slot) and [`Placed`] (a script says, per magazine
//! operation, which slot it acts on or that it is unplaced, as `RseqPin`
//! leaves a thread it cannot place). Shared by the root crate's and the
//! user-space crate's tests.
//!
//! With the `std` feature, also what those tests' scripts and set-ups
//! share: `by_thread` (a script that places each thread on the slot it
//! last named with `set_slot`), `alloc_n_on`, `free_all_and_empty` and
//! `reclaim_and_check_empty`.

use vmspace::qcache::{CpuMags, CpuPin, MagSlots, Magazine, Popped, Pushed, SlotFlag};
#[cfg(feature = "std")]
pub use with_std::{alloc_n_on, by_thread, free_all_and_empty, reclaim_and_check_empty, set_slot};

/// One slot behind a try-lock (the pin the `CpuCaches` doc example shows).
pub struct OneSlot(pub SlotFlag);
// SAFETY: one slot, handed out only while its flag is taken.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {
            core::hint::spin_loop();
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
    /// [`CpuPin::pop`].
    Pop,
    /// [`CpuPin::push`].
    Push,
    /// [`CpuPin::spill`].
    Spill,
    /// [`CpuPin::install`].
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
    /// `N` slots, each operation placed as `place` says.
    pub fn new(place: fn(Op) -> Option<usize>) -> Self {
        Placed { flags: core::array::from_fn(|_| SlotFlag::new()), place }
    }

    fn take(&self, i: usize) {
        while SlotFlag::take_any(core::slice::from_ref(&self.flags[i]), 0).is_none() {
            core::hint::spin_loop();
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

#[cfg(feature = "std")]
mod with_std {
    use core::cell::Cell;
    use std::vec::Vec;

    use vmspace::arena::{Source, Store};
    use vmspace::qcache::CpuPin;
    use vmspace::sync::{CpuCaches, RawLock, SyncArena, Waiter};
    use vmspace::{Addr, Size};

    use super::Op;

    std::thread_local! {
        /// The slot this thread's magazine operations act on (`None`:
        /// unplaced).
        static SLOT: Cell<Option<usize>> = const { Cell::new(Some(0)) };
    }

    /// A `Placed` script: every operation of this thread on the slot it
    /// last named with [`set_slot`] (slot 0 until it names one), or
    /// unplaced after `set_slot(None)`.
    pub fn by_thread(_: Op) -> Option<usize> {
        SLOT.with(Cell::get)
    }

    /// Place this thread's magazine operations on slot `s` (`None`:
    /// leave them unplaced), for [`by_thread`].
    pub fn set_slot(s: Option<usize>) {
        SLOT.with(|c| c.set(s));
    }

    /// This thread placed on `slot` (as [`set_slot`]; it stays there),
    /// `n` allocations of `size` through `cpu`, each of which must
    /// succeed.
    pub fn alloc_n_on<L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin>(
        slot: Option<usize>,
        cpu: &CpuCaches<'_, L, W, S, I, P>,
        n: usize,
        size: Size,
    ) -> Vec<Addr> {
        set_slot(slot);
        (0..n).map(|_| cpu.alloc(size).unwrap()).collect()
    }

    /// Free `live` (each of `size`) through `cpu`, drop the caches,
    /// reclaim, and check the arena: consistent, nothing allocated.
    pub fn free_all_and_empty<L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin>(
        s: &SyncArena<L, W, S, I>,
        cpu: CpuCaches<'_, L, W, S, I, P>,
        live: impl IntoIterator<Item = Addr>,
        size: Size,
    ) {
        for a in live {
            cpu.free(a, size).unwrap();
        }
        drop(cpu);
        reclaim_and_check_empty(s);
    }

    /// Reclaim the caches' free slabs, and check the arena: consistent,
    /// nothing allocated.
    pub fn reclaim_and_check_empty<L: RawLock, W: Waiter, S: Store, I: Source>(
        s: &SyncArena<L, W, S, I>,
    ) {
        s.reclaim();
        s.check().unwrap();
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    }
}
