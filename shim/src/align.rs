//! Alignment arithmetic. Every power-of-two and rounding calculation in vmspace
//! lives here; the typed wrappers in [`crate::addr`] and the layers above call
//! these functions rather than doing their own bit tricks.
//!
//! All functions take plain `usize` values and report overflow as [`Overflow`];
//! none of them wraps or panics.

use crate::overflow::Overflow;

/// Whether `x` is a power of two (zero is not).
#[inline]
pub const fn is_power_of_two(x: usize) -> bool {
    x != 0 && x & (x - 1) == 0
}

/// Whether `x` is a multiple of `align`.
///
/// `align` must be a power of two; for any other value the answer is `false`,
/// so a bad alignment can never make a value look aligned.
#[inline]
pub const fn is_aligned(x: usize, align: usize) -> bool {
    is_power_of_two(align) && x & (align - 1) == 0
}

/// Round `x` down to a multiple of the power of two `align`.
///
/// Returns `None` when `align` is not a power of two.
#[inline]
pub const fn align_down(x: usize, align: usize) -> Option<usize> {
    if is_power_of_two(align) {
        Some(x & !(align - 1))
    } else {
        None
    }
}

/// Round `x` up to a multiple of the power of two `align`.
///
/// Fails with [`Overflow`] when the result does not fit in a `usize` or when
/// `align` is not a power of two.
#[inline]
pub const fn align_up(x: usize, align: usize) -> Result<usize, Overflow> {
    if !is_power_of_two(align) {
        return Err(Overflow);
    }
    match x.checked_add(align - 1) {
        Some(y) => Ok(y & !(align - 1)),
        None => Err(Overflow),
    }
}

/// Round `x` up to a multiple of `quantum`, which need not be a power of two.
///
/// Fails with [`Overflow`] when the result does not fit or `quantum` is zero.
#[inline]
pub const fn round_up(x: usize, quantum: usize) -> Result<usize, Overflow> {
    if quantum == 0 {
        return Err(Overflow);
    }
    let rem = x % quantum;
    if rem == 0 {
        Ok(x)
    } else {
        match x.checked_add(quantum - rem) {
            Some(y) => Ok(y),
            None => Err(Overflow),
        }
    }
}

/// The smallest `y >= x` with `y % align == phase`, where `align` is a power of
/// two and `phase < align`.
///
/// This is the "align and phase" placement of vmem's constrained allocation.
#[inline]
pub const fn align_up_with_phase(x: usize, align: usize, phase: usize) -> Result<usize, Overflow> {
    if !is_power_of_two(align) || phase >= align {
        return Err(Overflow);
    }
    // y = align_up(x - phase) + phase, computed without underflow.
    let base = match x.checked_sub(phase) {
        Some(v) => v,
        None => return Ok(phase),
    };
    match align_up(base, align) {
        Ok(a) => match a.checked_add(phase) {
            Some(y) => Ok(y),
            None => Err(Overflow),
        },
        Err(e) => Err(e),
    }
}

/// The largest `y <= x` with `y % align == phase`, where `align` is a power of
/// two and `phase < align`; `None` when there is none (`x < phase`) or the
/// arguments are out of domain.
///
/// The downward counterpart of [`align_up_with_phase`], for placing
/// allocations at the top of a free range.
#[inline]
pub const fn align_down_with_phase(x: usize, align: usize, phase: usize) -> Option<usize> {
    if !is_power_of_two(align) || phase >= align {
        return None;
    }
    match x.checked_sub(phase) {
        // No overflow: the result is at most `x`.
        Some(base) => Some((base & !(align - 1)) + phase),
        None => None,
    }
}

/// The smallest multiple of the power of two `boundary` strictly greater than
/// `x`, or [`Overflow`].
#[inline]
pub const fn next_boundary(x: usize, boundary: usize) -> Result<usize, Overflow> {
    if !is_power_of_two(boundary) {
        return Err(Overflow);
    }
    match (x & !(boundary - 1)).checked_add(boundary) {
        Some(y) => Ok(y),
        None => Err(Overflow),
    }
}

/// Whether the half-open range `[start, start + size)` crosses a multiple of the
/// power of two `boundary` (vmem's "nocross"). A range that ends exactly on a
/// boundary does not cross it. Returns `true` on overflow (such a range can
/// never be placed).
#[inline]
pub const fn crosses_boundary(start: usize, size: usize, boundary: usize) -> bool {
    if size == 0 || !is_power_of_two(boundary) {
        return false;
    }
    match start.checked_add(size - 1) {
        Some(last) => (start ^ last) & !(boundary - 1) != 0,
        None => true,
    }
}

/// log2 of a power of two, or `None` for any other value.
#[inline]
pub const fn log2_exact(x: usize) -> Option<u32> {
    if is_power_of_two(x) {
        Some(x.trailing_zeros())
    } else {
        None
    }
}

/// `floor(log2(x))` for `x > 0`, or `None` for zero.
#[inline]
pub const fn log2_floor(x: usize) -> Option<u32> {
    if x == 0 {
        None
    } else {
        Some(usize::BITS - 1 - x.leading_zeros())
    }
}

/// `ceil(log2(x))` for `x > 0`, or `None` for zero.
#[inline]
pub const fn log2_ceil(x: usize) -> Option<u32> {
    if x == 0 {
        None
    } else {
        // No branch on whether `x` is a power of two (for x = 1, 0 has 64
        // leading zeros).
        Some(usize::BITS - (x - 1).leading_zeros())
    }
}

/// A power of two, checked once when made, so that rounding to it on a hot
/// path needs no check beyond overflow (an arena's quantum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PowerOfTwo(usize);

impl PowerOfTwo {
    /// `x` if it is a power of two.
    #[inline]
    pub const fn new(x: usize) -> Option<PowerOfTwo> {
        if is_power_of_two(x) {
            Some(PowerOfTwo(x))
        } else {
            None
        }
    }

    /// The value.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }

    /// Round `x` up to a multiple of this power of two ([`align_up`] without
    /// the power-of-two test). Fails with [`Overflow`] when it does not fit.
    #[inline]
    pub const fn align_up(self, x: usize) -> Result<usize, Overflow> {
        match x.checked_add(self.0 - 1) {
            Some(y) => Ok(y & !(self.0 - 1)),
            None => Err(Overflow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_rounds_as_align_up() {
        assert_eq!(PowerOfTwo::new(0), None);
        assert_eq!(PowerOfTwo::new(12), None);
        for shift in [0, 4, 12, 63] {
            let p = PowerOfTwo::new(1 << shift).unwrap();
            assert_eq!(p.get(), 1 << shift);
            for x in
                [0, 1, (1 << shift) - 1, 1 << shift, (1 << shift) + 1, usize::MAX / 2, usize::MAX]
            {
                assert_eq!(p.align_up(x), align_up(x, 1 << shift), "x {x} shift {shift}");
            }
        }
    }

    #[test]
    fn powers_of_two() {
        assert!(!is_power_of_two(0));
        assert!(is_power_of_two(1));
        assert!(is_power_of_two(4096));
        assert!(!is_power_of_two(4097));
        assert!(is_power_of_two(1 << (usize::BITS - 1)));
    }

    #[test]
    fn aligned_rejects_bad_alignment() {
        assert!(is_aligned(8192, 4096));
        assert!(!is_aligned(8193, 4096));
        assert!(!is_aligned(0, 3));
        assert!(!is_aligned(0, 0));
    }

    #[test]
    fn rounding() {
        assert_eq!(align_down(8191, 4096), Some(4096));
        assert_eq!(align_down(5, 3), None);
        assert_eq!(align_up(1, 4096), Ok(4096));
        assert_eq!(align_up(4096, 4096), Ok(4096));
        assert_eq!(align_up(usize::MAX, 4096), Err(Overflow));
        assert_eq!(align_up(usize::MAX - 4095, 4096), Ok(usize::MAX - 4095));
        assert_eq!(round_up(10, 3), Ok(12));
        assert_eq!(round_up(9, 3), Ok(9));
        assert_eq!(round_up(1, 0), Err(Overflow));
        assert_eq!(round_up(usize::MAX, 2), Err(Overflow));
    }

    #[test]
    fn phase() {
        assert_eq!(align_up_with_phase(0, 16, 4), Ok(4));
        assert_eq!(align_up_with_phase(5, 16, 4), Ok(20));
        assert_eq!(align_up_with_phase(20, 16, 4), Ok(20));
        assert_eq!(align_up_with_phase(3, 16, 16), Err(Overflow));
        assert_eq!(align_up_with_phase(usize::MAX, 16, 4), Err(Overflow));
    }

    #[test]
    fn phase_down_and_boundaries() {
        assert_eq!(align_down_with_phase(100, 16, 4), Some(100));
        assert_eq!(align_down_with_phase(99, 16, 4), Some(84));
        assert_eq!(align_down_with_phase(3, 16, 4), None);
        assert_eq!(align_down_with_phase(3, 16, 16), None);
        assert_eq!(align_down_with_phase(usize::MAX, 4096, 0), Some(usize::MAX - 4095));
        assert_eq!(next_boundary(0, 4096), Ok(4096));
        assert_eq!(next_boundary(4096, 4096), Ok(8192));
        assert_eq!(next_boundary(4095, 4096), Ok(4096));
        assert_eq!(next_boundary(usize::MAX, 4096), Err(Overflow));
        assert_eq!(next_boundary(1, 3), Err(Overflow));
    }

    #[test]
    fn nocross() {
        assert!(!crosses_boundary(0, 4096, 4096));
        assert!(crosses_boundary(1, 4096, 4096));
        assert!(!crosses_boundary(4095, 1, 4096));
        assert!(crosses_boundary(4095, 2, 4096));
        assert!(crosses_boundary(usize::MAX, 2, 4096));
    }

    #[test]
    fn logs() {
        assert_eq!(log2_exact(4096), Some(12));
        assert_eq!(log2_exact(4095), None);
        assert_eq!(log2_floor(4095), Some(11));
        assert_eq!(log2_ceil(4097), Some(13));
        assert_eq!(log2_ceil(1), Some(0));
        assert_eq!(log2_floor(0), None);
    }
}
