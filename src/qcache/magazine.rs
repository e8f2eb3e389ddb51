//! Magazines: small fixed stacks of cached ranges (Bonwick and Adams).

/// Rounds a magazine holds; with its count a magazine is 16 words.
pub const ROUNDS: usize = 15;

/// A stack of up to [`ROUNDS`] cached addresses.
///
/// # Invariants
///
/// `count <= ROUNDS`; `rounds[..count]` are the cached addresses.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Magazine {
    count: usize,
    rounds: [usize; ROUNDS],
}

impl Magazine {
    /// An empty magazine (also its all-zero bit pattern).
    pub const EMPTY: Magazine = Magazine { count: 0, rounds: [0; ROUNDS] };

    /// Rounds held.
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether it is full.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.count >= ROUNDS
    }

    /// Take the most recently cached address.
    #[inline]
    pub fn pop(&mut self) -> Option<usize> {
        let n = self.count.checked_sub(1)?;
        self.count = n;
        self.rounds.get(n).copied()
    }

    /// Cache `addr`; `false` when full.
    #[inline]
    pub fn push(&mut self, addr: usize) -> bool {
        match self.rounds.get_mut(self.count) {
            Some(slot) => {
                *slot = addr;
                self.count += 1;
                true
            }
            None => false,
        }
    }

    /// The cached addresses.
    pub fn rounds(&self) -> &[usize] {
        &self.rounds[..self.count.min(ROUNDS)]
    }

    /// Forget everything (the caller has taken the rounds elsewhere).
    pub fn clear(&mut self) {
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pop_full() {
        let mut m = Magazine::EMPTY;
        assert_eq!(m.pop(), None);
        for i in 0..ROUNDS {
            assert!(m.push(i + 1));
        }
        assert!(m.is_full() && !m.push(99));
        assert_eq!(m.rounds().len(), ROUNDS);
        assert_eq!(m.pop(), Some(ROUNDS));
        assert_eq!(m.len(), ROUNDS - 1);
        m.clear();
        assert!(m.is_empty());
    }
}
