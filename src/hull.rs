//! [`Hull`]: the smallest run of indices holding every run added to it,
//! which is what a rollback that fails on several runs of tracts or
//! chunks reports as lost.

/// The smallest half-open run `[lo, hi)` of indices (tracts, chunks)
/// holding every run added to it; empty until the first.
///
/// # Invariants
///
/// When not empty, `lo < hi`: every run added is non-empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hull(Option<(usize, usize)>);

impl Hull {
    /// Holding nothing.
    pub(crate) const EMPTY: Hull = Hull(None);

    /// Widen to hold `[lo, hi)`, a non-empty run.
    pub(crate) fn add(&mut self, lo: usize, hi: usize) {
        debug_assert!(lo < hi, "an empty run [{lo}, {hi})");
        self.0 = Some(match self.0 {
            None => (lo, hi),
            Some((l, h)) => (l.min(lo), h.max(hi)),
        });
    }

    /// `(lo, hi)`, or `None` when nothing was added.
    pub(crate) fn get(self) -> Option<(usize, usize)> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Hull;

    #[test]
    fn holds_every_run_added_in_any_order() {
        let mut h = Hull::EMPTY;
        assert_eq!(h.get(), None);
        h.add(5, 7);
        assert_eq!(h.get(), Some((5, 7)));
        h.add(9, 12);
        assert_eq!(h.get(), Some((5, 12)));
        h.add(1, 2);
        assert_eq!(h.get(), Some((1, 12)));
        h.add(6, 8);
        assert_eq!(h.get(), Some((1, 12)));
        h.add(usize::MAX - 1, usize::MAX);
        assert_eq!(h.get(), Some((1, usize::MAX)));
    }
}
