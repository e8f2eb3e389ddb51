//! Quantum-cache magazines per CPU: one set of magazines per slot of a
//! [`CpuPin`], shared by every thread.

use core::mem::{align_of, size_of};
use core::sync::atomic::Ordering;

use vmspace_shim::{Addr, Size};

use super::retrying::UNTRIED;
use super::{RawLock, Retrying, SyncArena, Wait, Waiter};
use crate::arena::{ArenaError, Policy, Source, Store, STORE_ALIGN};
use crate::qcache::{
    claim_with, magazine_bytes, CpuMags, CpuPin, MagSlots, Magazine, Popped, Pushed, LINE,
    MAX_CLASSES,
};

const _: () = assert!(align_of::<CpuMags>() <= STORE_ALIGN);
const _: () = assert!(size_of::<CpuMags>() % align_of::<CpuMags>() == 0);

/// Quantum-cache magazines per CPU (per slot of the pin `P`) for a
/// [`SyncArena`], shared by every thread: `alloc` and `free` take `&self`.
///
/// Like [`CacheHandle`](super::CacheHandle), but the two magazines per class
/// belong to a CPU rather than a thread, so threads come and go without
/// handles of their own and the caches hold at most one set of magazines
/// per CPU. A hit is one of the pin's magazine operations ([`CpuPin::pop`]
/// or [`CpuPin::push`] on the class's [`CpuMags`]: in the kernel, preemption
/// off around it; in user space, a restartable sequence that commits with
/// one store): no lock, no division. The arena lock is never taken inside
/// one: a miss gets a magazine from the depot or the slabs under the lock,
/// then installs it ([`CpuPin::install`]) in whichever slot the caller is
/// on by then (or gives it back when that slot has no room); a free into
/// two full magazines takes the older one out ([`CpuPin::spill`]), hands
/// it to the depot, and pushes again. When the pin cannot place the caller
/// on a slot (a user-space thread it cannot place), the call goes to the
/// arena instead (an allocation the arena cannot make takes an object
/// from one depot magazine or the slabs there are, the rest of the
/// magazine given back; a free puts its object back in its slab), so an
/// object allocated there, from no slab, is the arena's: a bad free of it
/// is counted in the arena's counters, not in the caches'
/// ([`QCacheStats::bad_frees`](crate::qcache::QCacheStats::bad_frees)),
/// through whichever door it comes. Frees are checked as with a
/// `CacheHandle`; sizes past
/// [`SyncArena::qcache_max`] go to the arena. Each slot's hits are
/// counted in its magazines' words, one a size class, and a class's are
/// added to [`SyncArena::qcache_stats`] at the
/// slot's next miss in that class and on [`flush`](Self::flush) (so they
/// lag, class by class); misses are added at once; dropping flushes.
///
/// Not async-signal-safe: a signal handler must not call into the caches
/// (a miss takes the arena lock, which the interrupted thread may hold;
/// with a pin that waits for its slot, even a hit can wait for the one the
/// interrupted thread holds). Nor may a child of `fork()` use caches or an
/// arena that other threads of its parent were using at the fork (the
/// lock and the slots are copied as they were). Forgetting the caches
/// (`mem::forget`) instead of dropping them strands the objects in their
/// magazines, and their slabs, for the arena's life.
///
/// The slots' magazines live in a [`Store`]: for each class, one `CpuMags`
/// per slot, side by side (so a slot's is found by a shift).
///
/// ```
/// use vmspace::arena::{Arena, NoSource, SliceStore};
/// use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag};
/// use vmspace::sync::{CpuCaches, NoWait, SpinLock, SyncArena};
/// use vmspace::{Addr, Size};
///
/// /// One slot behind a try-lock (a real pin has one per CPU).
/// struct OneSlot(SlotFlag);
/// // SAFETY: one slot, handed out only while its flag is taken.
/// unsafe impl CpuPin for OneSlot {
///     fn slots(&self) -> usize { 1 }
///     fn pin(&self) -> usize {
///         while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {}
///         0
///     }
///     // SAFETY: the caller pinned slot 0 (the method's contract).
///     unsafe fn unpin(&self, _: usize) { unsafe { self.0.release() } }
/// }
///
/// let (mut tags, mut hash) = ([0u8; 1 << 14], [0u8; 1 << 14]);
/// let (mut qc, mut mags) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
/// let mut arena = Arena::new("shared", Size(16), SliceStore::new(&mut tags),
///                            SliceStore::new(&mut hash), NoSource).unwrap();
/// arena.add(Addr(1 << 20), Size(1 << 20)).unwrap();
/// let shared: SyncArena<SpinLock, NoWait, _, _> =
///     SyncArena::with_quantum_caches(arena, QCacheConfig::new(4, SliceStore::new(&mut qc)))
///         .unwrap();
/// let caches = CpuCaches::new(&shared, OneSlot(SlotFlag::new()),
///                             SliceStore::new(&mut mags)).unwrap();
/// let a = caches.alloc(Size(32)).unwrap(); // a miss: fills a magazine
/// caches.free(a, Size(32)).unwrap();
/// assert_eq!(caches.alloc(Size(32)).unwrap(), a); // a hit
/// caches.free(a, Size(32)).unwrap();
/// assert!(caches.free(a, Size(32)).is_err()); // double free: refused
/// drop(caches);
/// assert_eq!(shared.qcache_stats().hits, 1);
/// shared.reclaim();
/// assert_eq!(shared.with(|a| a.sizes().allocated), Size(0));
/// ```
///
/// # Invariants
///
/// - `base` is the first multiple of `LINE` at or above the store's base
///   (which never moves); the store's committed bytes cover `base` to
///   `base + classes * slots * size_of::<CpuMags>()` (`slots` is
///   `pin.slots()`), which hold, for class `c` and slot `i`, a `CpuMags`
///   at `base + (c * slots + i) * size_of::<CpuMags>()` (`class_base[c] +
///   i * size_of::<CpuMags>()`), initialized.
/// - The slots' `CpuMags` are only accessed through `pin`'s magazine
///   operations, or through `&mut self`.
/// - Every address in slot `i`'s `CpuMags` of class `c` is a cached object
///   of class `c`: in a registered slab, neither live nor in its slab.
pub struct CpuCaches<'a, L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> {
    arena: &'a SyncArena<L, W, S, I>,
    pin: P,
    store: S,
    base: *mut u8,
    classes: usize,
    /// `pin.slots()` (fixed).
    slots: usize,
    /// Where class `c`'s `CpuMags` start: `base + c * slots *
    /// size_of::<CpuMags>()` (for `c < classes`; the rest unused).
    class_base: [*mut u8; MAX_CLASSES],
}

// SAFETY: a slot's memory is used only through the pin's magazine
// operations, which `CpuPin` makes atomic and orders, or through `&mut
// self`; the store is only grown in `new` and dropped with `self`, and
// `&self` reaches it only through `store()`, which needs `S: Sync` (a store
// may write through `&self`: a reschedule count in a `Cell`), so sharing
// `&self` shares no unsynchronised access to it; the arena is `Sync` under
// these bounds.
unsafe impl<L: RawLock, W: Waiter, S: Store + Send, I: Source + Send, P: CpuPin> Sync
    for CpuCaches<'_, L, W, S, I, P>
{
}
// SAFETY: moving the caches moves the store (`Send`) and the pin; the
// arena is only referenced, and is `Sync`.
unsafe impl<L: RawLock, W: Waiter, S: Store + Send, I: Source + Send, P: CpuPin + Send> Send
    for CpuCaches<'_, L, W, S, I, P>
{
}

impl<'a, L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> CpuCaches<'a, L, W, S, I, P> {
    /// Empty magazines for each of `pin.slots()` slots over `arena`'s
    /// quantum caches, kept in `store`, which must be able to commit
    /// [`magazine_store_bytes`](crate::qcache::magazine_store_bytes) of the
    /// arena's classes and the pin's slots. Without quantum caches in the
    /// arena, every call goes to the arena.
    pub fn new(arena: &'a SyncArena<L, W, S, I>, pin: P, mut store: S) -> Result<Self, ArenaError> {
        let classes = arena.caches().map_or(0, |q| q.classes());
        let slots = pin.slots();
        if slots == 0 {
            return Err(ArenaError::InvalidArgument("a CPU pin with no slots"));
        }
        let bytes = magazine_bytes(classes, slots).ok_or(ArenaError::Overflow)?;
        let skip = store.base().align_offset(LINE);
        store.grow(bytes.checked_add(skip).ok_or(ArenaError::Overflow)?)?;
        // SAFETY: `skip < LINE` and the store committed `skip + bytes` bytes
        // from its base, so this stays inside them.
        let base = unsafe { store.base().add(skip) };
        // SAFETY: the `bytes` bytes from `base` are committed and writable,
        // and only we access them; all-zero is a valid `CpuMags`.
        unsafe { core::ptr::write_bytes(base, 0, bytes) };
        let mut class_base = [base; MAX_CLASSES];
        for (c, b) in class_base.iter_mut().enumerate().take(classes) {
            // SAFETY: `c < classes`, so this is within the `bytes` bytes
            // committed from `base`.
            *b = unsafe { base.add(c * slots * size_of::<CpuMags>()) };
        }
        Ok(CpuCaches { arena, pin, store, base, classes, slots, class_base })
    }

    /// The arena.
    pub fn arena(&self) -> &'a SyncArena<L, W, S, I> {
        self.arena
    }

    /// The pin.
    pub fn pin(&self) -> &P {
        &self.pin
    }

    /// The store holding the magazines (for a store that may be shared
    /// between threads: the caches are, whatever their store).
    ///
    /// ```
    /// use vmspace::arena::{Source, Store};
    /// use vmspace::qcache::CpuPin;
    /// use vmspace::sync::{CpuCaches, RawLock, Waiter};
    /// fn store_of<'c, L: RawLock, W: Waiter, S: Store + Send + Sync, I: Source + Send, P: CpuPin>(
    ///     caches: &'c CpuCaches<'_, L, W, S, I, P>,
    /// ) -> &'c S {
    ///     caches.store()
    /// }
    /// ```
    ///
    /// A store that is not `Sync` (one counting in a `Cell`) stays out of
    /// reach of `&self`, which other threads share:
    ///
    /// ```compile_fail
    /// use vmspace::arena::{Source, Store};
    /// use vmspace::qcache::CpuPin;
    /// use vmspace::sync::{CpuCaches, RawLock, Waiter};
    /// fn store_of<'c, L: RawLock, W: Waiter, S: Store + Send, I: Source + Send, P: CpuPin>(
    ///     caches: &'c CpuCaches<'_, L, W, S, I, P>,
    /// ) -> &'c S {
    ///     caches.store()
    /// }
    /// ```
    pub fn store(&self) -> &S
    where
        S: Sync,
    {
        &self.store
    }

    /// Class `c`'s magazines in every slot (`c < classes`).
    #[inline]
    fn mags(&self, c: usize) -> MagSlots {
        debug_assert!(c < self.classes);
        // SAFETY: `c < classes`, so slot `i`'s `CpuMags` of class `c` is at
        // `class_base[c] + i * size_of::<CpuMags>()`, initialized and
        // aligned, and lives as long as `self`; it is only accessed through
        // the pin's magazine operations or `&mut self` (type invariants).
        // (`c % MAX_CLASSES` is `c`, `classes` being at most MAX_CLASSES: an
        // index the hit path need not check again.)
        unsafe { MagSlots::new(self.class_base[c % MAX_CLASSES], size_of::<CpuMags>(), self.slots) }
    }

    /// Allocate `size` (instant fit for sizes the caches do not serve).
    #[inline]
    pub fn alloc(&self, size: Size) -> Result<Addr, ArenaError> {
        self.alloc_wait(size, Wait::No)
    }

    /// Allocate `size`, waiting for space as `wait` allows when neither the
    /// caches nor the arena have any. A waiter retries its CPU's magazines,
    /// the depot, the slabs and the arena each time space comes back: an
    /// object freed into any slot while someone waits, or as for
    /// [`SyncArena::alloc`]. Objects in other CPUs' magazines reach it only
    /// when those fill up (to the depot) or are flushed.
    ///
    /// The hit (a pop and the object's claim) is inlined into the caller;
    /// everything else is out of line in `alloc_missed`.
    /// (`inline(always)`: with a restartable sequence's assembly in it, the
    /// compiler's size estimate kept it out of line, which cost a third of
    /// a hit pair in user space.)
    #[inline(always)]
    pub fn alloc_wait(&self, size: Size, wait: Wait) -> Result<Addr, ArenaError> {
        let served = self.arena.caches().and_then(|q| q.class_finder(size));
        if let Some((c, finder)) = served {
            // SAFETY: `mags(c)` has `pin.slots()` slots, touched only
            // through the pin's magazine operations (type invariant).
            let popped = unsafe { self.pin.pop(self.mags(c)) };
            let Popped::Round(a) = popped else {
                return self.alloc_missed(c, size, wait, popped);
            };
            match claim_with(finder, a, size) {
                Some(a) => return Ok(a),
                None => return self.alloc_missed(c, size, wait, popped),
            }
        }
        self.arena.alloc(size, Policy::InstantFit, wait)
    }

    /// Allocate `size`, a size the caches serve (`None` for any other),
    /// for a caller that waits in its own way (the C API waits at the root
    /// of a tree of arenas): the allocation after its first try, whose
    /// result, as [`alloc`](Self::alloc) gives it, is
    /// [`Retrying::first`], to try again while the caller waits
    /// ([`Retrying::again`]). It counts once in the statistics, a hit or a
    /// miss, however often it is tried again
    /// ([`QCacheStats::misses`](crate::qcache::QCacheStats::misses)): a miss
    /// is counted when the [`Retrying`] is dropped.
    ///
    /// The hit is inlined into the caller, as [`alloc_wait`](Self::alloc_wait)'s
    /// is; the rest is out of line.
    #[inline(always)]
    pub fn alloc_retrying(&self, size: Size) -> Option<Retrying<'_, 'a, L, W, S, I, P>> {
        let cache = self.arena.caches()?;
        let (c, finder) = cache.class_finder(size)?;
        // SAFETY: as in `alloc_wait`.
        let popped = unsafe { self.pin.pop(self.mags(c)) };
        if let Popped::Round(a) = popped {
            if let Some(a) = claim_with(finder, a, size) {
                return Some(Retrying::new(self, c, size, Ok(a), true));
            }
        }
        Some(self.retrying_missed(c, size, popped))
    }

    /// The rest of [`alloc_retrying`](Self::alloc_retrying) after a pop on
    /// class `c` that gave no object: its first try, as `alloc_missed`
    /// makes it.
    #[cold]
    #[inline(never)]
    fn retrying_missed(
        &self,
        c: usize,
        size: Size,
        popped: Popped,
    ) -> Retrying<'_, 'a, L, W, S, I, P> {
        // Made first, so that the miss is counted should `missed` unwind.
        let mut r = Retrying::new(self, c, size, UNTRIED, false);
        r.first = self.missed(c, size, popped);
        r
    }

    /// The rest of [`alloc_wait`](Self::alloc_wait) after a pop on class
    /// `c` that gave no object: a magazine from the depot or the
    /// slabs, or the arena, waiting as `wait` says.
    #[cold]
    #[inline(never)]
    fn alloc_missed(
        &self,
        c: usize,
        size: Size,
        wait: Wait,
        popped: Popped,
    ) -> Result<Addr, ArenaError> {
        // The allocation counts once, when it ends (also by unwinding): a
        // hit if a pop served it as it retried (the pop counts the hit),
        // else a miss.
        let mut r = Retrying::new(self, c, size, UNTRIED, false);
        r.first = self.missed(c, size, popped);
        // Waiting: the whole allocation again, this CPU's magazines first,
        // after every wake-up (an object freed into a slot while someone
        // waits, a magazine to the depot, a flush, space in the arena).
        self.arena.wait_for(wait, r.first, || r.again())
    }

    /// The first try of an allocation of class `c` after a pop that gave
    /// no object (`popped`): a magazine from the depot or the slabs, or
    /// the arena; straight to the arena for a caller the pin did not place
    /// on a slot. Adds the hits the pop took out of its word.
    fn missed(&self, c: usize, size: Size, popped: Popped) -> Result<Addr, ArenaError> {
        match popped {
            // Not an object of the class (the invariant says it cannot be):
            // dropped.
            Popped::Round(_) => {}
            Popped::Empty { hits } => self.count(hits, 0),
            Popped::Unpinned => return self.alloc_unplaced(c, size),
        }
        self.refill_or_alloc(c, size)
    }

    /// An allocation of class `c` for a caller the pin could not place on
    /// a slot: from the arena, and when that fails (no space, no tags, the
    /// source), an object the caches hold, from one depot magazine or the
    /// slabs there are (the rest of the magazine goes back to the slabs
    /// under the same lock, since no slot takes it; no slab is made for
    /// it). When they hold none, the caches are reclaimed (every depot's
    /// magazines to the slabs, wholly free slabs to the arena, as for a
    /// placed miss that finds nothing cached), and if that gave slabs back,
    /// the arena is tried once more: one reclaim, and no try that could
    /// only fail as the first did. (A reclaim first, as
    /// [`SyncArena::alloc`] makes, would break up the depots' magazines
    /// even when they hold this class's objects.) Objects free in slabs are
    /// allocated space as far as the arena knows: without this, such a
    /// caller failed, and waited in vain, beside them.
    #[cold]
    #[inline(never)]
    fn alloc_unplaced(&self, c: usize, size: Size) -> Result<Addr, ArenaError> {
        let arena = self.arena;
        let first = arena.with(|ar| ar.alloc(size, Policy::InstantFit));
        if first.is_ok() {
            return first;
        }
        if let Some(a) = arena.with_caches(|l| l.take_cached(c, size)).flatten() {
            // The magazine's rest went back to the slabs: waiters may take it.
            arena.freed();
            return Ok(a);
        }
        if arena.reclaim() == 0 {
            return first;
        }
        arena.with(|ar| ar.alloc(size, Policy::InstantFit))
    }

    /// A missed allocation's next try: this CPU's magazines (`hit` says
    /// when they served it; the pop counted the hit), then the depot, the
    /// slabs and the arena.
    pub(super) fn retry(&self, c: usize, size: Size, hit: &mut bool) -> Result<Addr, ArenaError> {
        // SAFETY: as in `alloc_wait`.
        let popped = unsafe { self.pin.pop(self.mags(c)) };
        if let Popped::Round(a) = popped {
            if let Some(a) = self.arena.caches().and_then(|q| q.claim(c, a, size)) {
                *hit = true;
                return Ok(a);
            }
        }
        self.missed(c, size, popped)
    }

    /// Add `hits` and `misses` to the caches' statistics.
    pub(super) fn count(&self, hits: u64, misses: u64) {
        if let Some(q) = self.arena.caches() {
            q.stats.hits.fetch_add(hits, Ordering::Relaxed);
            q.stats.misses.fetch_add(misses, Ordering::Relaxed);
        }
    }

    /// A magazine of class `c` from the depot or the slabs, installed in
    /// this CPU's slot, and an object from it; or, failing that, an
    /// allocation from the arena.
    fn refill_or_alloc(&self, c: usize, size: Size) -> Result<Addr, ArenaError> {
        let arena = self.arena;
        arena.refill_or_alloc(c, size, |mag| {
            // SAFETY: as for `pop`, and `mag` is not empty (tested first).
            // Possibly another CPU's slot by now, with room or not.
            if !mag.is_empty() && !unsafe { self.pin.install(self.mags(c), &mag) } {
                arena.give_back([(c, mag)]);
            }
        })
    }

    /// Free `[addr, addr + size)`. Cached objects go into this CPU's
    /// magazine; a bad free is an error and changes nothing.
    ///
    /// The hit (the check and a push) is inlined into the caller; a full
    /// magazine or an unplaced thread goes out of line to
    /// `free_missed`.
    #[inline(always)]
    pub fn free(&self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let Some(c) = self.arena.caches().map_or(Ok(None), |q| q.unclaim(addr, size))? else {
            return self.arena.free(addr, size);
        };
        // SAFETY: as in `alloc_wait`.
        match unsafe { self.pin.push(self.mags(c), addr.0) } {
            Pushed::Done => {
                // A waiter on this CPU can take it now (one load of a word
                // written only when a waiter comes or goes).
                self.arena.freed();
                Ok(())
            }
            pushed => self.free_missed(c, addr, pushed),
        }
    }

    /// The rest of [`free`](Self::free) after a push of `addr` (unclaimed,
    /// of class `c`) that did not take it.
    #[cold]
    #[inline(never)]
    fn free_missed(&self, c: usize, addr: Addr, mut pushed: Pushed) -> Result<(), ArenaError> {
        loop {
            match pushed {
                Pushed::Done => return Ok(()),
                Pushed::Full => {
                    // Take the older magazine out (on whatever CPU this is
                    // by now, if its are still full) for the depot, and
                    // push again.
                    let mut out = Magazine::EMPTY;
                    // SAFETY: as in `alloc_wait`.
                    if unsafe { self.pin.spill(self.mags(c), &mut out) } {
                        self.arena.give_back([(c, out)]);
                    }
                }
                Pushed::Unpinned => {
                    // Not live any more (unclaimed above): back to its slab.
                    self.arena.with_caches(|l| l.return_object(c, addr));
                    self.arena.freed();
                    return Ok(());
                }
            }
            // SAFETY: as in `alloc_wait`.
            pushed = unsafe { self.pin.push(self.mags(c), addr.0) };
        }
    }

    /// Hand every slot's cached objects back to the depot or the slabs, and
    /// add every slot's hits to the arena's statistics.
    pub fn flush(&mut self) {
        let arena = self.arena;
        let slots = self.slots;
        // SAFETY: the `classes * slots` `CpuMags` from `base`, class by
        // class, are initialized (type invariant); `&mut self` excludes every
        // magazine operation.
        let all = unsafe {
            core::slice::from_raw_parts_mut(self.base.cast::<CpuMags>(), self.classes * slots)
        };
        arena.with_caches(|l| l.flush_cpu(all, slots));
        arena.freed();
    }
}

impl<L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> Drop for CpuCaches<'_, L, W, S, I, P> {
    fn drop(&mut self) {
        self.flush();
    }
}
