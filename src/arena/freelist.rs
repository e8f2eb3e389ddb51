//! Power-of-two free lists and the freemap word.
//!
//! Free segments of size in `[2^k, 2^(k+1))` sit on list `k`, circular and
//! doubly linked through `knext`/`kprev` from a sentinel tag; bit `k` of the
//! freemap is set exactly when list `k` is non-empty. The first list that can
//! satisfy a request without looking is one `trailing_zeros` away: instant fit
//! is O(1).

use vmspace_shim::align;

use super::store::Store;
use super::tag::{Tag, TagTable, K_FREE};
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
/// Each list is circular and doubly linked through `knext`/`kprev`, and
/// headed by a sentinel tag in the arena's tag table, so that inserting and
/// unlinking are the same few stores wherever the tag sits, with no
/// end-of-list test to mispredict. The sentinels are tags `first .. first +
/// LISTS`, taken when the arena is made: empty free tags (`[0, 0)`, kind
/// `K_FREE`, never on the address list, so no walk or coalescing meets
/// them), so that every tag on a list has the same kind and flags and a back
/// link is set with one store.
///
/// # Invariants
///
/// List `k` runs from sentinel `first + k` through free tags whose sizes lie
/// in `[2^k, 2^(k+1))` back to the sentinel (which links to itself when the
/// list is empty); `freemap` bit `k` is set iff list `k` is non-empty.
pub(crate) struct FreeLists {
    first: u32,
    freemap: usize,
}

impl FreeLists {
    /// Empty lists, their sentinels taken from `tags`, a table just made
    /// (holding only its head, so they are consecutive).
    pub(crate) fn new<S: Store>(tags: &mut TagTable<S>) -> Result<Self, ArenaError> {
        tags.reserve(LISTS as u32)?;
        let first = tags.in_use();
        for k in 0..LISTS as u32 {
            let s = tags.take()?;
            if s != first + k {
                return Err(ArenaError::InvalidArgument("free lists need a fresh tag table"));
            }
            let mut t = Tag::new(0, 0, K_FREE);
            t.knext = s;
            t.set_free_kprev(s);
            tags.set(s, t);
        }
        Ok(FreeLists { first, freemap: 0 })
    }

    /// The freemap word.
    #[inline]
    pub(crate) fn map(&self) -> usize {
        self.freemap
    }

    /// The sentinel of list `k`: its first member is the sentinel's `knext`,
    /// and a walk through `knext` ends back at it.
    #[inline]
    pub(crate) fn sentinel(&self, k: usize) -> u32 {
        self.first + k as u32
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
        let s = self.sentinel(k);
        let next = tags[s as usize].knext;
        {
            let t = &mut tags[i as usize];
            t.set_free_kprev(s);
            t.knext = next;
        }
        tags[s as usize].knext = i;
        tags[next as usize].set_free_kprev(i);
        self.freemap |= 1 << k;
    }

    /// Take free tag `i` off its list (found from its current size).
    #[inline]
    pub(crate) fn remove(&mut self, tags: &mut [Tag], i: u32) {
        let k = list_of(tags[i as usize].size());
        self.unlink(tags, i, k);
    }

    /// Take free tag `i` off list `k`.
    #[inline]
    fn unlink(&mut self, tags: &mut [Tag], i: u32, k: usize) {
        let t = &tags[i as usize];
        let (prev, next) = (t.kprev(), t.knext);
        tags[prev as usize].knext = next;
        tags[next as usize].set_free_kprev(prev);
        // Only the sole member has the sentinel on both sides.
        self.freemap &= !(usize::from(prev == next) << k);
    }

    /// Change free tag `i` to `[start, end)`, moving it between lists only if
    /// its list changes.
    #[inline(always)]
    pub(crate) fn resize(&mut self, tags: &mut [Tag], i: u32, start: usize, end: usize) {
        let t = &mut tags[i as usize];
        let old = list_of(t.size());
        t.start = start;
        t.end = end;
        if list_of(end - start) != old {
            self.relist(tags, i, old);
        }
    }

    /// Move free tag `i`, resized, from list `old` to the list of its size.
    #[inline(always)]
    fn relist(&mut self, tags: &mut [Tag], i: u32, old: usize) {
        self.unlink(tags, i, old);
        self.insert(tags, i);
    }

    /// The number of free segments on each list (a walk of every list).
    pub(crate) fn counts<S: Store>(&self, tags: &TagTable<S>) -> [usize; LISTS] {
        let mut counts = [0; LISTS];
        for (k, n) in counts.iter_mut().enumerate() {
            let s = self.sentinel(k);
            let mut i = tags.get(s).knext;
            while i != s {
                *n += 1;
                i = tags.get(i).knext;
            }
        }
        counts
    }

    /// Verify every list: sentinels, links, kinds, sizes and the freemap.
    /// Returns the number of free tags listed and their total size.
    pub(crate) fn check<S: Store>(&self, tags: &TagTable<S>) -> Result<(usize, usize), ArenaError> {
        let written = tags.all().len();
        let (mut n, mut bytes) = (0usize, 0usize);
        for k in 0..LISTS {
            let s = self.sentinel(k);
            let sentinel = (s as usize) < written && {
                let t = tags.get(s);
                t.kind() == K_FREE && !t.imported() && t.start == 0 && t.end == 0
            };
            if !sentinel {
                return Err(ArenaError::Corrupt { what: "free-list sentinel lost", tag: s });
            }
            let nonempty = tags.get(s).knext != s;
            if (self.freemap >> k) & 1 != usize::from(nonempty) {
                return Err(ArenaError::Corrupt { what: "freemap bit disagrees", tag: k as u32 });
            }
            let (mut prev, mut i) = (s, tags.get(s).knext);
            loop {
                let bad = |what| Err(ArenaError::Corrupt { what, tag: i });
                if i as usize >= written {
                    return bad("free-list link out of range");
                }
                let t = tags.get(i);
                if t.kprev() != prev {
                    return bad("free-list back link broken");
                }
                if i == s {
                    break;
                }
                if t.kind() != K_FREE || t.imported() {
                    return bad("non-free tag on a free list");
                }
                if t.size() == 0 || list_of(t.size()) != k {
                    return bad("free segment on the wrong list");
                }
                n += 1;
                if n >= written {
                    return bad("free list has a cycle");
                }
                bytes = bytes.checked_add(t.size()).ok_or(ArenaError::Overflow)?;
                prev = i;
                i = t.knext;
            }
        }
        Ok((n, bytes))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::arena::store::SliceStore;
    use crate::arena::tag::{HEAD, K_UNUSED};
    use std::vec;

    /// A table holding the head, the sentinels and free tags of `sizes`.
    fn lists_with<'a>(buf: &'a mut [u8], sizes: &[usize]) -> (TagTable<SliceStore<'a>>, FreeLists) {
        let mut tags = TagTable::new(SliceStore::new(buf), 1000).unwrap();
        let mut lists = FreeLists::new(&mut tags).unwrap();
        for &size in sizes {
            tags.reserve(1).unwrap();
            let i = tags.take().unwrap();
            tags.set(i, Tag::new(0, size, K_FREE));
            lists.insert(tags.all_mut(), i);
        }
        (tags, lists)
    }

    #[test]
    fn circular_lists_through_sentinels() {
        let mut buf = vec![0u8; 32 * 1000];
        let (mut tags, mut lists) = lists_with(&mut buf, &[16, 20, 31, 5]);
        assert_eq!(lists.sentinel(0), HEAD + 1, "sentinels follow the head");
        assert_eq!(lists.map(), 1 << 4 | 1 << 2);
        assert_eq!(lists.check(&tags), Ok((4, 72)));
        let counts = lists.counts(&tags);
        assert_eq!((counts[4], counts[2], counts.iter().sum::<usize>()), (3, 1, 4));
        // Newest first: 31, 20, 16 on list 4.
        let s = lists.sentinel(4);
        let order: vec::Vec<usize> = core::iter::successors(Some(tags.get(s).knext), |&i| {
            Some(tags.get(i).knext).filter(|&n| n != s)
        })
        .map(|i| tags.get(i).size())
        .collect();
        assert_eq!(order, [31, 20, 16]);
        // The sole member of list 2 leaves it empty and clears its bit.
        let five = tags.get(lists.sentinel(2)).knext;
        lists.remove(tags.all_mut(), five);
        assert_eq!(lists.map(), 1 << 4);
        assert_eq!(tags.get(lists.sentinel(2)).knext, lists.sentinel(2));
        // A middle member moves lists when resized across a power of two.
        let twenty = order_of(&tags, &lists, 4)[1];
        lists.resize(tags.all_mut(), twenty, 0, 40);
        assert_eq!(lists.map(), 1 << 5 | 1 << 4);
        tags.get_mut(five).set_kind(K_UNUSED);
        tags.put(five);
        assert_eq!(lists.check(&tags), Ok((3, 87)));
    }

    fn order_of<S: Store>(tags: &TagTable<S>, lists: &FreeLists, k: usize) -> vec::Vec<u32> {
        let s = lists.sentinel(k);
        let mut v = vec::Vec::new();
        let mut i = tags.get(s).knext;
        while i != s {
            v.push(i);
            i = tags.get(i).knext;
        }
        v
    }

    #[test]
    fn check_catches_broken_lists() {
        let mut buf = vec![0u8; 32 * 1000];
        let (mut tags, lists) = lists_with(&mut buf, &[16, 20]);
        let [a, b] = order_of(&tags, &lists, 4)[..] else { panic!("two members") };
        let corrupt = |what| Err(ArenaError::Corrupt { what, tag: 0 });
        let what = |r: Result<(usize, usize), ArenaError>| match r {
            Err(ArenaError::Corrupt { what, .. }) => corrupt(what),
            r => r,
        };
        tags.get_mut(b).set_kprev(b);
        assert_eq!(what(lists.check(&tags)), corrupt("free-list back link broken"));
        tags.get_mut(b).set_kprev(a);
        tags.get_mut(a).end = 40;
        assert_eq!(what(lists.check(&tags)), corrupt("free segment on the wrong list"));
        tags.get_mut(a).end = 20;
        tags.get_mut(lists.sentinel(7)).end = 8;
        assert_eq!(what(lists.check(&tags)), corrupt("free-list sentinel lost"));
        tags.get_mut(lists.sentinel(7)).end = 0;
        tags.get_mut(b).set_imported(true);
        assert_eq!(what(lists.check(&tags)), corrupt("non-free tag on a free list"));
        tags.get_mut(b).set_imported(false);
        tags.get_mut(lists.sentinel(7)).knext = a;
        assert_eq!(what(lists.check(&tags)), corrupt("freemap bit disagrees"));
        tags.get_mut(lists.sentinel(7)).knext = lists.sentinel(7);
        assert_eq!(lists.check(&tags), Ok((2, 36)));
    }

    #[test]
    fn list_math() {
        assert_eq!(list_of(1), 0);
        assert_eq!(list_of(4095), 11);
        assert_eq!(list_of(4096), 12);
        assert_eq!(instant_list(4096), 12);
        assert_eq!(instant_list(4097), 13);
        assert_eq!(instant_list(usize::MAX), LISTS);
        let mut f = FreeLists { first: 1, freemap: 0 };
        assert_eq!(f.first_at_or_above(0), None);
        f.freemap = 0b1010_0000;
        assert_eq!(f.first_at_or_above(0), Some(5));
        assert_eq!(f.first_at_or_above(6), Some(7));
        assert_eq!(f.first_at_or_above(8), None);
        assert_eq!(f.first_at_or_above(LISTS), None);
    }
}
