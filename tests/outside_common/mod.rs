//! What the outside reviewers' tests share: their own small generator, so
//! that their sequences do not move when the project's `Rng` changes.

/// Xorshift64 over a non-zero state.
pub struct Rng(pub u64);

#[allow(dead_code)] // not every test file uses every method
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish below `n` (non-zero).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One chance in `n`.
    pub fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// The round-41 reviewers' generator: [`Rng`]'s draws, but `below(0)` is
/// 0 (a draw is still taken) where [`Rng::below`] panics.
pub struct Rng41(pub u64);

#[allow(dead_code)] // not every test file uses every method
impl Rng41 {
    pub fn next(&mut self) -> u64 {
        let mut r = Rng(self.0);
        let x = r.next();
        self.0 = r.0;
        x
    }

    /// Uniform-ish below `n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform-ish below `n` (non-zero), as an index.
    pub fn index(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Xorshift64* over a non-zero state (the fourth round's generator).
pub struct XorshiftStar(pub u64);

#[allow(dead_code)] // not every test file uses every method
impl XorshiftStar {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish below `n` (non-zero).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
