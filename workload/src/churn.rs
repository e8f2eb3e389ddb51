//! The churn trace of the arena benchmarks: a fixed number of live
//! allocations of random sizes, each step freeing one at random and
//! allocating a new size in its place.
//!
//! Sizes are 1 to 255 units, roughly log-uniform (a power of two `2^k`,
//! `k < 8`, plus a uniform part below it). Criterion benchmarks and the
//! instruction-count runs (`make bench-counts`) draw the same trace from the
//! same seed, so every allocator sees exactly the same requests.

use super::Rng;

/// A seeded churn trace for `live` allocations.
///
/// [`initial`](Self::initial) gives the sizes to fill with, then
/// [`step`](Self::step) the endless `(slot, size)` pairs: free the
/// allocation in `slot` (`< live`) and allocate `size` there.
#[derive(Debug, Clone)]
pub struct Churn {
    rng: Rng,
    live: usize,
    filled: usize,
}

impl Churn {
    /// The trace for `live` allocations (at least one).
    pub fn new(live: usize) -> Self {
        let live = live.max(1);
        Churn { rng: Rng::new(0x0a11_0c47 ^ live as u64), live, filled: 0 }
    }

    /// Allocations held at once.
    pub fn live(&self) -> usize {
        self.live
    }

    /// The size of the next initial allocation, `None` once `live` are made.
    pub fn initial(&mut self) -> Option<usize> {
        if self.filled == self.live {
            return None;
        }
        self.filled += 1;
        Some(self.size())
    }

    /// The next step: the slot to free and the size to allocate in it.
    /// Call after [`initial`](Self::initial) has returned `None`.
    pub fn step(&mut self) -> (usize, usize) {
        let slot = self.rng.below(self.live);
        (slot, self.size())
    }

    fn size(&mut self) -> usize {
        let k = self.rng.below(8);
        (1usize << k) + self.rng.below(1 << k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_slots_in_range_and_reproducible() {
        let mut a = Churn::new(10);
        let mut b = Churn::new(10);
        let mut n = 0;
        while let Some(s) = a.initial() {
            assert!((1..256).contains(&s));
            assert_eq!(b.initial(), Some(s));
            n += 1;
        }
        assert_eq!(n, 10);
        for _ in 0..1000 {
            let (slot, size) = a.step();
            assert!(slot < 10 && (1..256).contains(&size));
            assert_eq!(b.step(), (slot, size));
        }
        assert_ne!(Churn::new(11).initial(), None);
    }
}
