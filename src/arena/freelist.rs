//! Power-of-two free lists and the freemap word.
//!
//! Free segments of size in `[2^k, 2^(k+1))` sit on list `k`, doubly linked
//! through `knext`/`kprev` with `NIL` at both ends; bit `k` of the freemap is
//! set exactly when list `k` is non-empty. The first list that can satisfy a
//! request without looking is one `trailing_zeros` away: instant fit is O(1).

use vmspace_shim::align;

use super::store::Store;
use super::tag::{Tag, TagTable, K_FREE, NIL};
use super::ArenaError;

/// Number of free lists: one per bit of a size.
pub const LISTS: usize = usize::BITS as usize;

/// The list a free segment of `size > 0` belongs on.
#[inline]
pub(crate) fn list_of(size: usize) -> usize {
    // `| 1` changes no floor(log2) but makes the argument non-zero, so no
    // zero test is left on this hot path.
    align::log2_floor(size | 1).unwrap_or(0) as usize
}

/// The first list all of whose members hold `size > 0`: `log2(size)` for a
/// power of two, one more otherwise (`LISTS` when there is none), that is
/// the ceiling of `log2(size)`. Branch-free: whether a random size is a
/// power of two is a coin the branch predictor cannot call.
#[inline]
pub(crate) fn instant_list(size: usize) -> usize {
    align::log2_ceil(size).map_or(0, |k| k as usize)
}

/// The free lists of an arena.
///
/// # Invariants
///
/// `heads[k]` starts a `NIL`-terminated doubly linked list of free tags whose
/// sizes lie in `[2^k, 2^(k+1))`; `freemap` bit `k` is set iff `heads[k] !=
/// NIL`; `counts[k]` is the length of list `k`.
pub(crate) struct FreeLists {
    heads: [u32; LISTS],
    counts: [usize; LISTS],
    freemap: usize,
}

impl FreeLists {
    pub(crate) const fn new() -> Self {
        FreeLists { heads: [NIL; LISTS], counts: [0; LISTS], freemap: 0 }
    }

    /// The freemap word.
    #[inline]
    pub(crate) fn map(&self) -> usize {
        self.freemap
    }

    /// The head of list `k`.
    #[inline]
    pub(crate) fn head(&self, k: usize) -> u32 {
        self.heads[k]
    }

    /// The lengths of all lists (the free-size histogram).
    pub(crate) fn counts(&self) -> &[usize; LISTS] {
        &self.counts
    }

    /// The first non-empty list at or above `k`, if any.
    #[inline]
    pub(crate) fn first_at_or_above(&self, k: usize) -> Option<usize> {
        if k >= LISTS {
            return None;
        }
        let m = self.freemap >> k;
        if m == 0 {
            None
        } else {
            Some(k + m.trailing_zeros() as usize)
        }
    }

    /// Put free tag `i` at the head of its list.
    #[inline]
    pub(crate) fn insert(&mut self, tags: &mut [Tag], i: u32) {
        let k = list_of(tags[i as usize].size());
        let old = self.heads[k];
        {
            let t = &mut tags[i as usize];
            t.set_kprev(NIL);
            t.knext = old;
        }
        if old != NIL {
            tags[old as usize].set_kprev(i);
        }
        self.heads[k] = i;
        self.counts[k] += 1;
        self.freemap |= 1 << k;
    }

    /// Take free tag `i` off its list (found from its current size).
    #[inline]
    pub(crate) fn remove(&mut self, tags: &mut [Tag], i: u32) {
        let t = tags[i as usize];
        let k = list_of(t.size());
        if t.kprev() == NIL {
            self.heads[k] = t.knext;
        } else {
            tags[t.kprev() as usize].knext = t.knext;
        }
        if t.knext != NIL {
            tags[t.knext as usize].set_kprev(t.kprev());
        }
        self.counts[k] -= 1;
        if self.heads[k] == NIL {
            self.freemap &= !(1 << k);
        }
    }

    /// Change free tag `i` to `[start, end)`, moving it between lists only if
    /// its list changes.
    #[inline]
    pub(crate) fn resize(&mut self, tags: &mut [Tag], i: u32, start: usize, end: usize) {
        let old = list_of(tags[i as usize].size());
        if list_of(end - start) == old {
            let t = &mut tags[i as usize];
            t.start = start;
            t.end = end;
        } else {
            self.remove(tags, i);
            let t = &mut tags[i as usize];
            t.start = start;
            t.end = end;
            self.insert(tags, i);
        }
    }

    /// Verify every list: links, kinds, sizes, counts and the freemap.
    /// Returns the number of free tags listed and their total size.
    pub(crate) fn check<S: Store>(&self, tags: &TagTable<S>) -> Result<(usize, usize), ArenaError> {
        let written = tags.all().len();
        let (mut n, mut bytes) = (0usize, 0usize);
        for k in 0..LISTS {
            if (self.freemap >> k) & 1 != usize::from(self.heads[k] != NIL) {
                return Err(ArenaError::Corrupt { what: "freemap bit disagrees", tag: k as u32 });
            }
            let (mut prev, mut i, mut len) = (NIL, self.heads[k], 0usize);
            while i != NIL {
                let bad = |what| Err(ArenaError::Corrupt { what, tag: i });
                if i as usize >= written {
                    return bad("free-list link out of range");
                }
                let t = tags.get(i);
                if t.kind() != K_FREE {
                    return bad("non-free tag on a free list");
                }
                if t.size() == 0 || list_of(t.size()) != k {
                    return bad("free segment on the wrong list");
                }
                if t.kprev() != prev {
                    return bad("free-list back link broken");
                }
                len += 1;
                if len > self.counts[k] {
                    return bad("free list longer than its count");
                }
                bytes = bytes.checked_add(t.size()).ok_or(ArenaError::Overflow)?;
                prev = i;
                i = t.knext;
            }
            if len != self.counts[k] {
                return Err(ArenaError::Corrupt { what: "free-list count", tag: k as u32 });
            }
            n += len;
        }
        Ok((n, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_math() {
        assert_eq!(list_of(1), 0);
        assert_eq!(list_of(4095), 11);
        assert_eq!(list_of(4096), 12);
        assert_eq!(instant_list(4096), 12);
        assert_eq!(instant_list(4097), 13);
        assert_eq!(instant_list(usize::MAX), LISTS);
        let mut f = FreeLists::new();
        assert_eq!(f.first_at_or_above(0), None);
        f.freemap = 0b1010_0000;
        assert_eq!(f.first_at_or_above(0), Some(5));
        assert_eq!(f.first_at_or_above(6), Some(7));
        assert_eq!(f.first_at_or_above(8), None);
        assert_eq!(f.first_at_or_above(LISTS), None);
    }
}
