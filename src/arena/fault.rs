//! Seeded fault injection for the arena's fallible paths (vmem's mtbf).

/// A deterministic "fail one call in `mtbf`" generator.
///
/// The state is splitmix64's (see [`vmspace_shim::seed_mix`]): any value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mtbf {
    state: u64,
    mtbf: u32,
}

impl Mtbf {
    /// Never fails.
    pub(crate) const fn off() -> Self {
        Mtbf { state: 0, mtbf: 0 }
    }

    /// Fails with probability `1 / mtbf` per call, sequence fixed by `seed`.
    pub(crate) fn new(seed: u64, mtbf: u32) -> Self {
        Mtbf { state: seed, mtbf }
    }

    /// Whether this call fails.
    #[inline]
    pub(crate) fn hit(&mut self) -> bool {
        if self.mtbf == 0 {
            return false;
        }
        self.state = self.state.wrapping_add(vmspace_shim::SEED_STEP);
        vmspace_shim::seed_mix(self.state) % u64::from(self.mtbf) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_determinism() {
        let mut off = Mtbf::off();
        assert!((0..1000).all(|_| !off.hit()));
        let mut a = Mtbf::new(42, 10);
        let mut b = Mtbf::new(42, 10);
        let hits = (0..10_000).filter(|_| a.hit()).count();
        assert!((700..1300).contains(&hits), "{hits}");
        let mut a = Mtbf::new(42, 10);
        assert!((0..1000).all(|_| a.hit() == b.hit()));
        let mut always = Mtbf::new(7, 1);
        assert!(always.hit());
    }
}
