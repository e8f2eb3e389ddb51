//! The address hash: allocated segments by start address, O(1) expected.
//!
//! A power-of-two array of `u32` bucket heads lives in its own [`Store`];
//! chains run through the allocated tags' `knext`. When the load passes one
//! segment a bucket the array doubles in place: the store maps the new
//! pages and every entry is inserted again, so growth costs O(n) once per
//! doubling and is amortized O(1). Growth is best effort: if the store
//! cannot grow the chains just get longer, and nothing else changes.

use core::mem::size_of;

use super::store::Store;
use super::tag::{TagTable, NIL};
use super::ArenaError;

/// Buckets the hash starts with at least.
const MIN_BUCKETS: usize = 16;
/// Average chain length that triggers doubling. One: every tag on a chain
/// before the one a free looks for is a load of its own, dependent on the
/// one before, and at a million live segments each is a miss; a bucket
/// array twice as large (4 MiB there) costs less than the longer chains
/// (interleaved times in BENCHMARKS.md: 15% less a pair by address at
/// 10^6 live, the same within the noise at 10^2 and 10^4).
const MAX_LOAD: usize = 1;

/// A doubling lets its thread be rescheduled after this many buckets or
/// entries moved ([`Store::reschedule`]; a power of two): at a million
/// entries a rehash is tens of milliseconds, under the arena's lock.
const RESCHEDULE_EVERY: usize = 4096;

/// A mixed hash of a quantum number: the middle of its product with an odd
/// constant (Fibonacci hashing; bits 32 and up, whose every bit depends on
/// the number's low 32 and more, enough for any bucket count a tag table
/// can need). One multiply and a shift.
#[inline]
fn mix(x: usize) -> usize {
    ((x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
}

/// `log2(nbuckets) - 4`, at least 0: runs of consecutive quanta a
/// sixteenth of the buckets long.
fn run_shift(nbuckets: usize) -> u32 {
    vmspace_shim::align::log2_floor(nbuckets).unwrap_or(0).saturating_sub(4)
}

/// Where [`AllocHash::find`] found an allocated tag: the tag, the one
/// before it on its chain (`NIL` when it heads the chain), and its bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) tag: u32,
    prev: u32,
    bucket: usize,
}

/// Bucket heads over a [`Store`].
///
/// # Invariants
///
/// - `ptr == store.base()` as `*mut u32`; `nbuckets` is a power of two and
///   `nbuckets * 4 <= store.committed()`.
/// - Each allocated tag is on exactly one chain, the one of bucket
///   `bucket(start)`; `count` is their number.
pub(crate) struct AllocHash<S: Store> {
    store: S,
    ptr: *mut u32,
    nbuckets: usize,
    count: usize,
    shift: u32,
    /// log2 of the runs of quanta that land in consecutive buckets:
    /// `log2(nbuckets) - 4`, at least 0 (see `bucket`).
    run: u32,
    grow_failures: u64,
}

// SAFETY: `ptr` points into `store`'s own memory (type invariant), which
// the bucket heads own as `store` does: moving the table moves that ownership,
// and the store itself may move when `S: Send`. Nothing else reaches the
// memory through another pointer.
unsafe impl<S: Store + Send> Send for AllocHash<S> {}

impl<S: Store> AllocHash<S> {
    /// A hash over `store`, for addresses that are multiples of `1 << shift`.
    pub(crate) fn new(mut store: S, shift: u32) -> Result<Self, ArenaError> {
        if store.base().is_null() || store.base() as usize % super::store::STORE_ALIGN != 0 {
            return Err(ArenaError::InvalidArgument("hash store base is null or misaligned"));
        }
        store.grow(MIN_BUCKETS * size_of::<u32>())?;
        let fit = store.committed() / size_of::<u32>();
        // Use everything committed (a whole page, usually), in a power of two.
        let nbuckets = 1usize << vmspace_shim::align::log2_floor(fit).unwrap_or(0);
        let mut h = AllocHash {
            ptr: store.base().cast::<u32>(),
            store,
            nbuckets,
            count: 0,
            shift,
            run: run_shift(nbuckets),
            grow_failures: 0,
        };
        h.heads_mut().fill(NIL);
        Ok(h)
    }

    #[inline]
    fn heads(&self) -> &[u32] {
        // SAFETY: `ptr` is the store's base (aligned for u32); the first
        // `nbuckets * 4` bytes are committed, initialized memory owned by the
        // store we hold, and any bytes are valid u32s.
        unsafe { core::slice::from_raw_parts(self.ptr, self.nbuckets) }
    }

    #[inline]
    fn heads_mut(&mut self) -> &mut [u32] {
        // SAFETY: as in `heads`, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.nbuckets) }
    }

    /// The bucket of the segment starting at `addr`: quantum number `x`
    /// plus a mixed hash of `x >> run`. A run of `2^run` consecutive quanta
    /// (a sixteenth of the buckets) lands in as many consecutive buckets, so
    /// allocations carved one after another (a fill, a tail carved on a
    /// fragmented arena) walk the heads line after line where a fully mixed
    /// hash jumped to a line (and a page) of its own each time; runs start
    /// at mixed places, and a run never wraps round the table, so aligned or
    /// strided addresses still spread over every bucket.
    #[inline]
    fn bucket(&self, addr: usize) -> usize {
        let x = addr >> self.shift;
        mix(x >> self.run).wrapping_add(x) & (self.nbuckets - 1)
    }

    /// Allocated segments on the chains.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Buckets now.
    pub(crate) fn buckets(&self) -> usize {
        self.nbuckets
    }

    /// Times the array could not double.
    pub(crate) fn grow_failures(&self) -> u64 {
        self.grow_failures
    }

    /// Bytes of store committed to the hash.
    pub(crate) fn committed_bytes(&self) -> usize {
        self.store.committed()
    }

    /// Put allocated tag `i` on its chain, doubling the array when the load
    /// gets too high.
    #[inline]
    pub(crate) fn insert<T: Store>(&mut self, tags: &mut TagTable<T>, i: u32) {
        let b = self.bucket(tags.get(i).start);
        tags.get_mut(i).knext = self.heads()[b];
        self.heads_mut()[b] = i;
        self.count += 1;
        if self.count > self.nbuckets * MAX_LOAD {
            self.grow(tags);
        }
    }

    /// The allocated tag starting at `addr`, where [`remove`](Self::remove)
    /// finds it. Counts the tags looked at in `steps`.
    #[inline]
    pub(crate) fn find<T: Store>(
        &self,
        tags: &TagTable<T>,
        addr: usize,
        steps: &mut u64,
    ) -> Option<Found> {
        let bucket = self.bucket(addr);
        let (mut prev, mut i) = (NIL, self.heads()[bucket]);
        let mut n = 0;
        while i != NIL {
            n += 1;
            let t = tags.get(i);
            if t.start == addr {
                *steps += n;
                return Some(Found { tag: i, prev, bucket });
            }
            prev = i;
            i = t.knext;
        }
        *steps += n;
        None
    }

    /// Unlink the tag [`find`](Self::find) found (nothing changed since).
    #[inline]
    pub(crate) fn remove<T: Store>(&mut self, tags: &mut TagTable<T>, f: Found) {
        let next = tags.get(f.tag).knext;
        if f.prev == NIL {
            self.heads_mut()[f.bucket] = next;
        } else {
            tags.get_mut(f.prev).knext = next;
        }
        tags.get_mut(f.tag).knext = NIL;
        self.count -= 1;
    }

    /// Double the buckets and rehash every entry (the runs double too, so
    /// an entry may move anywhere, not just to `b + n`): all chains are
    /// gathered into one list through `knext`, the heads cleared, and each
    /// entry inserted again. O(n) once per doubling, with a reschedule
    /// point every [`RESCHEDULE_EVERY`] steps.
    #[cold]
    fn grow<T: Store>(&mut self, tags: &mut TagTable<T>) {
        let Some(n2) = self.nbuckets.checked_mul(2) else { return };
        let Some(bytes) = n2.checked_mul(size_of::<u32>()) else { return };
        if bytes > self.store.capacity() || self.store.grow(bytes).is_err() {
            self.grow_failures += 1;
            return;
        }
        let mut steps = 0usize;
        let mut step = |store: &S| {
            steps = steps.wrapping_add(1);
            if steps & (RESCHEDULE_EVERY - 1) == 0 {
                store.reschedule();
            }
        };
        let mut all = NIL;
        for b in 0..self.nbuckets {
            step(&self.store);
            let mut i = self.heads()[b];
            while i != NIL {
                let next = tags.get(i).knext;
                tags.get_mut(i).knext = all;
                all = i;
                i = next;
            }
        }
        self.nbuckets = n2;
        self.run = run_shift(n2);
        self.heads_mut().fill(NIL);
        while all != NIL {
            step(&self.store);
            let next = tags.get(all).knext;
            let b = self.bucket(tags.get(all).start);
            tags.get_mut(all).knext = self.heads()[b];
            self.heads_mut()[b] = all;
            all = next;
        }
    }

    /// Verify every chain: bounds, kinds, buckets, count.
    pub(crate) fn check<T: Store>(&self, tags: &TagTable<T>) -> Result<(), ArenaError> {
        let written = tags.all().len();
        let mut n = 0usize;
        for (b, &head) in self.heads().iter().enumerate() {
            let mut i = head;
            while i != NIL {
                if i as usize >= written {
                    return Err(ArenaError::Corrupt { what: "hash link out of range", tag: i });
                }
                let t = tags.get(i);
                if t.kind() != super::tag::K_ALLOC {
                    return Err(ArenaError::Corrupt { what: "non-allocated tag in hash", tag: i });
                }
                if self.bucket(t.start) != b {
                    return Err(ArenaError::Corrupt { what: "tag in the wrong bucket", tag: i });
                }
                n += 1;
                if n > self.count {
                    return Err(ArenaError::Corrupt { what: "hash chains too long", tag: i });
                }
                i = t.knext;
            }
        }
        if n != self.count {
            return Err(ArenaError::Corrupt { what: "hash count mismatch", tag: NIL });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::arena::store::SliceStore;
    use crate::arena::tag::{Tag, K_ALLOC};
    use std::vec;

    #[test]
    fn grows_and_finds() {
        let mut tb = vec![0u8; size_of::<Tag>() * 2000 + 8];
        let mut hb = vec![0u8; 4 * 4096 + 8];
        let mut tags = TagTable::new(SliceStore::new(&mut tb), 5000).unwrap();
        let (hs, _) = SliceStore::split(&mut hb, 1000);
        let mut h = AllocHash::new(hs, 4).unwrap();
        let start_buckets = h.buckets();
        let mut ids = vec![];
        for k in 0..1500usize {
            tags.reserve(1).unwrap();
            let i = tags.take().unwrap();
            tags.set(i, Tag::new(k * 16, k * 16 + 16, K_ALLOC));
            h.insert(&mut tags, i);
            ids.push(i);
        }
        h.check(&tags).unwrap();
        let mut steps = 0;
        for (k, &i) in ids.iter().enumerate() {
            assert_eq!(h.find(&tags, k * 16, &mut steps).map(|f| f.tag), Some(i));
        }
        assert!(h.find(&tags, 1500 * 16, &mut steps).is_none());
        for (k, &i) in ids.iter().enumerate().step_by(2) {
            let found = h.find(&tags, k * 16, &mut steps).unwrap();
            assert_eq!(found.tag, i);
            h.remove(&mut tags, found);
        }
        h.check(&tags).unwrap();
        assert_eq!(h.len(), 750);
        assert!(h.buckets() >= start_buckets);
    }

    /// A slice store that commits only what it is asked to (as a page
    /// store does) and counts its reschedule points.
    struct Counting<'a> {
        slice: SliceStore<'a>,
        committed: usize,
        reschedules: core::cell::Cell<usize>,
    }

    // SAFETY: a prefix of the slice store, which is all committed.
    unsafe impl Store for Counting<'_> {
        fn base(&self) -> *mut u8 {
            self.slice.base()
        }
        fn committed(&self) -> usize {
            self.committed
        }
        fn grow(&mut self, bytes: usize) -> Result<(), ArenaError> {
            self.slice.grow(bytes)?;
            self.committed = self.committed.max(bytes);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.slice.capacity()
        }
        fn reschedule(&self) {
            self.reschedules.set(self.reschedules.get() + 1);
        }
    }

    #[test]
    fn a_large_doubling_has_reschedule_points() {
        let n = 40_000usize;
        let mut tb = vec![0u8; size_of::<Tag>() * (n + 8)];
        let mut hb = vec![0u8; 4 * 2 * n.next_power_of_two() + 8];
        let mut tags = TagTable::new(SliceStore::new(&mut tb), n as u32 + 4).unwrap();
        let slice = SliceStore::new(&mut hb);
        let store = Counting { slice, committed: 0, reschedules: core::cell::Cell::new(0) };
        let mut h = AllocHash::new(store, 4).unwrap();
        let mut doublings = 0;
        for k in 0..n {
            tags.reserve(1).unwrap();
            let i = tags.take().unwrap();
            tags.set(i, Tag::new(k * 16, k * 16 + 16, K_ALLOC));
            let before = h.buckets();
            h.insert(&mut tags, i);
            if h.buckets() != before {
                doublings += 1;
                // A doubling moves every bucket and every entry: one
                // reschedule point every RESCHEDULE_EVERY of them.
                let moved = before + h.len() - 1;
                let points = h.store.reschedules.replace(0);
                assert!(points >= moved / RESCHEDULE_EVERY, "{moved} moved, {points} points");
            }
        }
        h.check(&tags).unwrap();
        assert!(h.buckets() >= n && doublings >= 4, "{} buckets", h.buckets());
    }

    /// The longest chain when `n` segments start `stride` quanta apart.
    fn longest_chain(n: usize, stride: usize) -> usize {
        let mut tb = vec![0u8; size_of::<Tag>() * (n + 8)];
        let mut hb = vec![0u8; 4 * 2 * n.next_power_of_two() + 8];
        let mut tags = TagTable::new(SliceStore::new(&mut tb), n as u32 + 4).unwrap();
        let mut h = AllocHash::new(SliceStore::new(&mut hb), 4).unwrap();
        for k in 0..n {
            tags.reserve(1).unwrap();
            let i = tags.take().unwrap();
            tags.set(i, Tag::new(k * stride * 16, k * stride * 16 + 16, K_ALLOC));
            h.insert(&mut tags, i);
        }
        h.check(&tags).unwrap();
        (0..h.buckets())
            .map(|b| {
                let mut i = h.heads()[b];
                let mut len = 0;
                while i != NIL {
                    len += 1;
                    i = tags.get(i).knext;
                }
                len
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn dense_aligned_and_strided_addresses_spread_over_the_buckets() {
        // At most one segment a bucket on average: chains stay short
        // however the addresses are laid out.
        for stride in [1, 2, 3, 16, 64, 256, 4096, 1 << 16, 1 << 20] {
            let longest = longest_chain(4096, stride);
            assert!(longest <= 8, "stride {stride}: a chain of {longest}");
        }
    }
}
