//! Typed addresses, sizes and page counts.
//!
//! [`Addr`], [`Size`] and [`Pages`] are transparent wrappers around `usize` that
//! keep the three apart in signatures and make every arithmetic step checked:
//! overflow is the error [`Overflow`], never a wrap and never a panic. Each
//! layer's error type converts from [`Overflow`], so `a.checked_add(s)?` reads
//! naturally anywhere.

use core::fmt;

use crate::align;
pub use crate::overflow::Overflow;

/// A virtual address (or, for an arena, any integer resource value).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Addr(pub usize);

/// A size in bytes (or resource units).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Size(pub usize);

/// A count of pages of some page size that the context fixes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[repr(transparent)]
pub struct Pages(pub usize);

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Size {
    /// Bytes in the largest binary unit they reach: exact (`64 GiB`,
    /// `4 KiB`) when a multiple of it, else with two truncated decimals
    /// (`1.50 MiB`); plain bytes below 1 KiB.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 5] =
            [("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        let n = self.0 as u64;
        for (name, shift) in UNITS {
            let unit = 1u64 << shift;
            if n != 0 && n % unit == 0 {
                return write!(f, "{} {}", n >> shift, name);
            }
            if n >= unit {
                // Two decimals, truncated, in integer arithmetic: the
                // remainder is below 2^50, so times 100 it fits in 64 bits
                // (no 128-bit division, which the x86_64 kernel lacks).
                let hundredths = ((n % unit) * 100) >> shift;
                return write!(f, "{}.{:02} {}", n >> shift, hundredths, name);
            }
        }
        write!(f, "{} B", n)
    }
}

impl Addr {
    /// The null address.
    pub const NULL: Addr = Addr(0);

    /// The raw value.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }

    /// `self + size`, or [`Overflow`].
    #[inline]
    pub const fn checked_add(self, size: Size) -> Result<Addr, Overflow> {
        match self.0.checked_add(size.0) {
            Some(v) => Ok(Addr(v)),
            None => Err(Overflow),
        }
    }

    /// `self - size`, or [`Overflow`].
    #[inline]
    pub const fn checked_sub(self, size: Size) -> Result<Addr, Overflow> {
        match self.0.checked_sub(size.0) {
            Some(v) => Ok(Addr(v)),
            None => Err(Overflow),
        }
    }

    /// The distance `self - base`, or [`Overflow`] when `base > self`.
    #[inline]
    pub const fn offset_from(self, base: Addr) -> Result<Size, Overflow> {
        match self.0.checked_sub(base.0) {
            Some(v) => Ok(Size(v)),
            None => Err(Overflow),
        }
    }

    /// Whether the address is a multiple of the power of two `align`.
    #[inline]
    pub const fn is_aligned(self, align: Size) -> bool {
        align::is_aligned(self.0, align.0)
    }

    /// Round up to a multiple of the power of two `align`.
    #[inline]
    pub const fn align_up(self, align: Size) -> Result<Addr, Overflow> {
        match align::align_up(self.0, align.0) {
            Ok(v) => Ok(Addr(v)),
            Err(e) => Err(e),
        }
    }

    /// Round down to a multiple of the power of two `align`.
    #[inline]
    pub const fn align_down(self, align: Size) -> Result<Addr, Overflow> {
        match align::align_down(self.0, align.0) {
            Some(v) => Ok(Addr(v)),
            None => Err(Overflow),
        }
    }

    /// The address as a raw pointer (for backends and metadata kept in mapped
    /// pages). Creating the pointer is safe; using it is not.
    #[inline]
    pub const fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// The address of a pointer.
    #[inline]
    pub fn from_ptr<T>(p: *const T) -> Addr {
        Addr(p as usize)
    }
}

impl Size {
    /// Zero bytes.
    pub const ZERO: Size = Size(0);

    /// The raw value.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }

    /// Whether the size is zero.
    #[inline]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or [`Overflow`].
    #[inline]
    pub const fn checked_add(self, other: Size) -> Result<Size, Overflow> {
        match self.0.checked_add(other.0) {
            Some(v) => Ok(Size(v)),
            None => Err(Overflow),
        }
    }

    /// `self - other`, or [`Overflow`] when `other > self`.
    #[inline]
    pub const fn checked_sub(self, other: Size) -> Result<Size, Overflow> {
        match self.0.checked_sub(other.0) {
            Some(v) => Ok(Size(v)),
            None => Err(Overflow),
        }
    }

    /// `self * n`, or [`Overflow`].
    #[inline]
    pub const fn checked_mul(self, n: usize) -> Result<Size, Overflow> {
        match self.0.checked_mul(n) {
            Some(v) => Ok(Size(v)),
            None => Err(Overflow),
        }
    }

    /// Whether the size is a power of two.
    #[inline]
    pub const fn is_power_of_two(self) -> bool {
        align::is_power_of_two(self.0)
    }

    /// Whether the size is a multiple of the power of two `align`.
    #[inline]
    pub const fn is_aligned(self, align: Size) -> bool {
        align::is_aligned(self.0, align.0)
    }

    /// Round up to a multiple of the power of two `align`.
    #[inline]
    pub const fn align_up(self, align: Size) -> Result<Size, Overflow> {
        match align::align_up(self.0, align.0) {
            Ok(v) => Ok(Size(v)),
            Err(e) => Err(e),
        }
    }

    /// Round up to a multiple of `quantum` (any non-zero value).
    #[inline]
    pub const fn round_up(self, quantum: Size) -> Result<Size, Overflow> {
        match align::round_up(self.0, quantum.0) {
            Ok(v) => Ok(Size(v)),
            Err(e) => Err(e),
        }
    }

    /// The number of whole pages of size `page` in `self`, which must be a
    /// multiple of `page`; `None` otherwise (or when `page` is zero).
    #[inline]
    pub const fn to_pages(self, page: Size) -> Option<Pages> {
        if page.0 == 0 || self.0 % page.0 != 0 {
            None
        } else {
            Some(Pages(self.0 / page.0))
        }
    }
}

impl Pages {
    /// The raw count.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }

    /// The size of this many pages of size `page`, or [`Overflow`].
    #[inline]
    pub const fn to_size(self, page: Size) -> Result<Size, Overflow> {
        match self.0.checked_mul(page.0) {
            Some(v) => Ok(Size(v)),
            None => Err(Overflow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_arithmetic_is_checked() {
        assert_eq!(Addr(10).checked_add(Size(5)), Ok(Addr(15)));
        assert_eq!(Addr(usize::MAX).checked_add(Size(1)), Err(Overflow));
        assert_eq!(Addr(3).checked_sub(Size(4)), Err(Overflow));
        assert_eq!(Addr(10).offset_from(Addr(4)), Ok(Size(6)));
        assert_eq!(Addr(4).offset_from(Addr(10)), Err(Overflow));
    }

    #[test]
    fn size_arithmetic_is_checked() {
        assert_eq!(Size(usize::MAX).checked_mul(2), Err(Overflow));
        assert_eq!(Size(3).checked_sub(Size(4)), Err(Overflow));
        assert_eq!(Size(8192).to_pages(Size(4096)), Some(Pages(2)));
        assert_eq!(Size(8193).to_pages(Size(4096)), None);
        assert_eq!(Size(1).to_pages(Size(0)), None);
        assert_eq!(Pages(usize::MAX).to_size(Size(4096)), Err(Overflow));
    }

    #[test]
    fn display_uses_units() {
        extern crate std;
        use std::format;
        assert_eq!(format!("{}", Size(64 << 30)), "64 GiB");
        assert_eq!(format!("{}", Size(4096)), "4 KiB");
        assert_eq!(format!("{}", Size(4097)), "4.00 KiB");
        assert_eq!(format!("{}", Size(3 << 19)), "1.50 MiB");
        assert_eq!(format!("{}", Size(1023)), "1023 B");
        assert_eq!(format!("{}", Size(0)), "0 B");
        assert_eq!(format!("{}", Addr(0x1000)), "0x1000");
    }
}
