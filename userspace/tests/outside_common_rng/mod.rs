//! The small generator the round-41 outside reviewers' tests share (it was
//! copied into each file; the crate's own `tests/outside_common_rng` holds
//! the same one): xorshift64 over a non-zero state, with the same draws as
//! those copies, so that every test's sequences stay as they were.

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

    /// Uniform-ish below `n`; 0 when `n` is 0 (a draw is still taken).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
