//! Half-open address ranges `[base, limit)`.

use core::fmt;

use crate::addr::{Addr, Pages, Size};
use crate::overflow::Overflow;

/// A half-open range of addresses `[base, limit)`.
///
/// # Invariants
///
/// `base <= limit`. Constructors enforce it, so `size()` never underflows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    base: Addr,
    limit: Addr,
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base.0, self.limit.0)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Range {
    /// The range `[base, limit)`, or `None` when `limit < base`.
    #[inline]
    pub const fn new(base: Addr, limit: Addr) -> Option<Range> {
        if base.0 <= limit.0 {
            Some(Range { base, limit })
        } else {
            None
        }
    }

    /// The range `[base, base + size)`, or [`Overflow`].
    #[inline]
    pub const fn from_size(base: Addr, size: Size) -> Result<Range, Overflow> {
        match base.checked_add(size) {
            Ok(limit) => Ok(Range { base, limit }),
            Err(e) => Err(e),
        }
    }

    /// The empty range at `base`.
    #[inline]
    pub const fn empty(base: Addr) -> Range {
        Range { base, limit: base }
    }

    /// The first address.
    #[inline]
    pub const fn base(&self) -> Addr {
        self.base
    }

    /// One past the last address.
    #[inline]
    pub const fn limit(&self) -> Addr {
        self.limit
    }

    /// `limit - base`.
    #[inline]
    pub const fn size(&self) -> Size {
        Size(self.limit.0 - self.base.0)
    }

    /// Whether the range holds no address.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.base.0 == self.limit.0
    }

    /// Whether `addr` lies in the range.
    #[inline]
    pub const fn contains_addr(&self, addr: Addr) -> bool {
        self.base.0 <= addr.0 && addr.0 < self.limit.0
    }

    /// Whether `other` lies wholly inside this range (an empty `other` does
    /// when its base lies in `[base, limit]`).
    #[inline]
    pub const fn contains(&self, other: &Range) -> bool {
        self.base.0 <= other.base.0 && other.limit.0 <= self.limit.0
    }

    /// Whether the two ranges share at least one address (so an empty range
    /// overlaps nothing, not even a range around its base).
    #[inline]
    pub const fn overlaps(&self, other: &Range) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.base.0 < other.limit.0
            && other.base.0 < self.limit.0
    }

    /// Whether both ends are multiples of the power of two `align`.
    #[inline]
    pub const fn is_aligned(&self, align: Size) -> bool {
        self.base.is_aligned(align) && self.limit.is_aligned(align)
    }

    /// The number of pages of size `page` in the range, when it is a whole
    /// number of them.
    #[inline]
    pub const fn pages(&self, page: Size) -> Option<Pages> {
        self.size().to_pages(page)
    }

    /// The offset of `addr` from the base, in units of `page`, when `addr`
    /// lies in `[base, limit]` (the limit included) and `page` is non-zero.
    #[inline]
    pub const fn page_index(&self, addr: Addr, page: Size) -> Option<usize> {
        if addr.0 < self.base.0 || addr.0 > self.limit.0 || page.0 == 0 {
            None
        } else {
            Some((addr.0 - self.base.0) / page.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction() {
        assert!(Range::new(Addr(2), Addr(1)).is_none());
        let r = Range::new(Addr(0x1000), Addr(0x3000)).unwrap();
        assert_eq!(r.size(), Size(0x2000));
        assert_eq!(r.pages(Size(0x1000)), Some(Pages(2)));
        assert_eq!(Range::from_size(Addr(usize::MAX), Size(1)), Err(Overflow));
    }

    #[test]
    fn relations() {
        let r = Range::new(Addr(0x1000), Addr(0x3000)).unwrap();
        let inner = Range::new(Addr(0x2000), Addr(0x3000)).unwrap();
        let outside = Range::new(Addr(0x3000), Addr(0x4000)).unwrap();
        assert!(r.contains(&inner));
        assert!(!r.contains(&outside));
        assert!(r.overlaps(&inner));
        assert!(!r.overlaps(&outside));
        // An empty range holds no address: it overlaps nothing, wherever its
        // base lies, and nothing overlaps it.
        let all = Range::new(Addr(0), Addr(usize::MAX)).unwrap();
        for base in [0, 5, 0x1000, 0x2000, usize::MAX] {
            let e = Range::empty(Addr(base));
            assert!(
                !all.overlaps(&e) && !e.overlaps(&all) && !e.overlaps(&e),
                "empty at {base:#x}"
            );
        }
        assert!(!r.overlaps(&Range::empty(Addr(0x2000))));
        assert!(r.contains_addr(Addr(0x2fff)));
        assert!(!r.contains_addr(Addr(0x3000)));
        assert_eq!(r.page_index(Addr(0x2000), Size(0x1000)), Some(1));
        assert_eq!(r.page_index(Addr(0x3000), Size(0x1000)), Some(2));
        assert_eq!(r.page_index(Addr(0x3001), Size(0x1000)), None);
    }
}
