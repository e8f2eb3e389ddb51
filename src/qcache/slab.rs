//! The quantum caches' shared tables: per size class, a direct-mapped table
//! of slab records and a depot of full magazines, kept in a [`Store`].
//!
//! A *slab* is one arena allocation of [`OBJECTS`] objects of its class's
//! size, held by a [`Handle`](crate::arena::Handle) (so no by-address free
//! can reach it) and aligned to a power of two so an object finds its slab
//! by masking its address. Each object is in one of three places: *in the
//! slab* (its `in_slab` bit is set), *live* (held by a client: its `live`
//! word holds the size the client asked for), or *cached* (in a magazine:
//! neither).
//!
//! Slab records are read without the lock: `base` to find an object's
//! slab, `live` to claim and unclaim objects. Marking an object live or not
//! is one atomic operation on its `live` word whose old value decides, so of
//! two threads freeing one object exactly one succeeds. Everything else
//! (`in_slab`, `tag`, every change to `base`, the depots) happens under the
//! arena lock.

use core::ptr::NonNull;

use crate::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use vmspace_shim::align;

use super::magazine::Magazine;
use crate::arena::{ArenaError, Store, STORE_ALIGN};

/// Objects per slab (one bit each in a `u64`).
pub const OBJECTS: usize = 64;
/// Slab records per class (direct-mapped by address).
pub const SLABS: usize = 32;
/// Full magazines the depot keeps per class.
pub const DEPOT: usize = 8;
/// Size classes at most: `qcache_max` is at most this many quanta.
pub const MAX_CLASSES: usize = 8;

/// The largest quantum the caches take: objects of up to [`MAX_CLASSES`]
/// quanta, 64 to a slab, must stay below 2^32 units a slab, and every size
/// a client asks for fits a `live` word.
pub const MAX_QUANTUM: usize = 1 << 22;

/// The cache line the tables are laid out for.
use super::cpumags::LINE;

/// One slab's record.
///
/// Laid out on cache lines (the tables are line-aligned): `base`, `in_slab`
/// and `tag` on a line of their own, then the `live` words. Every hit reads
/// `base` and writes a `live` word; with `base` beside the first `live`
/// words, one CPU's hits on those objects made every other CPU's next read
/// of `base` miss (two threads' throughput was 0.9–1.1x one thread's,
/// BENCHMARKS.md).
///
/// # Invariants
///
/// `key` is `!base` for a slab at `base` (so a slab may start at address
/// 0, and an all-zero record is unused: no slab starts at `usize::MAX`,
/// slabs being aligned to at least 64 bytes). `key == 0` means the record
/// is unused, and then `in_slab == 0` and every `live` word is 0.
/// Otherwise `[base, base + OBJECTS * size)` is a held
/// arena allocation of the record's class whose boundary tag is `tag`, and
/// for each object at most one of its `in_slab` bit and `live` word is
/// non-zero; a non-zero `live` word is the size its client asked for, in the
/// class's range.
#[repr(C, align(64))]
pub(crate) struct SlabRecord {
    key: AtomicUsize,
    pub(crate) in_slab: AtomicU64,
    pub(crate) tag: AtomicU32,
    _line: [u32; 11],
    pub(crate) live: [AtomicU32; OBJECTS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::offset_of!(SlabRecord, live) == LINE);
    assert!(core::mem::align_of::<SlabRecord>() == LINE);
};

impl SlabRecord {
    /// An unused record.
    #[cfg_attr(not(any(loom, test)), expect(dead_code, reason = "zeroed in place but under loom"))]
    pub(crate) fn new() -> Self {
        SlabRecord {
            key: AtomicUsize::new(0),
            in_slab: AtomicU64::new(0),
            tag: AtomicU32::new(0),
            _line: [0; 11],
            live: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// The base of the record's slab, `None` when the record is unused.
    #[inline]
    pub(crate) fn slab_base(&self, order: Ordering) -> Option<usize> {
        let key = self.key.load(order);
        (key != 0).then_some(!key)
    }

    /// Whether the record's slab starts at `base`: one load and compare.
    #[inline]
    pub(crate) fn holds(&self, base: usize, order: Ordering) -> bool {
        self.key.load(order) == !base
    }

    /// Register the slab at `base` (aligned to at least 64 bytes), or mark
    /// the record unused (`None`).
    #[inline]
    pub(crate) fn set_base(&self, base: Option<usize>, order: Ordering) {
        debug_assert!(base != Some(usize::MAX), "slabs are aligned");
        self.key.store(base.map_or(0, |b| !b), order);
    }

    /// Mark object `i` live for a client that asked for `size` (non-zero,
    /// below 2^32). The caller took the object out of a magazine or a slab,
    /// so no one else can claim it meanwhile.
    #[inline]
    pub(crate) fn claim(&self, i: usize, size: u32) {
        debug_assert_eq!(self.live[i].load(Ordering::Relaxed), 0, "claiming a live object");
        self.live[i].store(size, Ordering::Relaxed);
    }

    /// Mark object `i` not live if it is live with exactly `size`: one
    /// compare-and-swap, so of two racing frees one wins. On failure, the
    /// size the object is live with (0: not live).
    #[inline]
    pub(crate) fn unclaim(&self, i: usize, size: u32) -> Result<(), u32> {
        if size == 0 {
            return Err(self.live[i].load(Ordering::Relaxed));
        }
        self.live[i].compare_exchange(size, 0, Ordering::AcqRel, Ordering::Relaxed).map(|_| ())
    }

    /// The objects that are live, one bit each.
    pub(crate) fn live_mask(&self) -> u64 {
        (0..OBJECTS)
            .filter(|&i| self.live[i].load(Ordering::Relaxed) != 0)
            .fold(0, |m, i| m | 1 << i)
    }
}

/// One class's depot.
///
/// # Invariants
///
/// `count <= DEPOT`; `mags[..count]` are full magazines of the class.
#[repr(C)]
pub(crate) struct Depot {
    pub(crate) count: usize,
    pub(crate) mags: [Magazine; DEPOT],
}

#[repr(C)]
struct ClassTables {
    slabs: [SlabRecord; SLABS],
    depot: Depot,
}

/// The geometry of one size class.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Class {
    /// Object size in bytes (units).
    pub(crate) size: usize,
    /// log2 of the slab alignment.
    pub(crate) shift: u32,
    /// `floor(2^32 / size) + 1`: `(off * recip) >> 32 == off / size` for
    /// every multiple `off` of `size` below `OBJECTS * size` (as
    /// `OBJECTS * size < 2^32`), without a division on the fast path.
    recip: u64,
}

impl Class {
    fn new(size: usize) -> Result<Class, ArenaError> {
        let bytes = size.checked_mul(OBJECTS).ok_or(ArenaError::Overflow)?;
        let shift = align::log2_ceil(bytes).ok_or(ArenaError::Overflow)?;
        if shift >= usize::BITS - 1 {
            return Err(ArenaError::Overflow);
        }
        Ok(Class { size, shift, recip: (1u64 << 32) / size as u64 + 1 })
    }

    pub(crate) fn slab_bytes(&self) -> usize {
        self.size * OBJECTS
    }

    pub(crate) fn slab_align(&self) -> usize {
        1 << self.shift
    }

    fn slot(&self, base: usize) -> usize {
        (base >> self.shift) % SLABS
    }

    /// The index of the object at offset `off` in a slab, if `off` is an
    /// object boundary inside it.
    #[inline]
    fn index(&self, off: usize) -> Option<usize> {
        // `off < 2^shift <= 2 * OBJECTS * size < 2^33`, so this cannot overflow.
        let i = ((off as u64).wrapping_mul(self.recip) >> 32) as usize;
        (i < OBJECTS && i * self.size == off).then_some(i)
    }
}

/// The bytes [`Tables::new`] commits in its store for `classes` classes:
/// one `ClassTables` a class, line-aligned inside a store whose base is
/// [`STORE_ALIGN`]-aligned. `classes` at most [`MAX_CLASSES`], so no
/// overflow.
pub(crate) const fn table_bytes(classes: usize) -> usize {
    let classes = if classes < MAX_CLASSES { classes } else { MAX_CLASSES };
    classes * core::mem::size_of::<ClassTables>() + LINE - STORE_ALIGN
}

/// The tables of every class, in a store.
///
/// # Invariants
///
/// - `classes` is 1 to [`MAX_CLASSES`].
/// - `base` is the store's base, which never moves (the [`Store`]
///   contract); the store's first `classes * size_of::<ClassTables>()`
///   bytes are committed and hold one `ClassTables` per class, initialized.
/// - The store is touched only in `new` and when dropped: every other
///   access goes through `base`, so sharing `&Tables` shares no access to
///   the store itself.
pub(crate) struct Tables<S: Store> {
    _store: S,
    base: NonNull<ClassTables>,
    classes: usize,
    class: [Class; MAX_CLASSES],
    quantum_shift: u32,
    max_size: usize,
}

impl<S: Store> Tables<S> {
    /// Tables for `classes` classes of multiples of `quantum`, in `store`.
    pub(crate) fn new(mut store: S, quantum: usize, classes: usize) -> Result<Self, ArenaError> {
        if classes == 0 || classes > MAX_CLASSES {
            return Err(ArenaError::InvalidArgument(
                "quantum-cache classes must be 1 to MAX_CLASSES",
            ));
        }
        if quantum > MAX_QUANTUM {
            return Err(ArenaError::InvalidArgument("quantum too large for quantum caches"));
        }
        let quantum_shift = align::log2_exact(quantum)
            .ok_or(ArenaError::InvalidArgument("quantum is not a power of two"))?;
        let mut class = [Class::default(); MAX_CLASSES];
        for (c, k) in class.iter_mut().enumerate().take(classes) {
            *k = Class::new(quantum.checked_mul(c + 1).ok_or(ArenaError::Overflow)?)?;
        }
        const _: () = assert!(core::mem::align_of::<ClassTables>() <= LINE);
        // Line-aligned inside the store, whose base is STORE_ALIGN-aligned.
        let bytes = classes * core::mem::size_of::<ClassTables>();
        store.grow(table_bytes(classes))?;
        let skip = (LINE - store.base().addr() % LINE) % LINE;
        // SAFETY: `skip < LINE` and is a multiple of STORE_ALIGN (the
        // store's base is STORE_ALIGN-aligned), so the tables' `bytes` end
        // inside what `grow` committed.
        let base = unsafe { store.base().add(skip) }.cast::<ClassTables>();
        // SAFETY: `grow` committed `bytes` writable bytes at `base` (above),
        // which only we access; all-zero is a valid `ClassTables` (atomics and
        // integers).
        unsafe { core::ptr::write_bytes(base.cast::<u8>(), 0, bytes) };
        // Loom's atomics carry state of their own: make each one properly.
        #[cfg(loom)]
        for c in 0..classes {
            for slot in 0..SLABS {
                // SAFETY: record `slot` of class `c` lies in the tables just
                // committed; writing over the zeroes drops nothing.
                unsafe {
                    core::ptr::addr_of_mut!((*base.add(c)).slabs[slot]).write(SlabRecord::new())
                };
            }
        }
        let base = NonNull::new(base)
            .ok_or(ArenaError::InvalidArgument("quantum-cache store has no memory"))?;
        // INVARIANT: `classes` was checked above; `base` is the store's base
        // and the tables are initialized.
        Ok(Tables {
            _store: store,
            base,
            classes,
            class,
            quantum_shift,
            max_size: quantum * classes,
        })
    }

    /// The class serving `size` units, if any.
    #[inline]
    pub(crate) fn class_of(&self, size: usize) -> Option<usize> {
        // `size - 1 < max_size` exactly when this is below `classes`, the
        // quantum being a power of two (one test, which `finder` repeats).
        // Size 0 wraps to at least 2^41 (the shift is at most 22): no class.
        let c = size.wrapping_sub(1) >> self.quantum_shift;
        (c < self.classes).then_some(c)
    }

    /// Classes served.
    pub(crate) fn classes(&self) -> usize {
        self.classes
    }

    /// The largest size served.
    pub(crate) fn max_size(&self) -> usize {
        self.max_size
    }

    /// The geometry of class `c` (`c < classes`).
    pub(crate) fn class(&self, c: usize) -> Class {
        self.class[c]
    }

    fn tables(&self, c: usize) -> *mut ClassTables {
        debug_assert!(c < self.classes);
        // SAFETY: `c < classes`, so the offset stays inside the committed
        // tables (type invariant).
        unsafe { self.base.as_ptr().add(c) }
    }

    /// Record `slot` of class `c`; readable from any thread.
    pub(crate) fn record(&self, c: usize, slot: usize) -> &SlabRecord {
        // SAFETY: the tables are initialized and live as long as `self`; the
        // record's fields are atomics, so shared access is sound.
        unsafe { &(*self.tables(c)).slabs[slot % SLABS] }
    }

    /// The depot of class `c`.
    ///
    /// # Safety
    ///
    /// The caller holds the arena lock (depots are only touched under it) and
    /// drops the reference before giving the lock back.
    #[expect(clippy::mut_from_ref, reason = "the arena lock makes the reference unique")]
    pub(crate) unsafe fn depot(&self, c: usize) -> &mut Depot {
        // SAFETY: the tables are initialized; the lock (caller's contract)
        // makes this the only reference to the depot.
        unsafe { &mut (*self.tables(c)).depot }
    }

    /// The record and object index of `addr` in class `c`, if a slab of that
    /// class holds it. Lock-free.
    #[inline]
    pub(crate) fn find(&self, c: usize, addr: usize) -> Option<(&SlabRecord, usize)> {
        self.finder(c)?.find(addr)
    }

    /// What [`find`](Self::find) reads about class `c` before it looks at
    /// an address, read once: for a caller that finds an address after code
    /// the compiler must assume changed all memory (an `asm!` block), so
    /// that these reads need not wait for it.
    #[inline]
    pub(crate) fn finder(&self, c: usize) -> Option<Finder<'_>> {
        if c >= self.classes {
            return None;
        }
        // `c % MAX_CLASSES` is `c` (below `classes`, at most MAX_CLASSES, a
        // power of two): an index the compiler need not check again.
        let k = self.class[c % MAX_CLASSES];
        // SAFETY: the tables are initialized and live as long as `self`, and
        // `c < classes` (tables(c) is in bounds); the records are atomics,
        // so shared access is sound.
        let slabs = unsafe { &(*self.tables(c)).slabs };
        Some(Finder { k, slabs })
    }

    /// The record slot a slab at `base` of class `c` would use.
    pub(crate) fn slot_for(&self, c: usize, base: usize) -> usize {
        self.class[c].slot(base)
    }
}

/// One class's geometry and slab records: [`Tables::finder`].
#[derive(Clone, Copy)]
pub(crate) struct Finder<'t> {
    k: Class,
    slabs: &'t [SlabRecord; SLABS],
}

impl<'t> Finder<'t> {
    /// The record and object index of `addr`, if a slab of the class holds
    /// it (as [`Tables::find`]).
    #[inline]
    pub(crate) fn find(&self, addr: usize) -> Option<(&'t SlabRecord, usize)> {
        let k = &self.k;
        let base = addr & !(k.slab_align() - 1);
        let rec = &self.slabs[k.slot(base)];
        if !rec.holds(base, Ordering::Acquire) {
            return None;
        }
        Some((rec, k.index(addr - base)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_index_without_division_matches_division() {
        for quantum in [1usize, 8, 16, 4096, MAX_QUANTUM] {
            for c in 1..=MAX_CLASSES {
                let size = quantum * c;
                let k = Class::new(size).unwrap();
                let offs = (0..OBJECTS * size).step_by(core::cmp::max(1, size / 3)).chain(
                    (0..OBJECTS)
                        .flat_map(|i| [i * size, i * size + 1, (i * size).saturating_sub(1)]),
                );
                for off in offs.chain([OBJECTS * size, (1 << k.shift) - 1]) {
                    let want = (off % size == 0 && off / size < OBJECTS).then_some(off / size);
                    assert_eq!(k.index(off), want, "size {size} off {off}");
                }
            }
        }
    }

    #[test]
    fn unclaim_takes_exactly_the_claimed_size_once() {
        let rec = SlabRecord::new();
        assert_eq!(rec.unclaim(3, 17), Err(0), "not live");
        rec.claim(3, 17);
        assert_eq!(rec.live_mask(), 1 << 3);
        assert_eq!(rec.unclaim(3, 32), Err(17), "wrong size in the class");
        assert_eq!(rec.unclaim(3, 0), Err(17), "size zero");
        assert_eq!(rec.unclaim(3, 17), Ok(()));
        assert_eq!(rec.unclaim(3, 17), Err(0), "double free");
        assert_eq!(rec.live_mask(), 0);
    }
}
