//! Fault injection around any backend: fail the Nth call, fail with a seeded
//! probability, or fail only chosen kinds of operation.
//!
//! [`FaultInjector`] wraps a [`PageOps`] backend and makes chosen calls return
//! [`ShimError::Injected`] (or, told to, a shortage or an OS error:
//! [`InjectedError`]) *before* they reach the backend, so the backend's
//! state is untouched by a failed call, exactly as the trait promises. It keeps
//! its state in atomics, so it can sit under structures shared between threads
//! and works in the kernel as well as in user space. With
//! [`FaultShape::PartWay`] an injected `protect` or `unmap` (deferred or
//! not) first changes part of its range, as a system backend's may.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::addr::Size;
use crate::error::{Op, ShimError};
use crate::ops::{PageOps, Protection};
use crate::range::Range;

/// How an injected failure of a `protect` or an `unmap` leaves its range
/// ([`FaultInjector::set_shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultShape {
    /// The call fails before it reaches the backend: nothing changes (the
    /// default).
    #[default]
    Clean,
    /// The call fails part way, as Linux's `mprotect` may when a split
    /// would pass `vm.max_map_count` (the exception [`PageOps`] allows): a
    /// call of `n` pages, `n` at least 2, first changes its first `k` pages
    /// through the backend, `1 <= k < n` (drawn from a stream of its own,
    /// so that a seed fails the same calls whatever the shape), then
    /// fails. A `protect` changes them to the protection asked; an `unmap`
    /// decommits them and leaves them mapped [`Protection::None`] (the
    /// backend unmaps, maps and protects them: their contents read zero
    /// once accessible again, as after the mmap backend's decommit). A
    /// `unmap_deferred` fails as an `unmap` does (the mmap backend's is
    /// one). A one-page call fails cleanly, as do the other operations.
    /// Layers that track protections must put the old
    /// one back; this shape is how their tests reach that path. Should the
    /// backend itself fail while changing the prefix, what it did stays:
    /// a `protect` part done, or an unmap's prefix unmapped (the injector
    /// cannot keep the contract then, and does not count the call in
    /// [`changed_part_way`](FaultInjector::changed_part_way)); an unmap's
    /// prefix is never left read-write, unless the backend refuses to
    /// unmap it again after refusing to protect it.
    PartWay,
}

/// What an injected failure returns ([`FaultInjector::set_error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InjectedError {
    /// [`ShimError::Injected`] naming the operation (the default): a
    /// failure no layer mistakes for a real one.
    #[default]
    Marker,
    /// A shortage, as a system backend reports one:
    /// [`ShimError::OutOfAddressSpace`] (the size asked) for a `reserve`,
    /// [`ShimError::OutOfMemory`] (the call's range) for the others. The
    /// layers that react to a shortage (`KeepFree` gives its kept spans
    /// back and asks again) are reached this way.
    Shortage,
    /// [`ShimError::Os`] with the operation and this error number, taken
    /// as it is, as a backend reports a refused call (the mmap backend a
    /// positive `errno`, the kernel's a negative error code).
    Os(i32),
}

/// A backend with faults injected on demand.
///
/// Calls of the operations selected by [`only`](Self::only) (all of them by
/// default) are *eligible*. Eligible calls are counted; the one whose number
/// equals the target set by [`fail_nth`](Self::fail_nth) fails, and each one
/// fails with the probability set by [`fail_randomly`](Self::fail_randomly).
/// How a failed `protect` or `unmap` leaves its range is the
/// [`FaultShape`] set by [`set_shape`](Self::set_shape), and what it
/// returns the [`InjectedError`] set by [`set_error`](Self::set_error).
#[derive(Debug)]
pub struct FaultInjector<P> {
    inner: P,
    kinds: AtomicU8,
    eligible_calls: AtomicU64,
    fail_at: AtomicU64,
    rate_per_million: AtomicU32,
    rng: AtomicU64,
    injected: AtomicU64,
    /// The shape is [`FaultShape::PartWay`].
    part_way: AtomicBool,
    changed_part_way: AtomicU64,
    /// The generator of the pages a failure part way changes.
    part_rng: AtomicU64,
    /// What a failure returns: [`ERROR_MARKER`], [`ERROR_SHORTAGE`] or
    /// [`ERROR_OS`] in the high 32 bits, the errno in the low 32 (one word,
    /// so that a call racing with [`set_error`](Self::set_error) sees one
    /// setting or the other, never a kind of one and the errno of another).
    error: AtomicU64,
}

const ERROR_MARKER: u64 = 0;
const ERROR_SHORTAGE: u64 = 1;
const ERROR_OS: u64 = 2;

const ALL_KINDS: u8 = (1 << Op::ALL.len()) - 1;

impl<P: PageOps> FaultInjector<P> {
    /// Wrap `inner`, injecting nothing until told to.
    pub fn new(inner: P) -> Self {
        FaultInjector {
            inner,
            kinds: AtomicU8::new(ALL_KINDS),
            eligible_calls: AtomicU64::new(0),
            fail_at: AtomicU64::new(0),
            rate_per_million: AtomicU32::new(0),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            injected: AtomicU64::new(0),
            part_way: AtomicBool::new(false),
            changed_part_way: AtomicU64::new(0),
            part_rng: AtomicU64::new(PART_SEED),
            error: AtomicU64::new(ERROR_MARKER << 32),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Make only the listed operations eligible for faults (and for counting).
    pub fn only(&self, ops: &[Op]) {
        let mask = ops.iter().fold(0u8, |m, op| m | op.bit());
        self.kinds.store(mask, Ordering::Relaxed);
    }

    /// Restart the count of eligible calls at zero and fail the `n`th eligible
    /// call from now (1-based). `n == 0` disarms it.
    pub fn fail_nth(&self, n: u64) {
        self.eligible_calls.store(0, Ordering::Relaxed);
        self.fail_at.store(n, Ordering::Relaxed);
    }

    /// Fail each eligible call with probability `per_million / 1_000_000`,
    /// drawn from a generator seeded with `seed` (the same seed gives the same
    /// failures for the same sequence of calls).
    pub fn fail_randomly(&self, seed: u64, per_million: u32) {
        self.rng.store(seed, Ordering::Relaxed);
        self.part_rng.store(seed ^ PART_SEED, Ordering::Relaxed);
        self.rate_per_million.store(per_million.min(1_000_000), Ordering::Relaxed);
    }

    /// How later injected failures of `protect` and `unmap` leave their
    /// range.
    pub fn set_shape(&self, shape: FaultShape) {
        self.part_way.store(shape == FaultShape::PartWay, Ordering::Relaxed);
    }

    /// The shape set by [`set_shape`](Self::set_shape).
    pub fn shape(&self) -> FaultShape {
        match self.part_way.load(Ordering::Relaxed) {
            true => FaultShape::PartWay,
            false => FaultShape::Clean,
        }
    }

    /// What later injected failures return.
    pub fn set_error(&self, error: InjectedError) {
        let (kind, errno) = match error {
            InjectedError::Marker => (ERROR_MARKER, 0),
            InjectedError::Shortage => (ERROR_SHORTAGE, 0),
            InjectedError::Os(errno) => (ERROR_OS, errno),
        };
        self.error.store(kind << 32 | u64::from(errno as u32), Ordering::Relaxed);
    }

    /// The error set by [`set_error`](Self::set_error).
    pub fn error(&self) -> InjectedError {
        let word = self.error.load(Ordering::Relaxed);
        match word >> 32 {
            ERROR_SHORTAGE => InjectedError::Shortage,
            ERROR_OS => InjectedError::Os(word as u32 as i32),
            _ => InjectedError::Marker,
        }
    }

    /// Stop injecting faults, make every operation eligible again,
    /// failures clean and [`InjectedError::Marker`].
    pub fn clear(&self) {
        self.fail_at.store(0, Ordering::Relaxed);
        self.rate_per_million.store(0, Ordering::Relaxed);
        self.kinds.store(ALL_KINDS, Ordering::Relaxed);
        self.part_way.store(false, Ordering::Relaxed);
        self.set_error(InjectedError::Marker);
    }

    /// Eligible calls counted since the last [`fail_nth`](Self::fail_nth).
    pub fn eligible_calls(&self) -> u64 {
        self.eligible_calls.load(Ordering::Relaxed)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Injected failures so far that changed part of their range first
    /// ([`FaultShape::PartWay`]).
    pub fn changed_part_way(&self) -> u64 {
        self.changed_part_way.load(Ordering::Relaxed)
    }

    /// A failure of a `protect` of `range` to `protect_to` (`None`: of an
    /// `unmap`) being injected: under [`FaultShape::PartWay`] change a
    /// prefix of it first, never all of it.
    ///
    /// # Safety
    ///
    /// The caller of the failing call upholds its contract for `range`.
    unsafe fn change_part(&self, range: Range, protect_to: Option<Protection>) {
        if !self.part_way.load(Ordering::Relaxed) {
            return;
        }
        let page = self.inner.page_size().0;
        let pages = range.size().0 / page;
        if pages < 2 {
            return;
        }
        let state = self.part_rng.fetch_add(SEED_STEP, Ordering::Relaxed);
        let draw = seed_mix(state.wrapping_add(SEED_STEP));
        // `pages - 1` fits: `pages` came from a `usize`.
        let k = 1 + (draw % (pages as u64 - 1)) as usize;
        let Ok(prefix) = Range::from_size(range.base(), Size(k * page)) else { return };
        // The prefix is whole pages of the caller's range, under the
        // caller's contract for the whole: mapped pages of one reservation;
        // for an unmap, nothing accesses them until they are mapped again,
        // so they may be decommitted.
        let changed = if let Some(prot) = protect_to {
            // SAFETY: see above; mapped pages, as `protect` asks.
            unsafe { self.inner.protect(prefix, prot) }.is_ok()
        } else {
            // An unmap's prefix: decommitted, left mapped inaccessible.
            // SAFETY: see above; each call runs only if the one before it
            // succeeded, so each finds the pages as its contract asks:
            // mapped for the unmap and the protect, unmapped for the map.
            unsafe {
                self.inner.unmap(prefix).is_ok()
                    && self.inner.map(prefix).is_ok()
                    && (self.inner.protect(prefix, Protection::None).is_ok() || {
                        // Never leave them more open than the unmap asked:
                        // unmapped (the documented corner), not read-write.
                        let _ = self.inner.unmap(prefix);
                        false
                    })
            }
        };
        if changed {
            self.changed_part_way.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn next_random(&self) -> u64 {
        seed_mix(self.rng.fetch_add(SEED_STEP, Ordering::Relaxed).wrapping_add(SEED_STEP))
    }

    /// Decide whether this call of `op` fails; `shortage` is what it
    /// returns under [`InjectedError::Shortage`].
    fn gate(&self, op: Op, shortage: ShimError) -> Result<(), ShimError> {
        if self.kinds.load(Ordering::Relaxed) & op.bit() == 0 {
            return Ok(());
        }
        let n = self.eligible_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let hit_nth = self.fail_at.load(Ordering::Relaxed) == n;
        let rate = self.rate_per_million.load(Ordering::Relaxed);
        let hit_random = rate > 0 && self.next_random() % 1_000_000 < u64::from(rate);
        if hit_nth || hit_random {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Err(match self.error() {
                InjectedError::Shortage => shortage,
                InjectedError::Os(errno) => ShimError::Os { op, errno },
                InjectedError::Marker => ShimError::Injected { op },
            })
        } else {
            Ok(())
        }
    }
}

/// Where the generator of failures part way starts, mixed with the seed
/// of [`FaultInjector::fail_randomly`] (any odd constant: a stream apart
/// from the failures').
const PART_SEED: u64 = 0x5851_f42d_4c95_7f2d;

/// The step of the seeded fault injectors' generator, splitmix64
/// ([`FaultInjector::fail_randomly`], and the arena's `set_mtbf`): its
/// state starts at the seed and moves by this much a draw.
pub const SEED_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output for the state `z`: the `n`th draw (from 1) for
/// seed `s` is `seed_mix(s + n * SEED_STEP)`. A bijection, so every seed's
/// first draw, and with it its sequence, is its own.
pub const fn seed_mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// SAFETY: every call either fails before reaching `inner` (leaving all state
// as it was, which the contract allows), or is forwarded to `inner`, which
// upholds the contract, or (a `protect` or `unmap` failing part way) has
// `inner` protect a prefix of its range, never all of it, before failing,
// which the contract allows those two.
unsafe impl<P: PageOps> PageOps for FaultInjector<P> {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.gate(Op::Reserve, ShimError::OutOfAddressSpace { size: size.0 })?;
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Release, ShimError::OutOfMemory(range))?;
        // SAFETY: the caller upholds `release`'s contract.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Map, ShimError::OutOfMemory(range))?;
        // SAFETY: the caller upholds `map`'s contract.
        unsafe { self.inner.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        if let Err(e) = self.gate(Op::Unmap, ShimError::OutOfMemory(range)) {
            // SAFETY: the caller upholds `unmap`'s contract.
            unsafe { self.change_part(range, None) };
            return Err(e);
        }
        // SAFETY: the caller upholds `unmap`'s contract.
        unsafe { self.inner.unmap(range) }
    }
    unsafe fn unmap_deferred(&self, range: Range) -> Result<(), ShimError> {
        if let Err(e) = self.gate(Op::Unmap, ShimError::OutOfMemory(range)) {
            // As an unmap (on mmap it is one): it may fail part way too.
            // SAFETY: the caller upholds `unmap_deferred`'s contract, which
            // is `unmap`'s.
            unsafe { self.change_part(range, None) };
            return Err(e);
        }
        // SAFETY: the caller upholds `unmap_deferred`'s contract.
        unsafe { self.inner.unmap_deferred(range) }
    }
    fn flush(&self) -> usize {
        self.inner.flush()
    }
    fn unflushed_pages(&self) -> usize {
        self.inner.unflushed_pages()
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        if let Err(e) = self.gate(Op::Protect, ShimError::OutOfMemory(range)) {
            // SAFETY: the caller upholds `protect`'s contract.
            unsafe { self.change_part(range, Some(prot)) };
            return Err(e);
        }
        // SAFETY: the caller upholds `protect`'s contract.
        unsafe { self.inner.protect(range, prot) }
    }
    fn relax(&self) {
        self.inner.relax()
    }
    fn reschedule(&self) {
        self.inner.reschedule()
    }
}

#[cfg(test)]
mod tests {
    use super::{seed_mix, SEED_STEP};

    #[test]
    fn seeds_give_distinct_first_draws() {
        let first: [u64; 64] =
            core::array::from_fn(|i| seed_mix((i as u64).wrapping_add(SEED_STEP)));
        for (i, a) in first.iter().enumerate() {
            assert!(first[i + 1..].iter().all(|b| b != a), "seed {i} shares its first draw");
        }
        assert_ne!(seed_mix(0), seed_mix(SEED_STEP));
    }
}

#[cfg(all(test, feature = "sim"))]
mod part_way_tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::addr::Addr;
    use crate::sim::{PageState, SimBackend};

    const PAGE: usize = 256;

    /// The protection of each page of `r` in the simulator.
    fn states(sim: &SimBackend<'_>, r: Range) -> Vec<Option<PageState>> {
        (0..r.size().0 / PAGE).map(|i| sim.page_state(Addr(r.base().0 + i * PAGE))).collect()
    }

    /// Part way: a failed protect or unmap of n pages changes its first k,
    /// 1 <= k < n (so a one-page call changes nothing); every k is reached;
    /// map and reserve fail cleanly; clean failures change nothing.
    #[test]
    fn part_way_failures_change_a_prefix_never_all() {
        let mut buf = vec![0u8; 64 * PAGE];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let res = f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
        let rw = Some(PageState::Mapped(Protection::ReadWrite));
        let none = Some(PageState::Mapped(Protection::None));
        let read = Some(PageState::Mapped(Protection::Read));
        let one = Range::from_size(res.base(), Size(PAGE)).unwrap();
        for shape in [FaultShape::Clean, FaultShape::PartWay] {
            f.set_shape(shape);
            assert_eq!(f.shape(), shape);
            let mut seen = [false; 8];
            for round in 0..64 {
                // SAFETY: the simulator's own reservation, nothing reads it.
                unsafe { f.map(res) }.unwrap();
                let before = f.changed_part_way();
                f.fail_nth(1);
                let (op, want) = if round % 2 == 0 {
                    // SAFETY: as above, the range is mapped.
                    (unsafe { f.protect(res, Protection::Read) }, read)
                } else {
                    // SAFETY: as above, the range is mapped.
                    (unsafe { f.unmap(res) }, none)
                };
                assert!(matches!(op, Err(ShimError::Injected { .. })));
                let got = states(&sim, res);
                let k = got.iter().take_while(|s| **s == want).count();
                assert!(got[k..].iter().all(|s| *s == rw), "{got:?}");
                match shape {
                    FaultShape::Clean => assert_eq!(k, 0),
                    FaultShape::PartWay => {
                        assert!((1..8).contains(&k), "{shape:?}: {k} of 8 pages changed");
                        assert_eq!(f.changed_part_way(), before + 1);
                    }
                }
                seen[k] = true;
                // SAFETY: as above.
                unsafe { f.unmap(res) }.unwrap();
            }
            if shape == FaultShape::PartWay {
                assert_eq!(seen, [false, true, true, true, true, true, true, true]);
            }
            // One page: nothing changes whatever the shape; maps are clean.
            // SAFETY: as above.
            unsafe { f.map(one) }.unwrap();
            f.fail_nth(1);
            // SAFETY: as above.
            assert!(unsafe { f.protect(one, Protection::None) }.is_err());
            assert_eq!(states(&sim, one), [rw]);
            // SAFETY: as above.
            unsafe { f.unmap(one) }.unwrap();
            f.fail_nth(1);
            // SAFETY: as above.
            assert!(unsafe { f.map(res) }.is_err());
            assert!(states(&sim, res).iter().all(|s| *s == Some(PageState::Reserved)));
        }
        f.clear();
        assert_eq!(f.shape(), FaultShape::Clean);
        // SAFETY: the reservation is the simulator's and unused.
        unsafe { f.release(res) }.unwrap();
    }

    /// Each injected error kind, for every operation: a marker, a shortage
    /// naming the call's range (the size for a reserve) or an OS error;
    /// the backend untouched each time; `clear` goes back to the marker.
    #[test]
    fn injected_errors_are_what_was_set() {
        let mut buf = vec![0u8; 64 * PAGE];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        assert_eq!(f.error(), InjectedError::Marker);
        let res = f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
        let two = Range::from_size(res.base(), Size(2 * PAGE)).unwrap();
        let reserved = Some(PageState::Reserved);
        let rw = Some(PageState::Mapped(Protection::ReadWrite));
        for error in [InjectedError::Marker, InjectedError::Shortage, InjectedError::Os(12)] {
            f.set_error(error);
            assert_eq!(f.error(), error);
            let want = |op: Op, shortage: ShimError| match error {
                InjectedError::Marker => ShimError::Injected { op },
                InjectedError::Shortage => shortage,
                InjectedError::Os(errno) => ShimError::Os { op, errno },
            };
            f.fail_nth(1);
            let size = Size(4 * PAGE);
            assert_eq!(
                f.reserve(size, Size(PAGE)),
                Err(want(Op::Reserve, ShimError::OutOfAddressSpace { size: size.0 }))
            );
            f.fail_nth(1);
            // SAFETY: the simulator's own reservation, nothing reads it.
            assert_eq!(unsafe { f.map(two) }, Err(want(Op::Map, ShimError::OutOfMemory(two))));
            assert!(states(&sim, two).iter().all(|s| *s == reserved));
            // SAFETY: as above.
            unsafe { f.map(two) }.unwrap();
            for (op, result) in [
                // SAFETY: as above; the range is mapped.
                (Op::Protect, unsafe { (f.fail_nth(1), f.protect(two, Protection::Read)).1 }),
                // SAFETY: as above.
                (Op::Unmap, unsafe { (f.fail_nth(1), f.unmap(two)).1 }),
                // SAFETY: as above.
                (Op::Unmap, unsafe { (f.fail_nth(1), f.unmap_deferred(two)).1 }),
            ] {
                assert_eq!(result, Err(want(op, ShimError::OutOfMemory(two))), "{error:?}");
                assert!(states(&sim, two).iter().all(|s| *s == rw), "{error:?} {op}");
            }
            // SAFETY: as above.
            unsafe { f.unmap(two) }.unwrap();
            f.fail_nth(1);
            // SAFETY: as above; nothing is mapped in it.
            let released = unsafe { f.release(res) };
            assert_eq!(released, Err(want(Op::Release, ShimError::OutOfMemory(res))));
        }
        assert_eq!(f.injected(), 3 * 6);
        // Every error number round-trips, the kernel's negative ones too.
        for errno in [-12, i32::MIN, i32::MAX, 0, -1] {
            f.set_error(InjectedError::Os(errno));
            assert_eq!(f.error(), InjectedError::Os(errno));
        }
        f.clear();
        assert_eq!(f.error(), InjectedError::Marker);
        // SAFETY: the reservation is the simulator's and unused.
        unsafe { f.release(res) }.unwrap();
    }
}
