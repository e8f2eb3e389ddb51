//! Segregated free lists and the freemap word.
//!
//! A free segment of `x` quanta sits on list `x - 1` when `x` is below
//! [`EXACT`] (one list per size, so a request of such a size finds an
//! exact fit when there is one and splits nothing, as TLSF's and
//! `offset-allocator`'s exact small bins do), else on the list of its
//! power of two, the last list taking everything larger. Lists are
//! circular and doubly
//! linked through `knext`/`kprev` from a sentinel tag; bit `i` of the
//! freemap is set exactly when list `i` is non-empty. Every member of a list
//! is smaller than every member of the next, and the first list that can
//! satisfy a request without looking is one `trailing_zeros` away: instant
//! fit is O(1).

use vmspace_shim::align;

use super::store::Store;
use super::tag::{Tag, TagTable, K_FREE};
use super::ArenaError;

/// Number of free lists (bits of the freemap).
pub const LISTS: usize = usize::BITS as usize;

/// Sizes below this many quanta have a list each (lists `0..EXACT - 1`):
/// 32 with 64 lists (8 where a `usize`, and so the freemap, has 32 bits).
pub(crate) const EXACT: usize = if LISTS >= 64 { 32 } else { 8 };
/// From `EXACT` quanta on, sizes of `2^k` to `2^(k+1)` quanta share list
/// `k + POW2`.
const POW2: usize = EXACT - 1 - EXACT.trailing_zeros() as usize;

const _: () = assert!(EXACT.is_power_of_two() && EXACT < LISTS);

/// The list of a free segment of `x > 0` quanta: `x - 1` below
/// [`EXACT`], then a power of two a list, the last list taking everything
/// from `2^(LISTS - 1 - POW2)` quanta on. Branch-free.
#[inline]
fn list_of_quanta(x: usize) -> usize {
    // `| 1` changes no floor(log2) but makes the argument non-zero.
    let pow2 = (align::log2_floor(x | 1).unwrap_or(0) as usize + POW2).min(LISTS - 1);
    if x < EXACT {
        x.wrapping_sub(1)
    } else {
        pow2
    }
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
/// List `k` runs from sentinel `first + k` through free tags whose sizes
/// belong on it (`list_of(size) == k`) back to the sentinel (which links to
/// itself when the list is empty); `freemap` bit `k` is set iff list `k`
/// is non-empty.
pub(crate) struct FreeLists {
    first: u32,
    freemap: usize,
    /// log2 of the quantum: sizes in quanta are `size >> qshift`.
    qshift: u32,
}

impl FreeLists {
    /// Empty lists, their sentinels taken from `tags`, a table just made
    /// (holding only its head, so they are consecutive).
    pub(crate) fn new<S: Store>(tags: &mut TagTable<S>, qshift: u32) -> Result<Self, ArenaError> {
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
        Ok(FreeLists { first, freemap: 0, qshift })
    }

    /// The list a free segment of `size` (a non-zero multiple of the
    /// quantum) belongs on. Branch-free.
    #[inline]
    pub(crate) fn list_of(&self, size: usize) -> usize {
        list_of_quanta(size >> self.qshift)
    }

    /// The first list all of whose members hold `size` (a non-zero
    /// multiple of the quantum): its exact list below [`EXACT`] quanta,
    /// else the list of the ceiling of its power of two (`LISTS` when
    /// there is none, also when only the last list, which takes all larger
    /// sizes, might hold it). Branch-free: whether a random size is a power
    /// of two is a coin the branch predictor cannot call.
    #[inline]
    pub(crate) fn instant_list(&self, size: usize) -> usize {
        let x = size >> self.qshift;
        let pow2 = align::log2_ceil(x).map_or(0, |k| k as usize) + POW2;
        let pow2 = if pow2 >= LISTS { LISTS } else { pow2 };
        if x < EXACT {
            x.wrapping_sub(1)
        } else {
            pow2
        }
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
        let k = self.list_of(tags[i as usize].size());
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
        let k = self.list_of(tags[i as usize].size());
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
        let old = self.list_of(t.size());
        t.start = start;
        t.end = end;
        if self.list_of(end - start) != old {
            self.relist(tags, i, old);
        }
    }

    /// Move free tag `i`, resized, from list `old` to the list of its size.
    #[inline(always)]
    fn relist(&mut self, tags: &mut [Tag], i: u32, old: usize) {
        self.unlink(tags, i, old);
        self.insert(tags, i);
    }

    /// The number of free segments with size in `[2^k, 2^(k+1))` for each
    /// `k` (a walk of every list).
    pub(crate) fn counts<S: Store>(&self, tags: &TagTable<S>) -> [usize; LISTS] {
        let mut counts = [0; LISTS];
        for k in 0..LISTS {
            let s = self.sentinel(k);
            let mut i = tags.get(s).knext;
            while i != s {
                let t = tags.get(i);
                counts[align::log2_floor(t.size() | 1).unwrap_or(0) as usize] += 1;
                i = t.knext;
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
                if t.size() == 0 || self.list_of(t.size()) != k {
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
        let mut lists = FreeLists::new(&mut tags, 0).unwrap();
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
        // Three on one power-of-two list, one on an exact list.
        let (mut tags, mut lists) = lists_with(&mut buf, &[64, 80, 124, 5]);
        let (p, e) = (lists.list_of(64), lists.list_of(5));
        assert_eq!((lists.list_of(124), e), (p, 4));
        assert_eq!(lists.sentinel(0), HEAD + 1, "sentinels follow the head");
        assert_eq!(lists.map(), 1 << p | 1 << e);
        assert_eq!(lists.check(&tags), Ok((4, 273)));
        let counts = lists.counts(&tags);
        assert_eq!((counts[6], counts[2], counts.iter().sum::<usize>()), (3, 1, 4));
        // Newest first: 124, 80, 64 on list p.
        let s = lists.sentinel(p);
        let order: vec::Vec<usize> = core::iter::successors(Some(tags.get(s).knext), |&i| {
            Some(tags.get(i).knext).filter(|&n| n != s)
        })
        .map(|i| tags.get(i).size())
        .collect();
        assert_eq!(order, [124, 80, 64]);
        // The sole member of list e leaves it empty and clears its bit.
        let five = tags.get(lists.sentinel(e)).knext;
        lists.remove(tags.all_mut(), five);
        assert_eq!(lists.map(), 1 << p);
        assert_eq!(tags.get(lists.sentinel(e)).knext, lists.sentinel(e));
        // A middle member moves lists when resized across a power of two.
        let eighty = order_of(&tags, &lists, p)[1];
        lists.resize(tags.all_mut(), eighty, 0, 160);
        assert_eq!(lists.map(), 1 << (p + 1) | 1 << p);
        // Within one, it stays.
        let first = order_of(&tags, &lists, p)[0];
        lists.resize(tags.all_mut(), first, 0, 100);
        assert_eq!(order_of(&tags, &lists, p)[0], first);
        tags.get_mut(five).set_kind(K_UNUSED);
        tags.put(five);
        assert_eq!(lists.check(&tags), Ok((3, 324)));
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
        let (mut tags, lists) = lists_with(&mut buf, &[64, 80]);
        let [a, b] = order_of(&tags, &lists, lists.list_of(64))[..] else { panic!("two members") };
        let corrupt = |what| Err(ArenaError::Corrupt { what, tag: 0 });
        let what = |r: Result<(usize, usize), ArenaError>| match r {
            Err(ArenaError::Corrupt { what, .. }) => corrupt(what),
            r => r,
        };
        tags.get_mut(b).set_kprev(b);
        assert_eq!(what(lists.check(&tags)), corrupt("free-list back link broken"));
        tags.get_mut(b).set_kprev(a);
        tags.get_mut(a).end = 160;
        assert_eq!(what(lists.check(&tags)), corrupt("free segment on the wrong list"));
        tags.get_mut(a).end = 80;
        tags.get_mut(lists.sentinel(7)).end = 8;
        assert_eq!(what(lists.check(&tags)), corrupt("free-list sentinel lost"));
        tags.get_mut(lists.sentinel(7)).end = 0;
        tags.get_mut(b).set_imported(true);
        assert_eq!(what(lists.check(&tags)), corrupt("non-free tag on a free list"));
        tags.get_mut(b).set_imported(false);
        tags.get_mut(lists.sentinel(7)).knext = a;
        assert_eq!(what(lists.check(&tags)), corrupt("freemap bit disagrees"));
        tags.get_mut(lists.sentinel(7)).knext = lists.sentinel(7);
        assert_eq!(lists.check(&tags), Ok((2, 144)));
    }

    #[test]
    fn list_math() {
        let q1 = FreeLists { first: 1, freemap: 0, qshift: 0 };
        // Exact lists below EXACT quanta, then powers of two.
        assert_eq!(q1.list_of(1), 0);
        assert_eq!(q1.list_of(EXACT - 1), EXACT - 2);
        assert_eq!(q1.list_of(EXACT), EXACT - 1);
        assert_eq!(q1.list_of(2 * EXACT - 1), EXACT - 1);
        assert_eq!(q1.list_of(2 * EXACT), EXACT);
        assert_eq!(q1.list_of(usize::MAX), LISTS - 1);
        assert_eq!(q1.instant_list(5), 4, "an exact list: every member fits");
        assert_eq!(q1.instant_list(EXACT), EXACT - 1);
        assert_eq!(q1.instant_list(EXACT + 1), EXACT);
        assert_eq!(q1.instant_list(usize::MAX), LISTS);
        // Every list's members are smaller than the next list's, and
        // instant_list is the first list whose members all fit.
        let mut last = 0;
        for x in 1..5000usize {
            let k = q1.list_of(x);
            assert!(k >= last && k < LISTS, "{x}");
            last = k;
            let sure = q1.instant_list(x);
            assert!(q1.list_of(x) <= sure, "{x}");
            assert!((x..x + 5000).all(|y| q1.list_of(y) < sure || y >= x), "{x}");
            if sure > 0 && sure < LISTS {
                // No size below x is on the sure list or above.
                assert!((1..x).all(|y| q1.list_of(y) < sure), "{x}");
            }
        }
        // Sizes count in quanta.
        let q16 = FreeLists { first: 1, freemap: 0, qshift: 4 };
        assert_eq!(q16.list_of(16), 0);
        assert_eq!(q16.list_of(16 * EXACT), EXACT - 1);
        assert_eq!(q16.instant_list(48), 2);
        let mut f = FreeLists { first: 1, freemap: 0, qshift: 0 };
        assert_eq!(f.first_at_or_above(0), None);
        f.freemap = 0b1010_0000;
        assert_eq!(f.first_at_or_above(0), Some(5));
        assert_eq!(f.first_at_or_above(6), Some(7));
        assert_eq!(f.first_at_or_above(8), None);
        assert_eq!(f.first_at_or_above(LISTS), None);
    }
}
