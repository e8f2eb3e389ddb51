//! One class's pair of magazines, the front of the magazine layer that
//! [`CacheHandle`] (a thread's magazines) and [`CpuCaches`] (a CPU's) keep.
//!
//! [`CacheHandle`]: crate::sync::CacheHandle
//! [`CpuCaches`]: crate::sync::CpuCaches

use super::magazine::Magazine;

/// One class's two magazines (Bonwick and Adams' *loaded* and *previous*):
/// allocations pop from `loaded`, frees push onto it, and when it runs
/// empty (or full) the two swap, so alternating allocations and frees at a
/// magazine boundary do not go to the depot every time.
///
/// # Invariants
///
/// Every address in either magazine is a cached object of the pair's class
/// (the owner's invariant; the pair only moves addresses around).
/// All-zero is a valid, empty pair.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct MagPair {
    loaded: Magazine,
    previous: Magazine,
}

impl MagPair {
    /// Both magazines empty.
    pub(crate) const EMPTY: MagPair =
        MagPair { loaded: Magazine::EMPTY, previous: Magazine::EMPTY };

    /// Take a cached address: from `loaded`, else from `previous` after
    /// swapping the two. `None` when both are empty (a miss).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<usize> {
        if let Some(a) = self.loaded.pop() {
            return Some(a);
        }
        if self.previous.is_empty() {
            return None;
        }
        core::mem::swap(&mut self.loaded, &mut self.previous);
        self.loaded.pop()
    }

    /// Cache `addr`: onto `loaded`, else onto `previous`'s place after
    /// swapping when `previous` is empty. When both are full, `previous` is
    /// taken out and returned (for the depot), the full `loaded` becomes
    /// `previous`, and `addr` starts a new, empty `loaded`.
    #[inline]
    pub(crate) fn push(&mut self, addr: usize) -> Option<Magazine> {
        if self.loaded.push(addr) {
            return None;
        }
        let full = if self.previous.is_empty() {
            None
        } else {
            Some(core::mem::replace(&mut self.previous, Magazine::EMPTY))
        };
        core::mem::swap(&mut self.loaded, &mut self.previous);
        self.loaded.push(addr);
        full
    }

    /// Install `mag` (fresh from the depot or the slabs) if `loaded` or
    /// `previous` is empty, as the new `loaded`; hand it back otherwise.
    #[inline]
    pub(crate) fn install(&mut self, mag: Magazine) -> Option<Magazine> {
        if !self.loaded.is_empty() {
            if !self.previous.is_empty() {
                return Some(mag);
            }
            self.previous = self.loaded;
        }
        self.loaded = mag;
        None
    }

    /// Take both magazines out, leaving the pair empty.
    pub(crate) fn take(&mut self) -> [Magazine; 2] {
        let both = [self.loaded, self.previous];
        *self = MagPair::EMPTY;
        both
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qcache::ROUNDS;

    fn full(from: usize) -> Magazine {
        let mut m = Magazine::EMPTY;
        for i in 0..ROUNDS {
            m.push(from + i);
        }
        m
    }

    #[test]
    fn pop_swaps_in_previous_then_misses() {
        let mut p = MagPair::EMPTY;
        assert_eq!(p.pop(), None);
        assert!(p.install(full(100)).is_none());
        assert!(p.install(full(200)).is_none(), "loaded moves to previous");
        assert_eq!(p.install(full(300)).map(|m| m.rounds()[0]), Some(300), "both full: refused");
        for _ in 0..ROUNDS {
            assert!(p.pop().unwrap() >= 200);
        }
        for _ in 0..ROUNDS {
            assert!((100..200).contains(&p.pop().unwrap()));
        }
        assert_eq!(p.pop(), None);
    }

    #[test]
    fn push_rotates_and_hands_out_previous_when_both_are_full() {
        let mut p = MagPair::EMPTY;
        for i in 0..2 * ROUNDS {
            assert!(p.push(i).is_none(), "room in loaded or previous at {i}");
        }
        let out = p.push(999).expect("both full: previous comes out");
        assert_eq!(out.rounds(), full(0).rounds(), "the older magazine goes");
        assert_eq!(p.pop(), Some(999));
        let [loaded, previous] = p.take();
        assert!(loaded.is_empty());
        assert_eq!(previous.rounds(), full(ROUNDS).rounds());
        assert_eq!(p.pop(), None);
    }
}
