//! Quantum-cache magazines per CPU: one set of magazines per slot of a
//! [`CpuPin`], shared by every thread.

use core::mem::{align_of, size_of};

use vmspace_shim::{align, Addr, Size};

use super::{RawLock, SyncArena, Wait, Waiter};
use crate::arena::{ArenaError, Policy, Source, Store, STORE_ALIGN};
use crate::qcache::pair::MagPair;
use crate::qcache::pin::Pinned;
use crate::qcache::{Counters, CpuPin};

/// One slot's counters, at the start of its part of the store, followed
/// by one [`MagPair`] per class. All-zero is a valid state for both.
type SlotHead = Counters;

/// Slots start this many bytes apart at least (a cache line), so CPUs
/// working on their own slots do not share lines.
const SLOT_ALIGN: usize = 64;

const _: () = assert!(align_of::<SlotHead>() <= STORE_ALIGN);
const _: () = assert!(align_of::<MagPair>() <= STORE_ALIGN);
const _: () = assert!(size_of::<SlotHead>() % align_of::<MagPair>() == 0);

/// Quantum-cache magazines per CPU (per slot of the pin `P`) for a
/// [`SyncArena`], shared by every thread: `alloc` and `free` take `&self`.
///
/// Like [`CacheHandle`](super::CacheHandle), but the two magazines per class
/// belong to a CPU rather than a thread, so threads come and go without
/// handles of their own and the caches hold at most one set of magazines
/// per CPU. A hit pins the caller to a slot ([`CpuPin::pin`]: in the kernel,
/// preemption off on the current CPU), pops or pushes on that slot's
/// magazines and unpins: no lock, no division. The arena lock is never
/// taken while pinned: a miss unpins, gets a magazine from the depot or the
/// slabs under the lock, then pins again to install it in whichever slot it
/// is on now (or gives it back when that slot has no room); a free into two
/// full magazines takes the older one out while pinned and hands it to the
/// depot after unpinning. Frees are checked as with a `CacheHandle`; sizes
/// past [`SyncArena::qcache_max`] go to the arena. Each slot's hits and
/// misses are added to [`SyncArena::qcache_stats`] on its misses and on
/// [`flush`](Self::flush); dropping flushes.
///
/// The slots' magazines live in a [`Store`] (one cache-line-aligned stride
/// of counters and two magazines per class per slot).
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
/// - The store's first `slots * stride` bytes are committed and hold, for
///   each slot `i`, at `base + i * stride`, a `SlotHead` followed by
///   `classes` `MagPair`s, initialized; `base` is the store's base, which
///   never moves; `stride` is a multiple of `SLOT_ALIGN` and of the
///   alignment of both types.
/// - Slot `i`'s memory is only accessed by the holder of slot `i` of `pin`
///   (between `pin` returning `i` and `unpin(i)`), or through `&mut self`.
/// - Every address in slot `i`'s pair of class `c` is a cached object of
///   class `c`: in a registered slab, neither live nor in its slab.
pub struct CpuCaches<'a, L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> {
    arena: &'a SyncArena<L, W, S, I>,
    pin: P,
    store: S,
    base: *mut u8,
    classes: usize,
    stride: usize,
}

// SAFETY: a slot's memory is used only by the holder of that slot's pin,
// which `CpuPin` makes exclusive and orders, or through `&mut self`; the
// store is only grown in `new` and dropped with `self`, so sharing `&self`
// shares no access to it; the arena is `Sync` under these bounds.
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
    /// quantum caches, kept in `store`. Without quantum caches in the arena,
    /// every call goes to the arena.
    pub fn new(arena: &'a SyncArena<L, W, S, I>, pin: P, mut store: S) -> Result<Self, ArenaError> {
        let classes = arena.caches().map_or(0, |q| q.classes());
        let slots = pin.slots();
        if slots == 0 {
            return Err(ArenaError::InvalidArgument("a CPU pin with no slots"));
        }
        let bytes = classes
            .checked_mul(size_of::<MagPair>())
            .and_then(|b| b.checked_add(size_of::<SlotHead>()))
            .ok_or(ArenaError::Overflow)?;
        let stride = align::align_up(bytes, SLOT_ALIGN)?;
        let bytes = slots.checked_mul(stride).ok_or(ArenaError::Overflow)?;
        store.grow(bytes)?;
        let base = store.base();
        // SAFETY: `grow` committed `bytes` writable bytes at the store's base,
        // which only we access; all-zero is a valid `SlotHead` and `MagPair`.
        unsafe { core::ptr::write_bytes(base, 0, bytes) };
        Ok(CpuCaches { arena, pin, store, base, classes, stride })
    }

    /// The arena.
    pub fn arena(&self) -> &'a SyncArena<L, W, S, I> {
        self.arena
    }

    /// The pin.
    pub fn pin(&self) -> &P {
        &self.pin
    }

    /// The store holding the magazines.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Slot `i`'s counters and pairs.
    ///
    /// # Safety
    ///
    /// `i < pin.slots()`, and the caller has exclusive use of slot `i` (holds
    /// its pin, or `&mut self`) for as long as it uses the references.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn slot(&self, i: usize) -> (&mut SlotHead, &mut [MagPair]) {
        // SAFETY: `i < slots`, so the slot lies inside the committed,
        // initialized store (type invariant); its head is followed by
        // `classes` pairs, all suitably aligned (`stride` and
        // `size_of::<SlotHead>()` are multiples of their alignments, and so
        // is the base); the caller's exclusive use makes the references
        // unique.
        unsafe {
            let head = self.base.add(i * self.stride);
            let pairs = head.add(size_of::<SlotHead>()).cast::<MagPair>();
            (&mut *head.cast::<SlotHead>(), core::slice::from_raw_parts_mut(pairs, self.classes))
        }
    }

    /// Pin a slot, run `f` on its counters and pairs, unpin. `f` must not
    /// take the arena lock or sleep.
    #[inline]
    fn pinned<R>(&self, f: impl FnOnce(&mut SlotHead, &mut [MagPair]) -> R) -> R {
        let held = Pinned::new(&self.pin);
        // SAFETY: `held` is a pin on slot `held.slot() < slots` (CpuPin
        // contract), and lives until after `f` returns.
        let (head, pairs) = unsafe { self.slot(held.slot()) };
        f(head, pairs)
    }

    /// Allocate `size` (instant fit for sizes the caches do not serve).
    #[inline]
    pub fn alloc(&self, size: Size) -> Result<Addr, ArenaError> {
        self.alloc_wait(size, Wait::No)
    }

    /// Allocate `size`, waiting for space as `wait` allows when neither the
    /// caches nor the arena have any.
    #[inline]
    pub fn alloc_wait(&self, size: Size, wait: Wait) -> Result<Addr, ArenaError> {
        let arena = self.arena;
        if let Some((cache, c)) = arena.caches().and_then(|q| Some((q, q.class_of(size)?))) {
            let hit = self.pinned(|head, pairs| {
                let got = pairs[c].pop().and_then(|a| cache.claim(c, a, size));
                match got {
                    Some(_) => head.hit(),
                    None => head.miss(&cache.stats),
                }
                got
            });
            if let Some(a) = hit {
                return Ok(a);
            }
            if let Some((a, mag)) = arena.refill(c, size) {
                if !mag.is_empty() {
                    // Possibly another CPU's slot by now, with room or not.
                    if let Some(m) = self.pinned(|_, pairs| pairs[c].install(mag)) {
                        arena.give_back([(c, m)]);
                    }
                }
                return Ok(a);
            }
        }
        arena.alloc(size, Policy::InstantFit, wait)
    }

    /// Free `[addr, addr + size)`. Cached objects go into this CPU's
    /// magazine; a bad free is an error and changes nothing.
    #[inline]
    pub fn free(&self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let Some(c) = self.arena.caches().map_or(Ok(None), |q| q.unclaim(addr, size))? else {
            return self.arena.free(addr, size);
        };
        if let Some(full) = self.pinned(|_, pairs| pairs[c].push(addr.0)) {
            self.arena.give_back([(c, full)]);
        }
        Ok(())
    }

    /// Hand every slot's cached objects back to the depot or the slabs, and
    /// add every slot's counters to the arena's.
    pub fn flush(&mut self) {
        let arena = self.arena;
        for i in 0..self.pin.slots() {
            // SAFETY: `i < slots`; `&mut self` excludes every pinned section.
            let (head, pairs) = unsafe { self.slot(i) };
            arena.with_caches(|l| l.flush(head, pairs));
        }
        arena.freed();
    }
}

impl<L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> Drop for CpuCaches<'_, L, W, S, I, P> {
    fn drop(&mut self) {
        self.flush();
    }
}
