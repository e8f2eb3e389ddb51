//! Boundary tags and the table that holds them.
//!
//! Every span marker and every segment (free or allocated) of an arena is a
//! [`Tag`]: a record in one table, named by its `u32` index and linked to its
//! neighbours by index. Tag 0 is the sentinel that heads both the address list
//! (all markers and segments in address order) and the span list; the free
//! lists' sentinels follow it (empty free tags, see `freelist`). The table's
//! storage is a [`Store`] that grows at its end; unused tags are kept on a free
//! list threaded through `knext`.

use core::mem::size_of;

use super::store::{Store, STORE_ALIGN};
use super::ArenaError;

/// "No tag": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;
/// The sentinel heading the address list and the span list.
pub(crate) const HEAD: u32 = 0;

/// Kind of a tag.
pub(crate) const K_HEAD: u8 = 0;
pub(crate) const K_SPAN: u8 = 1;
pub(crate) const K_FREE: u8 = 2;
pub(crate) const K_ALLOC: u8 = 3;
pub(crate) const K_UNUSED: u8 = 4;
/// An allocated segment held by a [`Handle`](super::Handle): not in the
/// address hash, freed through its tag index.
pub(crate) const K_HELD: u8 = 5;
/// A segment freed but not yet flushed (see `deferred`): on no free list and
/// in no hash, threaded on the arena's unflushed list through `knext`; no
/// allocation takes it until [`Arena::flushed`](super::Arena::flushed).
pub(crate) const K_UNFLUSHED: u8 = 6;

/// One boundary tag: a span marker or a segment `[start, end)`.
///
/// All fields are plain integers, so any bytes are a valid `Tag` (the table
/// views store memory as tags without initializing it first).
///
/// # Invariants
///
/// For tags in use: `start <= end`; `aprev`/`anext` link the address list;
/// `knext`/`kprev` link the span list (spans), a free list (free segments and
/// the list's sentinel, circular) or a hash chain (allocated segments: `knext`
/// only, and `kprev` holds the rounding slack, `quantum`-rounded size minus
/// requested size).
/// Held segments (`K_HELD`) are allocated segments on no chain: `knext` is
/// unused and `kprev` holds the slack. Unflushed segments (`K_UNFLUSHED`)
/// are on the arena's unflushed list through `knext`; `kprev` is 0.
///
/// A tag is 32 bytes on 64-bit targets, so two share a cache line and none
/// straddles two: `kprev` (28 bits), the imported flag and the kind (3 bits)
/// are packed into the last word.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct Tag {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) aprev: u32,
    pub(crate) anext: u32,
    pub(crate) knext: u32,
    /// `kprev | imported << 28 | kind << 29`.
    bits: u32,
}

const _: () = assert!(core::mem::align_of::<Tag>() <= STORE_ALIGN);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Tag>() == 32);

const KPREV_BITS: u32 = 28;
const KPREV_MASK: u32 = (1 << KPREV_BITS) - 1;
const IMPORTED_BIT: u32 = 1 << KPREV_BITS;
const KIND_SHIFT: u32 = KPREV_BITS + 1;

/// The most bytes a tag table maps beyond what it needs when it grows.
const GROW_AHEAD_MAX: usize = 1 << 20;
/// Below this many bytes a tag table grows by exactly what it needs (a few
/// system calls in all, and small tables stay small).
const GROW_AHEAD_FROM: usize = 64 << 10;

/// The most tags a table may hold: every index, and every slack below the
/// largest quantum, must fit the packed `kprev` (and no index is `NIL`).
pub(crate) const MAX_TAGS: u32 = KPREV_MASK;

impl Tag {
    /// A tag of `kind` for `[start, end)`, unlinked (`aprev`, `anext` and
    /// `knext` NIL, `kprev` 0).
    #[inline]
    pub(crate) fn new(start: usize, end: usize, kind: u8) -> Tag {
        Tag {
            start,
            end,
            aprev: NIL,
            anext: NIL,
            knext: NIL,
            bits: u32::from(kind & 7) << KIND_SHIFT,
        }
    }

    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.end.wrapping_sub(self.start)
    }

    /// Allocated segments: the size asked for (the size less the slack).
    #[inline]
    pub(crate) fn requested(&self) -> usize {
        self.size() - self.kprev() as usize
    }

    #[inline]
    pub(crate) fn kind(&self) -> u8 {
        (self.bits >> KIND_SHIFT) as u8
    }

    #[inline]
    pub(crate) fn set_kind(&mut self, kind: u8) {
        self.bits = (self.bits & !(7 << KIND_SHIFT)) | (u32::from(kind & 7) << KIND_SHIFT);
    }

    /// Spans: whether imported from the source.
    #[inline]
    pub(crate) fn imported(&self) -> bool {
        self.bits & IMPORTED_BIT != 0
    }

    #[inline]
    pub(crate) fn set_imported(&mut self, imported: bool) {
        self.bits = (self.bits & !IMPORTED_BIT) | if imported { IMPORTED_BIT } else { 0 };
    }

    /// The back link (allocated segments: the slack).
    #[inline]
    pub(crate) fn kprev(&self) -> u32 {
        self.bits & KPREV_MASK
    }

    /// Set the back link (a tag index, below [`MAX_TAGS`]) or the slack
    /// (below the largest quantum): never `NIL`, which no list needs.
    #[inline]
    pub(crate) fn set_kprev(&mut self, v: u32) {
        debug_assert!(v < MAX_TAGS);
        self.bits = (self.bits & !KPREV_MASK) | (v & KPREV_MASK);
    }

    /// Set the back link of a tag on a free list, whose kind is `K_FREE`
    /// and which is not imported (a free segment or a list's sentinel), by
    /// rewriting the whole word: a store, not a read-modify-write.
    #[inline]
    pub(crate) fn set_free_kprev(&mut self, v: u32) {
        debug_assert!(v < MAX_TAGS && self.kind() == K_FREE && !self.imported());
        self.bits = (v & KPREV_MASK) | (u32::from(K_FREE) << KIND_SHIFT);
    }
}

/// The table of tags over a [`Store`].
///
/// # Invariants
///
/// - `ptr == store.base()` as `*mut Tag`; `cap <= store.committed() /
///   size_of::<Tag>()` and `cap < NIL`.
/// - Tags `[0, hwm)` have been written; tags `[hwm, cap)` never were.
/// - The `nfree` tags on the list from `free` (through `knext`) are in
///   `[0, hwm)` and of kind `K_UNUSED`; every other tag below `hwm` is in use.
pub(crate) struct TagTable<S: Store> {
    store: S,
    ptr: *mut Tag,
    cap: u32,
    hwm: u32,
    free: u32,
    nfree: u32,
    max: u32,
}

// SAFETY: `ptr` points into `store`'s own memory (type invariant), which
// the tags own as `store` does: moving the table moves that ownership,
// and the store itself may move when `S: Send`. Nothing else reaches the
// memory through another pointer.
unsafe impl<S: Store + Send> Send for TagTable<S> {}

impl<S: Store> TagTable<S> {
    /// Where the table starts (its store's base).
    pub(crate) fn base(&self) -> *const u8 {
        self.ptr.cast::<u8>().cast_const()
    }

    /// A table over `store` with room for at most `max` tags (clamped below
    /// `NIL`). Tag 0 (the sentinel) is allocated at once.
    pub(crate) fn new(mut store: S, max: u32) -> Result<Self, ArenaError> {
        let max = max.min(MAX_TAGS);
        if max == 0 {
            return Err(ArenaError::InvalidArgument("tag table without room for its head"));
        }
        if store.base().is_null() || store.base() as usize % STORE_ALIGN != 0 {
            return Err(ArenaError::InvalidArgument("store base is null or misaligned"));
        }
        store.grow(size_of::<Tag>())?;
        let mut t = TagTable {
            ptr: store.base().cast::<Tag>(),
            store,
            cap: 0,
            hwm: 0,
            free: NIL,
            nfree: 0,
            max,
        };
        t.refresh_cap();
        let head = t.take()?;
        debug_assert_eq!(head, HEAD);
        let mut head = Tag::new(0, 0, K_HEAD);
        head.set_kprev(HEAD);
        head.knext = HEAD;
        head.aprev = HEAD;
        head.anext = HEAD;
        t.set(HEAD, head);
        Ok(t)
    }

    fn refresh_cap(&mut self) {
        let n = self.store.committed() / size_of::<Tag>();
        self.cap = (n.min(self.max as usize)) as u32;
    }

    /// All written tags as a slice.
    #[inline]
    pub(crate) fn all(&self) -> &[Tag] {
        // SAFETY: `ptr` is the store's base, aligned for `Tag` (STORE_ALIGN);
        // the first `hwm <= cap` tags lie in committed, initialized memory
        // owned by the store we hold, and every byte pattern is a valid `Tag`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.hwm as usize) }
    }

    #[inline]
    pub(crate) fn all_mut(&mut self) -> &mut [Tag] {
        // SAFETY: as in `all`, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.hwm as usize) }
    }

    /// Tag `i` (a link taken from a live tag: always below `hwm`).
    #[inline]
    pub(crate) fn get(&self, i: u32) -> &Tag {
        &self.all()[i as usize]
    }

    /// Tag `i` if it has been written (for indexes from callers, which may
    /// be anything).
    #[inline]
    pub(crate) fn try_get(&self, i: u32) -> Option<&Tag> {
        self.all().get(i as usize)
    }

    /// Tag `i`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: u32) -> &mut Tag {
        &mut self.all_mut()[i as usize]
    }

    /// Overwrite tag `i`.
    #[inline]
    pub(crate) fn set(&mut self, i: u32, t: Tag) {
        *self.get_mut(i) = t;
    }

    /// Tags available without growing the store.
    #[inline]
    pub(crate) fn available(&self) -> u32 {
        self.nfree + (self.cap - self.hwm)
    }

    /// Make sure `n` tags can be taken without failing, growing the store if
    /// needed. On failure nothing observable changes.
    #[inline]
    pub(crate) fn reserve(&mut self, n: u32) -> Result<(), ArenaError> {
        if self.available() >= n {
            return Ok(());
        }
        self.grow_for(n)
    }

    /// Grow the store for `n` more tags and, once it holds
    /// [`GROW_AHEAD_FROM`] bytes, a little more (an eighth of what it
    /// holds, at most [`GROW_AHEAD_MAX`] bytes) when it can: a page store
    /// maps each growth with a system call, and a table that grew one page
    /// at a time made one every 128 tags (at a million live segments, tens
    /// of nanoseconds an allocation). When the larger growth fails, exactly
    /// what is needed is tried.
    #[cold]
    fn grow_for(&mut self, n: u32) -> Result<(), ArenaError> {
        // Slots needed: those written so far plus what the free list lacks.
        let need = self.hwm as usize + n.saturating_sub(self.nfree) as usize;
        if need > self.max as usize {
            return Err(ArenaError::TagsExhausted);
        }
        let bytes = need.checked_mul(size_of::<Tag>()).ok_or(ArenaError::Overflow)?;
        let committed = self.store.committed();
        let ahead =
            if committed < GROW_AHEAD_FROM { 0 } else { (committed / 8).min(GROW_AHEAD_MAX) };
        let most = self.max as usize * size_of::<Tag>();
        let more = bytes.saturating_add(ahead).min(most).min(self.store.capacity());
        if more <= bytes || self.store.grow(more).is_err() {
            self.store.grow(bytes)?;
        }
        self.refresh_cap();
        if self.available() >= n {
            Ok(())
        } else {
            Err(ArenaError::TagsExhausted)
        }
    }

    /// Take an unused tag (reserved beforehand with [`reserve`](Self::reserve)).
    #[inline]
    pub(crate) fn take(&mut self) -> Result<u32, ArenaError> {
        if self.free != NIL {
            let i = self.free;
            self.free = self.get(i).knext;
            self.nfree -= 1;
            Ok(i)
        } else if self.hwm < self.cap {
            let i = self.hwm;
            self.hwm += 1;
            self.set(i, Tag::new(0, 0, K_UNUSED));
            Ok(i)
        } else {
            Err(ArenaError::TagsExhausted)
        }
    }

    /// Return tag `i` to the free list.
    #[inline]
    pub(crate) fn put(&mut self, i: u32) {
        let free = self.free;
        let t = self.get_mut(i);
        t.set_kind(K_UNUSED);
        t.knext = free;
        self.free = i;
        self.nfree += 1;
    }

    /// Tags in use (the sentinel included).
    pub(crate) fn in_use(&self) -> u32 {
        self.hwm - self.nfree
    }

    /// Tags the store has room for now.
    pub(crate) fn capacity(&self) -> u32 {
        self.cap
    }

    /// Bytes of store committed to the table.
    pub(crate) fn committed_bytes(&self) -> usize {
        self.store.committed()
    }

    /// Verify the free list: length, kinds, bounds.
    pub(crate) fn check(&self) -> Result<(), ArenaError> {
        let corrupt = |what, tag| Err(ArenaError::Corrupt { what, tag });
        if self.hwm > self.cap || self.cap > self.max {
            return corrupt("tag high-water mark above capacity", self.hwm);
        }
        let mut n = 0u32;
        let mut i = self.free;
        while i != NIL {
            if i >= self.hwm || i == HEAD {
                return corrupt("free-tag list link out of range", i);
            }
            if self.get(i).kind() != K_UNUSED {
                return corrupt("tag on the free-tag list is in use", i);
            }
            n += 1;
            if n > self.nfree {
                return corrupt("free-tag list longer than its count", i);
            }
            i = self.get(i).knext;
        }
        if n != self.nfree {
            return corrupt("free-tag list shorter than its count", self.free);
        }
        let unused = self.all().iter().filter(|t| t.kind() == K_UNUSED).count();
        if unused != n as usize {
            return corrupt("unused tag not on the free-tag list", NIL);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::arena::store::SliceStore;
    use std::vec;

    #[test]
    fn take_put_and_reserve() {
        let mut buf = vec![0u8; size_of::<Tag>() * 10 + 8];
        let mut t = TagTable::new(SliceStore::new(&mut buf), 100).unwrap();
        assert_eq!(t.in_use(), 1);
        assert_eq!(t.capacity(), 10);
        t.reserve(9).unwrap();
        assert_eq!(t.reserve(10), Err(ArenaError::TagsExhausted));
        let a = t.take().unwrap();
        let b = t.take().unwrap();
        assert_eq!((a, b), (1, 2));
        t.put(a);
        assert_eq!(t.take().unwrap(), a);
        t.get_mut(a).set_kind(K_FREE);
        t.put(b);
        t.check().unwrap();
        assert_eq!(t.in_use(), 2);
    }

    #[test]
    fn packed_fields_round_trip() {
        let mut t = Tag::new(0, 16, K_SPAN);
        assert_eq!((t.kind(), t.imported(), t.kprev()), (K_SPAN, false, 0));
        for v in [0, 1, (1 << 27) - 1, MAX_TAGS - 1] {
            for kind in [K_HEAD, K_FREE, K_HELD, K_UNUSED] {
                for imported in [false, true] {
                    t.set_kprev(v);
                    t.set_kind(kind);
                    t.set_imported(imported);
                    assert_eq!((t.kind(), t.imported(), t.kprev()), (kind, imported, v));
                }
            }
        }
    }

    #[test]
    fn a_free_tags_back_link_is_rewritten_whole() {
        let mut t = Tag::new(3, 9, K_FREE);
        t.set_kprev(7);
        t.set_free_kprev(MAX_TAGS - 1);
        assert_eq!((t.kind(), t.imported(), t.kprev()), (K_FREE, false, MAX_TAGS - 1));
        let mut u = Tag::new(3, 9, K_FREE);
        u.set_kprev(MAX_TAGS - 1);
        assert_eq!(t.bits, u.bits);
    }

    #[test]
    fn a_large_table_grows_ahead_and_falls_back_to_what_it_needs() {
        use crate::arena::store::PageStore;
        use vmspace_shim::sim::SimBackend;
        use vmspace_shim::{FaultInjector, Op, Size};
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        let inj = FaultInjector::new(&sim);
        inj.only(&[Op::Map]);
        let store = PageStore::new(&inj, Size(4 << 20)).unwrap();
        let per_page = (4096 / size_of::<Tag>()) as u32;
        let mut t = TagTable::new(store, 1 << 20).unwrap();
        // Small: exactly the pages needed, one map each.
        t.reserve(per_page).unwrap();
        assert_eq!(t.committed_bytes(), 2 * 4096);
        let small = (GROW_AHEAD_FROM / size_of::<Tag>()) as u32;
        while t.committed_bytes() < GROW_AHEAD_FROM {
            let n = t.capacity() - t.in_use() + 1;
            t.reserve(n).unwrap();
            for _ in 0..n {
                let i = t.take().unwrap();
                t.get_mut(i).set_kind(K_FREE);
            }
        }
        assert_eq!(t.committed_bytes(), GROW_AHEAD_FROM, "page by page up to here");
        assert!(t.capacity() >= small);
        // Large: an eighth more than needed.
        let maps = inj.eligible_calls();
        let n = t.capacity() - t.in_use() + 1;
        t.reserve(n).unwrap();
        assert_eq!(inj.eligible_calls(), maps + 1);
        assert_eq!(t.committed_bytes(), GROW_AHEAD_FROM + 4096 + GROW_AHEAD_FROM / 8);
        for _ in 0..t.capacity() - t.in_use() {
            let i = t.take().unwrap();
            t.get_mut(i).set_kind(K_FREE);
        }
        // When the larger map fails, the exact one is made.
        inj.fail_nth(1);
        let before = t.committed_bytes();
        t.reserve(1).unwrap();
        assert_eq!(inj.injected(), 1);
        assert_eq!(t.committed_bytes(), before + 4096, "exactly one more page");
        t.check().unwrap();
    }

    #[test]
    fn too_small_store_is_an_error() {
        let mut buf = vec![0u8; 4];
        assert!(TagTable::new(SliceStore::new(&mut buf), 100).is_err());
        let mut buf = vec![0u8; 4096];
        assert!(TagTable::new(SliceStore::new(&mut buf), 0).is_err());
    }
}
