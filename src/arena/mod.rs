//! A vmem-style resource allocator for integer ranges (Bonwick and Adams,
//! "Magazines and vmem", USENIX 2001), heap-free and without global state.
//!
//! An [`Arena`] manages *spans* of integers (addresses, IDs, device offsets)
//! added to it or imported from a [`Source`], and carves them into
//! *segments*, each either free or allocated, every one a multiple of the
//! arena's *quantum*. Each span marker and segment is a boundary tag in a
//! table indexed by `u32` (no pointers), kept in a [`Store`] that grows page
//! by page through the shim ([`PageStore`]) or lives in a buffer the caller
//! provides ([`SliceStore`]).
//!
//! - Allocation policies ([`Policy`]): instant fit (O(1): segregated free
//!   lists, one per size below 32 quanta and one per power of two above,
//!   and a freemap word), best fit, first fit, next fit (a rotor), and
//!   placement at the top of the chosen segment; constrained allocation with
//!   [`Constraints`] (align, phase, nocross, address window, exact address).
//! - [`free`](Arena::free) checks that the address and size name a live
//!   allocation (an O(1) expected hash lookup) and coalesces with free
//!   neighbours inside the span; a wholly free imported span goes back to
//!   the source.
//! - Or by handle: [`alloc_handle`](Arena::alloc_handle) returns a
//!   [`Handle`] (address and boundary-tag index) instead of hashing the
//!   allocation, and [`free_handle`](Arena::free_handle) goes straight to
//!   the tag, still checking it (offset-allocator's interface, with checks).
//! - Partial frees and resizing for address-space users (`munmap` and
//!   `mremap` semantics): [`free_part`](Arena::free_part) frees a
//!   quantum-aligned piece of a live allocation made by address, leaving up
//!   to two live allocations; [`resize`](Arena::resize) shrinks an
//!   allocation in place or grows it into the free segment right after it
//!   in its span, and fails with [`NoSpace`](ArenaError::NoSpace) (nothing
//!   changed) when the caller must move it instead.
//! - Deferred frees for address space whose unmapping is flushed in
//!   batches (the kernel's lazy TLB flush): [`free_deferred`](Arena::free_deferred)
//!   leaves the segment *freed but not flushed*
//!   ([`SegmentKind::Unflushed`]), which no allocation takes, until the
//!   caller has flushed and says so with [`flushed`](Arena::flushed).
//! - Every operation first reserves the boundary tags it may need (its
//!   imports reserve theirs in the source before the source changes), so it
//!   completes or fails with the arena unchanged.
//! - Introspection: [`walk`](Arena::walk), [`contains`](Arena::contains),
//!   [`sizes`](Arena::sizes), [`counters`](Arena::counters),
//!   [`free_histogram`](Arena::free_histogram),
//!   [`largest_free`](Arena::largest_free),
//!   [`fragmentation`](Arena::fragmentation), a leak hook called on drop, and
//!   [`check`](Arena::check), which verifies every invariant.
//!
//! ```
//! use vmspace::arena::{Arena, Constraints, NoSource, Policy, SliceStore};
//! use vmspace::{Addr, Size};
//!
//! let mut tags = [0u8; 4096];
//! let mut hash = [0u8; 1024];
//! let mut a = Arena::new("ids", Size(1), SliceStore::new(&mut tags),
//!                        SliceStore::new(&mut hash), NoSource).unwrap();
//! a.add(Addr(1000), Size(1000)).unwrap();
//! let x = a.alloc(Size(10), Policy::InstantFit).unwrap();
//! let y = a.xalloc(&Constraints::new(Size(8)).align(Size(64)).policy(Policy::BestFit)).unwrap();
//! assert_eq!(y.get() % 64, 0);
//! assert!(a.free(x, Size(11)).is_err()); // wrong size: refused, nothing changed
//! a.free(x, Size(10)).unwrap();
//! a.free(y, Size(8)).unwrap();
//! let h = a.alloc_handle(Size(5), Policy::InstantFit).unwrap();
//! assert_eq!(a.free_handle(h), Ok(Size(5)));
//! assert!(a.free_handle(h).is_err()); // stale: refused
//! let z = a.alloc(Size(100), Policy::FirstFit).unwrap();
//! a.free_part(z, Size(40), Size(20)).unwrap(); // munmap of the middle: two live pieces
//! a.free(z, Size(40)).unwrap();
//! let tail = vmspace::Addr(z.get() + 60);
//! a.resize(tail, Size(40), Size(10)).unwrap(); // shrink in place
//! a.free(tail, Size(10)).unwrap();
//! a.check().unwrap();
//! assert_eq!(a.sizes().allocated, Size(0));
//! ```

mod alloc;
mod check;
mod constraints;
mod deferred;
mod error;
mod fault;
mod free;
mod freelist;
mod handle;
mod hash;
mod refused;
mod resize;
mod source;
mod source_panic;
mod span;
mod stats;
mod store;
mod tag;
mod teardown;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;

use core::mem::size_of;

use vmspace_shim::align::{self, PowerOfTwo};
use vmspace_shim::{PageOps, Range, Size};

pub use constraints::Request;
pub use constraints::{ConstraintParts, Constraints, Policy};
pub use error::ArenaError;
pub use freelist::LISTS as FREE_LISTS;
pub use handle::Handle;
pub use refused::Refused;
pub(crate) use source::check_import;
pub use source::{NoSource, Source};
pub(crate) use source_panic::{SharedSourcePanic, SourcePanic};
pub use stats::{Counters, Segment, SegmentKind, SegmentKinds, Sizes, Walk};
pub use store::{PageStore, SliceStore, Store, STORE_ALIGN};

use fault::Mtbf;
use freelist::FreeLists;
use hash::AllocHash;
use tag::{Tag, TagTable, HEAD, K_SPAN, NIL};

/// Boundary tags one allocation may consume: two for the span an import
/// creates, two more for splitting a free segment in three.
pub(crate) const ALLOC_TAGS: u32 = 4;

/// The size of one boundary tag in bytes (for sizing stores).
pub const TAG_BYTES: usize = size_of::<Tag>();

/// Boundary tags every arena keeps for itself from the start: the head of
/// the address and span lists, and one sentinel per free list (for sizing
/// stores: a segment or span marker takes one tag beyond these).
pub const BASE_TAGS: usize = 1 + FREE_LISTS;

/// The fewest boundary tags an arena can be made with: its own
/// [`BASE_TAGS`], the two of one span (marker and segment), and the four
/// every allocation reserves before it starts (for an import's span and a
/// split in three), so that one allocation can succeed.
pub const MIN_TAGS: usize = BASE_TAGS + 2 + ALLOC_TAGS as usize;

/// The most boundary tags an arena can hold, 2^28 - 1 (a tag's index is
/// packed in 28 bits): a larger store holds no more, and
/// [`on_pages`](Arena::on_pages) refuses to reserve for more.
pub const MAX_TAGS: usize = tag::MAX_TAGS as usize;

/// Called once for each allocation still live when an arena is dropped, with
/// the arena's name and the allocation's range (requested size), and once
/// for each range freed deferred and never flushed (its whole segment): if
/// that range is in an imported span, the span goes back through
/// [`Source::release_unflushed`], which must not hand it out before its
/// flush (a parent arena takes it as a deferred free; a source that
/// refuses keeps it taken for good; see [`Arena`]'s `Drop`).
pub type LeakHook = fn(name: &'static str, leaked: Range);

/// A vmem-style arena over the stores `S` (tags and hash) importing from `I`.
///
/// # Invariants
///
/// (All verified by [`check`](Arena::check).)
/// - The address list (`aprev`/`anext` from tag 0) holds every span marker
///   and segment in address order; each marker is followed by segments that
///   tile its span exactly; spans do not overlap and are in address order,
///   which the span list (`kprev`/`knext` from tag 0) repeats.
/// - Segments are non-empty multiples of the quantum at multiples of it; no
///   two free segments are adjacent within a span.
/// - Every free segment is on its free list (circular, through the list's
///   sentinel tag); every allocated segment is in the hash or held by a
///   handle (counted in `held`), with `kprev` holding its rounding slack;
///   every unflushed segment is on the unflushed list (from `unflushed`
///   through `knext`, `unflushed_count` long) and nowhere else.
/// - `sizes` and the span count equal the sums over the lists; the rotor is a
///   tag on the address list.
/// - Only `tags`, `hash` and `source` own resources (`into_source` reads
///   them out of an arena it does not drop; a build-time check in
///   `teardown.rs` holds the types of every other field to no drop of
///   their own: a field added must join its list).
pub struct Arena<S: Store, I: Source = NoSource> {
    name: &'static str,
    /// The fingerprint in this arena's handles (of the tag table's address,
    /// with the salt of `salt_handles`).
    id: u32,
    quantum: PowerOfTwo,
    tags: TagTable<S>,
    hash: AllocHash<S>,
    held: usize,
    lists: FreeLists,
    /// The unflushed list: first segment freed but not flushed, or `NIL`.
    unflushed: u32,
    /// Segments on the unflushed list.
    unflushed_count: usize,
    source: I,
    /// Whether a call into `source` panicked and none has returned since
    /// (see [`call_source`](Self::call_source)).
    source_panic: SourcePanic,
    /// A wholly free imported span was kept while a call into the source
    /// had panicked, or refused as busy: a later free gives such spans
    /// back (see [`retry_held_now`](Self::retry_held_now)).
    held_back: bool,
    /// Frees to let pass before the next walk for held spans, while the
    /// source refuses them as busy (see [`retry_held_now`](Self::retry_held_now)).
    held_skip: u16,
    /// The last wait between such walks, as a power of two.
    held_shift: u8,
    rotor: u32,
    /// Where the last next-fit allocation ended: the next one starts there
    /// even when a free has since merged the rotor's segment into a free
    /// neighbour that reaches back below it.
    rotor_addr: usize,
    sizes: Sizes,
    spans: usize,
    counters: Counters,
    mtbf: Mtbf,
    leak_hook: Option<LeakHook>,
}

impl<S: Store, I: Source> Arena<S, I> {
    /// An empty arena named `name` handing out multiples of `quantum` (a
    /// power of two, at most 2^27), keeping its boundary tags in `tags` and
    /// its address hash in `hash`, importing from `source` when it runs out.
    ///
    /// The tag store must have room for at least [`MIN_TAGS`] tags
    /// ([`TAG_BYTES`] each); a smaller one is
    /// [`InvalidArgument`](ArenaError::InvalidArgument), and so is a source
    /// that can import with a [`quantum`](Source::quantum) that is not a
    /// power of two. It uses room for [`MAX_TAGS`] tags at most, however
    /// large the store.
    ///
    /// Refused, it gives `source` back (nothing was imported); the stores
    /// are released. The source is asked nothing unless all else is in
    /// order, so a refusal for any other reason leaves it untouched; then
    /// whether it imports and its quantum, questions that, returning, clear
    /// a [`KeepFree`](crate::sources::KeepFree)'s note of a panic below.
    pub fn new(
        name: &'static str,
        quantum: Size,
        tags: S,
        hash: S,
        source: I,
    ) -> Result<Self, Refused<I>> {
        let max_tags = tags.capacity() / size_of::<Tag>();
        Self::with_max_tags(name, quantum, tags, hash, source, max_tags)
    }

    /// [`new`](Self::new) with at most `max_tags` tags (at least
    /// [`MIN_TAGS`], at most what the store holds).
    fn with_max_tags(
        name: &'static str,
        quantum: Size,
        tags: S,
        hash: S,
        source: I,
        max_tags: usize,
    ) -> Result<Self, Refused<I>> {
        let refuse = |e: ArenaError, source: I| Err(Refused::new(e, source));
        let Some(q) = PowerOfTwo::new(quantum.0).filter(|q| q.get() <= 1 << 27) else {
            let e = ArenaError::InvalidArgument("quantum is not a power of two <= 2^27");
            return refuse(e, source);
        };
        let max_tags = max_tags.min(tags.capacity() / size_of::<Tag>());
        if max_tags < MIN_TAGS {
            let e = ArenaError::InvalidArgument("tag store holds fewer than MIN_TAGS tags");
            return refuse(e, source);
        }
        let max_tags = max_tags.min(u32::MAX as usize) as u32;
        let shift = align::log2_exact(quantum.0).unwrap_or(0);
        let id = handle::fingerprint(tags.base());
        let built = TagTable::new(tags, max_tags).and_then(|mut tags| {
            let lists = FreeLists::new(&mut tags, shift)?;
            Ok((tags, lists, AllocHash::new(hash, shift)?))
        });
        let (tags, lists, hash) = match built {
            Ok(parts) => parts,
            Err(e) => return refuse(e, source),
        };
        // The source is asked last: a question that returns is news to it
        // (a `KeepFree` clears its note of a panic below), which a refusal
        // for any other reason must not be.
        if source.can_import() && !source.quantum().is_power_of_two() {
            let e = ArenaError::InvalidArgument("source quantum is not a power of two");
            return refuse(e, source);
        }
        Ok(Arena {
            name,
            id,
            quantum: q,
            tags,
            hash,
            held: 0,
            lists,
            unflushed: NIL,
            unflushed_count: 0,
            source,
            source_panic: SourcePanic::new(),
            held_back: false,
            held_skip: 0,
            held_shift: 0,
            rotor: HEAD,
            rotor_addr: 0,
            sizes: Sizes::default(),
            spans: 0,
            counters: Counters::default(),
            mtbf: Mtbf::off(),
            leak_hook: None,
        })
    }

    /// The arena's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The quantum.
    pub fn quantum(&self) -> Size {
        Size(self.quantum.get())
    }

    /// The source.
    pub fn source(&self) -> &I {
        &self.source
    }

    /// The source, mutably (for its own introspection; allocating from it
    /// directly is fine, releasing this arena's imports is not). A panic of
    /// the source in a call made through this reference is not the arena's
    /// to see: it will call the source again (in its drop, say).
    pub fn source_mut(&mut self) -> &mut I {
        &mut self.source
    }

    /// Call `f` on the source, noting the call under way: should it panic,
    /// the note stays, and the arena gives the source nothing back until a
    /// later call into it returns (see [`Source`]).
    pub(crate) fn call_source<T>(&mut self, f: impl FnOnce(&mut I) -> T) -> T {
        let after_panic = self.source_panic.noted();
        let source = &mut self.source;
        let r = self.source_panic.call_mut(|| f(source));
        if after_panic {
            // The first call to return after a panic: the spans held go
            // back at the next free, whatever wait a busy source had set.
            self.held_skip = 0;
            self.held_shift = 0;
        }
        r
    }

    /// Whether a call into the source panicked and none has returned since.
    #[inline]
    pub(crate) fn source_panicked(&self) -> bool {
        self.source_panic.noted()
    }

    /// Whether this free should offer the held spans back: once no call
    /// into the source is noted as panicked, and, while the source refuses
    /// them as busy, at the next free, then at the free after 2, 4, ... up
    /// to 1,024 more, so that a source busy for good costs a walk of the
    /// spans only that often.
    #[cold]
    pub(crate) fn retry_held_now(&mut self) -> bool {
        if self.source_panicked() {
            return false;
        }
        if self.held_skip > 0 {
            self.held_skip -= 1;
            return false;
        }
        true
    }

    /// Call `hook` for each allocation still live, and each range freed
    /// deferred and not flushed, when the arena is dropped.
    pub fn set_leak_hook(&mut self, hook: Option<LeakHook>) {
        self.leak_hook = hook;
    }

    /// Fail each allocating operation (alloc, xalloc, add, extend, import,
    /// and the partial frees and resizes that need tags or grow)
    /// with probability `1 / mtbf` ([`ArenaError::Injected`]), drawn from a
    /// generator seeded with `seed`; `mtbf == 0` turns it off.
    pub fn set_mtbf(&mut self, seed: u64, mtbf: u32) {
        self.mtbf = Mtbf::new(seed, mtbf);
    }

    /// Boundary tags in use (the arena's own [`BASE_TAGS`] included) and the
    /// number the store has room for now.
    pub fn tags_in_use(&self) -> (u32, u32) {
        (self.tags.in_use(), self.tags.capacity())
    }

    /// Buckets of the address hash now, and how many times it could not
    /// double (its store was full or failed to grow).
    pub fn hash_stats(&self) -> (usize, u64) {
        (self.hash.buckets(), self.hash.grow_failures())
    }

    /// Bytes of metadata committed: tag table and address hash.
    pub fn metadata_bytes(&self) -> usize {
        self.tags.committed_bytes() + self.hash.committed_bytes()
    }

    /// Reserve what an operation needs before it changes anything.
    #[inline]
    fn gate(&mut self, tags: u32) -> Result<(), ArenaError> {
        if self.mtbf.hit() {
            self.counters.injected += 1;
            return Err(ArenaError::Injected);
        }
        self.tags.reserve(tags)
    }

    /// Take tag `i` off the address list and return it to the table, moving
    /// the rotor back if it pointed there.
    fn unlink_release(&mut self, i: u32) {
        let t = *self.tags.get(i);
        if self.rotor == i {
            self.rotor = t.aprev;
        }
        self.tags.get_mut(t.aprev).anext = t.anext;
        self.tags.get_mut(t.anext).aprev = t.aprev;
        self.tags.put(i);
    }

    /// Put tag `i` on the address list right after `after`.
    fn link_after(&mut self, after: u32, i: u32) {
        let next = self.tags.get(after).anext;
        let t = self.tags.get_mut(i);
        t.aprev = after;
        t.anext = next;
        self.tags.get_mut(after).anext = i;
        self.tags.get_mut(next).aprev = i;
    }

    /// Take span marker `m` off the span list.
    fn unlink_span(&mut self, m: u32) {
        let t = *self.tags.get(m);
        debug_assert_eq!(t.kind(), K_SPAN);
        self.tags.get_mut(t.kprev()).knext = t.knext;
        self.tags.get_mut(t.knext).set_kprev(t.kprev());
        self.tags.get_mut(m).knext = NIL;
    }
}

impl<P: PageOps + Clone, I: Source> Arena<PageStore<P>, I> {
    /// An arena whose tag table and hash live in address space reserved
    /// through `ops` and mapped page by page, with room for exactly
    /// `max_tags` tags ([`BASE_TAGS`] of them the arena's own; an allocation
    /// takes one or two, a span two). Fewer than [`MIN_TAGS`] is
    /// [`InvalidArgument`](ArenaError::InvalidArgument), as for
    /// [`new`](Self::new), and so is more than [`MAX_TAGS`] (nothing is
    /// reserved then).
    ///
    /// Refused, it gives `source` back untouched, asked nothing unless all
    /// else is in order, as for [`new`](Self::new); the stores it reserved
    /// are released.
    pub fn on_pages(
        name: &'static str,
        quantum: Size,
        ops: P,
        max_tags: usize,
        source: I,
    ) -> Result<Self, Refused<I>> {
        match Self::stores_for(ops, max_tags) {
            Ok((tags, hash)) => Arena::with_max_tags(name, quantum, tags, hash, source, max_tags),
            Err(e) => Err(Refused::new(e, source)),
        }
    }

    /// The tag and hash stores of [`on_pages`](Self::on_pages).
    fn stores_for(ops: P, max_tags: usize) -> Result<(PageStore<P>, PageStore<P>), ArenaError> {
        if max_tags < MIN_TAGS {
            return Err(ArenaError::InvalidArgument("tag store holds fewer than MIN_TAGS tags"));
        }
        if max_tags > MAX_TAGS {
            return Err(ArenaError::InvalidArgument("more tags than MAX_TAGS"));
        }
        let tag_bytes = Size(max_tags).checked_mul(size_of::<Tag>())?;
        // Room for one bucket per tag (the hash doubles past one segment a
        // bucket, and fewer segments than tags are allocated: address space
        // only, mapped lazily).
        let buckets = max_tags.checked_next_power_of_two().ok_or(ArenaError::Overflow)?;
        let hash_bytes = Size(buckets).checked_mul(size_of::<u32>())?;
        let tags = PageStore::new(ops.clone(), tag_bytes)?;
        let hash = PageStore::new(ops, hash_bytes)?;
        Ok((tags, hash))
    }
}
