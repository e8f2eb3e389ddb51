//! Pinning a caller to one of a fixed number of slots (CPUs): what
//! [`CpuCaches`](crate::sync::CpuCaches) needs from the build to use one set
//! of magazines per CPU without a lock.

use crate::atomic::{AtomicBool, Ordering};

use super::cpumags::{CpuMags, Popped, Pushed};
use super::magazine::Magazine;

/// Where one size class's [`CpuMags`] of every slot lie: slot `i`'s at
/// `base + i * stride` bytes. What [`CpuPin`]'s magazine operations work on.
///
/// # Invariants
///
/// For every `i < slots`, `base + i * stride` is the address of an
/// initialized `CpuMags`, aligned for it, that lives as long as the
/// `CpuCaches` that made this value, and is only accessed through
/// [`CpuPin`]'s magazine operations (or exclusively through `&mut` of its
/// owner).
#[derive(Debug, Clone, Copy)]
pub struct MagSlots {
    base: *mut u8,
    stride: usize,
    slots: usize,
}

impl MagSlots {
    /// The class's `CpuMags` of slot 0, `stride` bytes apart, `slots` of
    /// them (how [`CpuCaches`](crate::sync::CpuCaches) describes its
    /// magazines; also for a pin's own tests).
    ///
    /// # Safety
    ///
    /// As the type's invariants state, for as long as the value is used.
    pub unsafe fn new(base: *mut u8, stride: usize, slots: usize) -> Self {
        // INVARIANT: the caller's contract.
        MagSlots { base, stride, slots }
    }

    /// The address of slot 0's `CpuMags`.
    #[inline]
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Bytes from one slot's `CpuMags` to the next one's.
    #[inline]
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// How many slots there are.
    #[inline]
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Slot `slot`'s `CpuMags`.
    ///
    /// # Safety
    ///
    /// `slot < self.slots()`, and the caller has exclusive use of that
    /// slot's magazines for as long as it uses the reference (it holds the
    /// slot's pin).
    #[inline]
    #[expect(clippy::mut_from_ref, reason = "the slot's pin makes the reference unique")]
    pub unsafe fn at(&self, slot: usize) -> &mut CpuMags {
        debug_assert!(slot < self.slots);
        // SAFETY: `slot < slots`, so this is an initialized, aligned
        // `CpuMags` (type invariant), and the caller's exclusive use of the
        // slot makes the reference unique.
        unsafe { &mut *self.base.add(slot * self.stride).cast::<CpuMags>() }
    }
}

/// Exclusive use of one of [`slots`](CpuPin::slots) slots, for the length
/// of a short section that never sleeps.
///
/// In the kernel a slot is a CPU: pinning disables preemption and returns
/// the current CPU's number, unpinning enables preemption again. In user
/// space, where threads cannot keep other threads off their CPU, each slot
/// has a try-lock ([`SlotFlag`]) and pinning takes a free one, starting at
/// the CPU the thread runs on.
///
/// The magazine operations [`pop`](CpuPin::pop), [`push`](CpuPin::push),
/// [`spill`](CpuPin::spill) and [`install`](CpuPin::install) are how
/// [`CpuCaches`](crate::sync::CpuCaches) touches a slot's magazines: by
/// default each pins a slot, runs the [`CpuMags`] method of the same name
/// on it and unpins. A pin may instead run them without taking a slot, as
/// restartable sequences in user space do (each reads the word and rounds
/// of the slot of the CPU it runs on and commits with one store of the
/// word, starting again if the thread was preempted or moved before that
/// store).
///
/// # Safety
///
/// Implementors guarantee that:
/// - [`slots`](CpuPin::slots) is at least 1 and never changes;
/// - [`pin`](CpuPin::pin) returns a slot index below `slots()`;
/// - between `pin` returning `i` and the matching [`unpin(i)`](CpuPin::unpin),
///   no other call to `pin` on the same value, from any thread or context,
///   returns `i` (kernel: preemption disabled, and pins only from task
///   context; user space: a per-slot try-lock);
/// - every write made between `pin` returning `i` and `unpin(i)` is visible
///   to whoever pins `i` next (same CPU, or release/acquire ordering);
/// - the magazine operations either all keep their default or are all
///   overridden; overridden, each has exactly the effect of the `CpuMags`
///   method of the same name on the `CpuMags` of one slot below
///   `mags.slots()` (or none, returning `Unpinned` or `false`), atomically
///   with respect to every other magazine operation on the same value: no
///   two of them ever act on one slot at the same time, and each one's
///   effects are visible to the next one on that slot. They touch no other
///   memory of the slots, and `pin` is then never used on slots that they
///   use.
pub unsafe trait CpuPin: Sync {
    /// How many slots there are.
    fn slots(&self) -> usize;

    /// Take a slot for exclusive use and return its index. May spin, never
    /// sleeps.
    fn pin(&self) -> usize;

    /// Give back `slot`.
    ///
    /// # Safety
    ///
    /// `slot` was returned by [`pin`](CpuPin::pin) on this value, in this
    /// task, and has not been given back since.
    unsafe fn unpin(&self, slot: usize);

    /// [`CpuMags::pop`] on a slot of `mags`.
    ///
    /// # Safety
    ///
    /// `mags.slots() == self.slots()`, and every access to the magazines of
    /// `mags` is made through this value's magazine operations (or through
    /// exclusive ownership of all of them).
    #[inline]
    unsafe fn pop(&self, mags: MagSlots) -> Popped {
        let held = Pinned::new(self);
        // SAFETY: the pin holds slot `held.slot() < slots() == mags.slots()`
        // until `held` drops, after the reference's last use.
        unsafe { mags.at(held.slot()) }.pop()
    }

    /// [`CpuMags::push`] on a slot of `mags`.
    ///
    /// # Safety
    ///
    /// As for [`pop`](CpuPin::pop).
    #[inline]
    unsafe fn push(&self, mags: MagSlots, addr: usize) -> Pushed {
        let held = Pinned::new(self);
        // SAFETY: as in `pop`.
        unsafe { mags.at(held.slot()) }.push(addr)
    }

    /// [`CpuMags::spill`] on a slot of `mags` (`false` also when the pin
    /// cannot place the caller).
    ///
    /// # Safety
    ///
    /// As for [`pop`](CpuPin::pop).
    #[inline]
    unsafe fn spill(&self, mags: MagSlots, out: &mut Magazine) -> bool {
        let held = Pinned::new(self);
        // SAFETY: as in `pop`.
        unsafe { mags.at(held.slot()) }.spill(out)
    }

    /// [`CpuMags::install`] on a slot of `mags`.
    ///
    /// # Safety
    ///
    /// As for [`pop`](CpuPin::pop), and `mag` is not empty (as
    /// [`CpuMags::install`] asks: an empty magazine is never installed, so
    /// an implementation need not say what installing one does).
    #[inline]
    unsafe fn install(&self, mags: MagSlots, mag: &Magazine) -> bool {
        let held = Pinned::new(self);
        // SAFETY: as in `pop`.
        unsafe { mags.at(held.slot()) }.install(mag)
    }
}

/// A pinned slot, given back when dropped.
pub(crate) struct Pinned<'p, P: CpuPin + ?Sized> {
    pin: &'p P,
    slot: usize,
}

impl<'p, P: CpuPin + ?Sized> Pinned<'p, P> {
    #[inline]
    pub(crate) fn new(pin: &'p P) -> Self {
        Pinned { pin, slot: pin.pin() }
    }

    /// The slot held (below `pin.slots()`).
    #[inline]
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }
}

impl<P: CpuPin + ?Sized> Drop for Pinned<'_, P> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `new` got `slot` from `pin` and this guard gives it back
        // once, on the same task.
        unsafe { self.pin.unpin(self.slot) }
    }
}

/// A try-lock for one slot, alone on its cache line: the building block of
/// a [`CpuPin`] for user space.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct SlotFlag {
    held: AtomicBool,
}

impl SlotFlag {
    /// A free slot.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        SlotFlag { held: AtomicBool::new(false) }
    }

    /// A free slot (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        SlotFlag { held: AtomicBool::new(false) }
    }

    /// Take the slot if it is free (acquire ordering).
    #[inline]
    pub fn try_take(&self) -> bool {
        !self.held.load(Ordering::Relaxed)
            && self.held.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Give the slot back (release ordering).
    ///
    /// # Safety
    ///
    /// The caller took it with [`try_take`](Self::try_take) and has not given
    /// it back since.
    #[inline]
    pub unsafe fn release(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Take the first free slot of `flags`, looking at `hint` first (reduced
    /// into range) and then at the ones after it, once round. `None` when
    /// every slot was taken.
    #[inline]
    pub fn take_any(flags: &[SlotFlag], hint: usize) -> Option<usize> {
        let n = flags.len();
        let start = if hint < n { hint } else { hint.checked_rem(n)? };
        (start..n).chain(0..start).find(|&i| flags[i].try_take())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::vec::Vec;

    use super::*;

    /// A test [`CpuPin`]: a [`SlotFlag`] per slot, each thread starting at a
    /// slot derived from its id, moving on when that one is busy.
    pub(crate) struct TestPin {
        flags: Box<[SlotFlag]>,
    }

    impl TestPin {
        pub(crate) fn new(slots: usize) -> Self {
            assert!(slots > 0);
            TestPin { flags: (0..slots).map(|_| SlotFlag::new()).collect() }
        }
    }

    /// A hash of the thread's id: each thread starts at a slot of its own.
    fn thread_hint() -> usize {
        let mut h = std::hash::DefaultHasher::new();
        std::thread::current().id().hash(&mut h);
        h.finish() as usize
    }

    // SAFETY: `slots` is the fixed, non-zero length of `flags`; `pin` returns
    // an index whose flag it took (exclusive until released, acquire/release
    // ordered); `unpin` releases the flag its caller took.
    unsafe impl CpuPin for TestPin {
        fn slots(&self) -> usize {
            self.flags.len()
        }
        fn pin(&self) -> usize {
            loop {
                if let Some(i) = SlotFlag::take_any(&self.flags, thread_hint()) {
                    return i;
                }
                std::thread::yield_now();
            }
        }
        unsafe fn unpin(&self, slot: usize) {
            // SAFETY: the caller pinned `slot` (this method's contract).
            unsafe { self.flags[slot].release() }
        }
    }

    #[test]
    fn take_any_starts_at_the_hint_and_wraps() {
        let flags: Vec<SlotFlag> = (0..3).map(|_| SlotFlag::new()).collect();
        assert_eq!(SlotFlag::take_any(&flags, 1), Some(1));
        assert_eq!(SlotFlag::take_any(&flags, 1), Some(2));
        assert_eq!(SlotFlag::take_any(&flags, 7), Some(0), "hint 7 is slot 1, then wraps");
        assert_eq!(SlotFlag::take_any(&flags, 0), None);
        // SAFETY: slot 2 was taken above.
        unsafe { flags[2].release() };
        assert_eq!(SlotFlag::take_any(&flags, 0), Some(2));
        assert_eq!(SlotFlag::take_any(&[], 0), None);
    }

    #[test]
    fn a_pinned_slot_is_never_pinned_twice() {
        let pin = TestPin::new(2);
        let inside: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        let g = Pinned::new(&pin);
                        assert!(g.slot() < 2);
                        assert_eq!(inside[g.slot()].fetch_add(1, Ordering::SeqCst), 0);
                        inside[g.slot()].fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
    }
}
