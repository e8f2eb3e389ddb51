//! Bit tables over slices of words: set, clear, test, count and search ranges
//! of bits. Safe code only; the callers decide where the words live. The VM
//! layer and the VM arena keep theirs in pages of their own reservation,
//! mapped on demand, through one paged table (`PagedBits`, crate-internal).
//!
//! Ranges are half-open bit indices `[lo, hi)`; every function requires
//! `lo <= hi <= words.len() * 64` and returns without effect (or `None`) when
//! that does not hold, so a bad index cannot panic.

mod paged;

pub(crate) use paged::{PageMap, PagedBits};

const BITS: usize = u64::BITS as usize;

/// The mask of bits `[lo, hi)` within one word, for `lo <= hi <= 64`.
#[inline]
fn word_mask(lo: usize, hi: usize) -> u64 {
    debug_assert!(lo <= hi && hi <= BITS);
    let upper = if hi == BITS { u64::MAX } else { (1u64 << hi) - 1 };
    let lower = (1u64 << lo) - 1;
    // `lo == 64` only when `hi == 64`: then `1 << lo` would overflow.
    if lo == BITS {
        0
    } else {
        upper & !lower
    }
}

#[inline]
fn in_bounds(words: &[u64], lo: usize, hi: usize) -> bool {
    lo <= hi && words.len().checked_mul(BITS).is_some_and(|n| hi <= n)
}

/// Visit each word overlapping `[lo, hi)` with the mask of the bits in range.
#[inline]
fn for_each_word(lo: usize, hi: usize, mut f: impl FnMut(usize, u64) -> bool) {
    let mut i = lo;
    while i < hi {
        let w = i / BITS;
        let end = core::cmp::min(hi, (w + 1) * BITS);
        if !f(w, word_mask(i % BITS, end - w * BITS)) {
            return;
        }
        i = end;
    }
}

/// Whether bit `i` is set (`false` out of bounds).
#[inline]
pub fn test(words: &[u64], i: usize) -> bool {
    words.get(i / BITS).is_some_and(|w| w & (1 << (i % BITS)) != 0)
}

/// Set bits `[lo, hi)`.
pub fn set_range(words: &mut [u64], lo: usize, hi: usize) {
    if in_bounds(words, lo, hi) {
        for_each_word(lo, hi, |w, m| {
            words[w] |= m;
            true
        });
    }
}

/// Clear bits `[lo, hi)`.
pub fn clear_range(words: &mut [u64], lo: usize, hi: usize) {
    if in_bounds(words, lo, hi) {
        for_each_word(lo, hi, |w, m| {
            words[w] &= !m;
            true
        });
    }
}

/// The number of set bits in `[lo, hi)`.
pub fn count_range(words: &[u64], lo: usize, hi: usize) -> usize {
    let mut n = 0;
    if in_bounds(words, lo, hi) {
        for_each_word(lo, hi, |w, m| {
            n += (words[w] & m).count_ones() as usize;
            true
        });
    }
    n
}

/// Whether any bit in `[lo, hi)` is set.
pub fn any_set(words: &[u64], lo: usize, hi: usize) -> bool {
    find_set(words, lo, hi).is_some()
}

/// Whether every bit in `[lo, hi)` is set (true for an empty range).
pub fn all_set(words: &[u64], lo: usize, hi: usize) -> bool {
    find_clear(words, lo, hi).is_none() && in_bounds(words, lo, hi)
}

/// The first set bit in `[lo, hi)`.
pub fn find_set(words: &[u64], lo: usize, hi: usize) -> Option<usize> {
    find(words, lo, hi, false)
}

/// The first clear bit in `[lo, hi)`.
pub fn find_clear(words: &[u64], lo: usize, hi: usize) -> Option<usize> {
    find(words, lo, hi, true)
}

fn find(words: &[u64], lo: usize, hi: usize, invert: bool) -> Option<usize> {
    if !in_bounds(words, lo, hi) {
        return None;
    }
    let mut found = None;
    for_each_word(lo, hi, |w, m| {
        let v = if invert { !words[w] } else { words[w] } & m;
        if v != 0 {
            found = Some(w * BITS + v.trailing_zeros() as usize);
            false
        } else {
            true
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_count_across_words() {
        let mut w = [0u64; 4];
        set_range(&mut w, 60, 130);
        assert_eq!(count_range(&w, 0, 256), 70);
        assert!(test(&w, 60) && test(&w, 129) && !test(&w, 130) && !test(&w, 59));
        assert_eq!(find_set(&w, 0, 256), Some(60));
        assert_eq!(find_clear(&w, 60, 256), Some(130));
        clear_range(&mut w, 64, 128);
        assert_eq!(count_range(&w, 0, 256), 6);
        assert!(all_set(&w, 60, 64));
        assert!(!all_set(&w, 60, 65));
        assert!(any_set(&w, 128, 130));
        assert!(!any_set(&w, 64, 128));
    }

    #[test]
    fn full_words_and_edges() {
        let mut w = [0u64; 2];
        set_range(&mut w, 0, 128);
        assert_eq!(w, [u64::MAX; 2]);
        assert_eq!(find_clear(&w, 0, 128), None);
        clear_range(&mut w, 64, 64);
        assert_eq!(count_range(&w, 0, 128), 128);
        assert!(all_set(&w, 5, 5));
    }

    #[test]
    fn out_of_bounds_is_harmless() {
        let mut w = [0u64; 1];
        set_range(&mut w, 0, 65);
        clear_range(&mut w, 3, 2);
        assert_eq!(w, [0]);
        assert!(!test(&w, 64));
        assert_eq!(count_range(&w, 0, 65), 0);
        assert_eq!(find_set(&w, 0, 1000), None);
        assert!(!all_set(&w, 0, 65));
    }
}
