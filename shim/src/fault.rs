//! Fault injection around any backend: fail the Nth call, fail with a seeded
//! probability, or fail only chosen kinds of operation.
//!
//! [`FaultInjector`] wraps a [`PageOps`] backend and makes chosen calls return
//! [`ShimError::Injected`] *before* they reach the backend, so the backend's
//! state is untouched by a failed call, exactly as the trait promises. It keeps
//! its state in atomics, so it can sit under structures shared between threads
//! and works in the kernel as well as in user space.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::addr::Size;
use crate::error::{Op, ShimError};
use crate::ops::{PageOps, Protection};
use crate::range::Range;

/// A backend with faults injected on demand.
///
/// Calls of the operations selected by [`only`](Self::only) (all of them by
/// default) are *eligible*. Eligible calls are counted; the one whose number
/// equals the target set by [`fail_nth`](Self::fail_nth) fails, and each one
/// fails with the probability set by [`fail_randomly`](Self::fail_randomly).
#[derive(Debug)]
pub struct FaultInjector<P> {
    inner: P,
    kinds: AtomicU8,
    eligible_calls: AtomicU64,
    fail_at: AtomicU64,
    rate_per_million: AtomicU32,
    rng: AtomicU64,
    injected: AtomicU64,
}

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
        self.rate_per_million.store(per_million.min(1_000_000), Ordering::Relaxed);
    }

    /// Stop injecting faults and make every operation eligible again.
    pub fn clear(&self) {
        self.fail_at.store(0, Ordering::Relaxed);
        self.rate_per_million.store(0, Ordering::Relaxed);
        self.kinds.store(ALL_KINDS, Ordering::Relaxed);
    }

    /// Eligible calls counted since the last [`fail_nth`](Self::fail_nth).
    pub fn eligible_calls(&self) -> u64 {
        self.eligible_calls.load(Ordering::Relaxed)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn next_random(&self) -> u64 {
        seed_mix(self.rng.fetch_add(SEED_STEP, Ordering::Relaxed).wrapping_add(SEED_STEP))
    }

    /// Decide whether this call of `op` fails.
    fn gate(&self, op: Op) -> Result<(), ShimError> {
        if self.kinds.load(Ordering::Relaxed) & op.bit() == 0 {
            return Ok(());
        }
        let n = self.eligible_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let hit_nth = self.fail_at.load(Ordering::Relaxed) == n;
        let rate = self.rate_per_million.load(Ordering::Relaxed);
        let hit_random = rate > 0 && self.next_random() % 1_000_000 < u64::from(rate);
        if hit_nth || hit_random {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Err(ShimError::Injected { op })
        } else {
            Ok(())
        }
    }
}

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
// as it was, which the contract allows) or is forwarded to `inner`, which
// upholds the contract.
unsafe impl<P: PageOps> PageOps for FaultInjector<P> {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.gate(Op::Reserve)?;
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Release)?;
        // SAFETY: the caller upholds `release`'s contract.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Map)?;
        // SAFETY: the caller upholds `map`'s contract.
        unsafe { self.inner.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Unmap)?;
        // SAFETY: the caller upholds `unmap`'s contract.
        unsafe { self.inner.unmap(range) }
    }
    unsafe fn unmap_deferred(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Unmap)?;
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
        self.gate(Op::Protect)?;
        // SAFETY: the caller upholds `protect`'s contract.
        unsafe { self.inner.protect(range, prot) }
    }
    fn relax(&self) {
        self.inner.relax()
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
