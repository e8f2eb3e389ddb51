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
