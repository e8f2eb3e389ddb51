//! A thread-safe arena: an [`Arena`] behind a [`RawLock`], with quantum
//! caches and waiting for space.

use crate::atomic::AtomicUsize;
use core::cell::UnsafeCell;

use vmspace_shim::{Addr, Size};

use super::lock::{Held, RawLock};
use super::wait::{Waiter, WakeOnUnwind};
use crate::arena::{Arena, ArenaError, Handle, Policy, Refused, SegmentKinds, Source, Store};
use crate::qcache::{Locked, Magazine, QCache, QCacheConfig, QCacheStats};

mod waiting;

/// An [`Arena`] shared between threads.
///
/// Every arena operation takes the lock `L`. Sizes up to
/// [`qcache_max`](Self::qcache_max) can also be served by quantum caches
/// ([`QCache`]) through a per-thread [`CacheHandle`](super::CacheHandle) or
/// per-CPU [`CpuCaches`](super::CpuCaches), whose fast paths take no lock.
/// Allocations may wait for space ([`Wait`](super::Wait)) through the waiter `W`.
/// `&SyncArena` is a [`Source`], so arenas on other threads can import from
/// one shared parent.
///
/// # Invariants
///
/// - `arena` is only accessed with `lock` held, and so are the depots of
///   `caches` (every `Locked` view of them is made under it).
/// - The quantum caches' store is reached only through the base pointer
///   their tables keep (never through `&S`) once they are made.
pub struct SyncArena<L: RawLock, W: Waiter, S: Store, I: Source> {
    lock: L,
    waiter: W,
    waiters: AtomicUsize,
    arena: UnsafeCell<Arena<S, I>>,
    caches: Option<QCache<S>>,
}

// SAFETY: the arena and the depots are only reached with the lock held
// (type invariant), so one thread at a time uses them, which is sound when
// they may move between threads (`S: Send`, `I: Send`); the slab records
// are atomics reached through a pointer kept at construction, so no thread
// touches a store through a shared reference without the lock.
unsafe impl<L: RawLock, W: Waiter, S: Store + Send, I: Source + Send> Sync
    for SyncArena<L, W, S, I>
{
}
// SAFETY: owning the arena on another thread is sound when its parts may move.
unsafe impl<L: RawLock + Send, W: Waiter + Send, S: Store + Send, I: Source + Send> Send
    for SyncArena<L, W, S, I>
{
}

impl<L: RawLock + Default, W: Waiter + Default, S: Store, I: Source> SyncArena<L, W, S, I> {
    /// Share `arena` behind a new lock and waiter, without quantum caches.
    pub fn new(arena: Arena<S, I>) -> Self {
        Self::with_lock(arena, L::default(), W::default())
    }

    /// Share `arena` behind a new lock and waiter, with quantum caches as
    /// `caches` asks. Refused, it gives `arena` back untouched (the caches'
    /// store is released).
    #[expect(
        clippy::result_large_err,
        reason = "the arena, back to its owner; no allocator to box it"
    )]
    pub fn with_quantum_caches(
        arena: Arena<S, I>,
        caches: QCacheConfig<S>,
    ) -> Result<Self, Refused<Arena<S, I>>> {
        Self::with_lock_and_caches(arena, L::default(), W::default(), caches)
    }
}

impl<L: RawLock, W: Waiter, S: Store, I: Source> SyncArena<L, W, S, I> {
    /// Share `arena` behind `lock`, waking waiters through `waiter`, without
    /// quantum caches (for locks made with arguments, as in the kernel).
    pub fn with_lock(arena: Arena<S, I>, lock: L, waiter: W) -> Self {
        SyncArena {
            lock,
            waiter,
            waiters: AtomicUsize::new(0),
            arena: UnsafeCell::new(arena),
            caches: None,
        }
    }

    /// [`with_lock`](Self::with_lock), with quantum caches as `caches` asks.
    /// Refused, it gives `arena` back untouched (the lock, the waiter and
    /// the caches' store are released).
    #[expect(
        clippy::result_large_err,
        reason = "the arena, back to its owner; no allocator to box it"
    )]
    pub fn with_lock_and_caches(
        arena: Arena<S, I>,
        lock: L,
        waiter: W,
        caches: QCacheConfig<S>,
    ) -> Result<Self, Refused<Arena<S, I>>> {
        let cache = match QCache::new(caches, arena.quantum()) {
            Ok(cache) => cache,
            Err(e) => return Err(Refused::new(e, arena)),
        };
        let mut s = Self::with_lock(arena, lock, waiter);
        s.caches = Some(cache);
        Ok(s)
    }

    /// Run `f` on the arena with the lock held. This is the whole arena:
    /// quantum-cache slabs are held allocations in it, which no by-address
    /// free reaches, but its handle interface can free them; leave them be.
    /// Space that `f` gives back (an `add`, an `extend`, a free, a
    /// `flushed`) wakes no waiting allocation by itself: follow such a call
    /// with [`wake_waiters`](Self::wake_waiters).
    ///
    /// Always inlined: an instance's symbol names the arena's whole type and
    /// the caller's closure, which in the kernel's C API came to 546
    /// characters, past the kernel's 512 (`KSYM_NAME_LEN`; objtool refuses
    /// it on x86_64).
    ///
    /// Should `f` panic (a source's panic, in a give-back a free made), the
    /// lock is released and every waiter woken as the panic unwinds: what
    /// the call freed before the panic stays free.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(&mut Arena<S, I>) -> R) -> R {
        let unwinding = WakeOnUnwind::new(&self.waiters, &self.waiter);
        let r = {
            let _held = Held::new(&self.lock);
            // SAFETY: the lock is held for the whole call (type invariant).
            f(unsafe { &mut *self.arena.get() })
        };
        unwinding.disarm();
        r
    }

    /// The quantum caches, if the arena has them.
    #[inline]
    pub(crate) fn caches(&self) -> Option<&QCache<S>> {
        self.caches.as_ref()
    }

    /// Run `f` on the quantum caches' locked half with the lock held; `None`
    /// without caches.
    pub(crate) fn with_caches<R>(&self, f: impl FnOnce(&mut Locked<'_, S, I>) -> R) -> Option<R> {
        let cache = self.caches.as_ref()?;
        Some(self.with(|arena| {
            // SAFETY: `with` holds the lock that guards the arena and, by the
            // type invariant, every `Locked` of these caches.
            let mut locked = unsafe { Locked::new(cache, arena) };
            f(&mut locked)
        }))
    }

    /// The largest size the quantum caches serve (zero without caches).
    pub fn qcache_max(&self) -> Size {
        self.caches.as_ref().map_or(Size(0), QCache::max_size)
    }

    /// Free `[addr, addr + size)`, allocated with this size. A bad free is an
    /// error and changes nothing. Objects of the quantum caches freed here
    /// (without a cache in front) go back to their slab; of two frees of one
    /// object racing each other, on any path, exactly one succeeds.
    pub fn free(&self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let cached = match &self.caches {
            Some(cache) => cache.unclaim(addr, size)?,
            None => None,
        };
        match cached {
            Some(c) => {
                self.with_caches(|l| l.return_object(c, addr));
            }
            None => self.with(|a| {
                // A live cached object freed with a size of another class
                // (looked for in that class, not found) reaches the arena.
                let r = a.free(addr, size);
                match self.cached_bad_free(a, &r) {
                    Some(Some(live)) => {
                        Err(ArenaError::BadFree { addr, size, allocated: Some(live) })
                    }
                    _ => r,
                }
            })?,
        }
        self.freed();
        Ok(())
    }

    /// Whether `r`, a free the arena refused, named an object of a slab of
    /// the quantum caches, live or not (the arena holds the slab by handle,
    /// so it knows no allocation there): then the bad free is the caches',
    /// counted there and not in the arena, and this is the size the object
    /// was asked with when it is live.
    fn cached_bad_free(
        &self,
        a: &mut Arena<S, I>,
        r: &Result<(), ArenaError>,
    ) -> Option<Option<Size>> {
        let Err(ArenaError::BadFree { addr, allocated: None, .. }) = *r else { return None };
        let live = self.caches.as_ref()?.refused_free_of_object(addr)?;
        a.reattribute_bad_free();
        Some(live)
    }

    /// [`Arena::free_deferred`] under the lock: free an allocation made by
    /// address into the freed-but-not-flushed state, which no allocation
    /// takes until [`flushed`](Self::flushed). For address space the caller
    /// unmaps without an immediate TLB flush. Objects handed out by the
    /// quantum caches (through a [`CacheHandle`](super::CacheHandle) or
    /// [`CpuCaches`](super::CpuCaches)) are not to be freed this way: those
    /// that are parts of a slab are refused (a bad free; nothing changes);
    /// those a miss took from the arena itself, when the class had no slab
    /// record to spare (counted in
    /// [`slab_collisions`](crate::qcache::QCacheStats::slab_collisions)) or
    /// the arena no room for a slab, are allocations of their own and freed
    /// like any other. The refusal is a [`BadFree`](ArenaError::BadFree)
    /// with no allocated size, whatever the size passed (the arena holds
    /// no allocation of its own at a slab's object; the C API's `-ENOENT`),
    /// and is counted where the docs count bad frees of cached objects, in
    /// [`QCacheStats::bad_frees`](crate::qcache::QCacheStats::bad_frees),
    /// not in the arena's counters.
    pub fn free_deferred(&self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        self.with(|a| {
            let r = a.free_deferred(addr, size);
            self.cached_bad_free(a, &r);
            r
        })
    }

    /// [`Arena::flushed`] under the lock: the caller has flushed what it
    /// freed deferred; make it all free (and wake waiters). Returns how
    /// much became free.
    pub fn flushed(&self) -> Size {
        let freed = self.with(|a| a.flushed());
        if !freed.is_zero() {
            self.freed();
        }
        freed
    }

    /// [`Arena::free_handle`] under the lock: free the held allocation
    /// `handle` holds and return the size it was allocated with. A handle
    /// naming one of the quantum caches' slabs (also held allocations) is
    /// refused with [`ArenaError::BadHandle`], like a stale or foreign one,
    /// and nothing changes: callers that take handles from outside (the C
    /// API) cannot free a slab from under its objects.
    pub fn free_handle(&self, handle: Handle) -> Result<Size, ArenaError> {
        let size =
            self.with_held(handle.addr(), handle.tag(), |_| Some(handle), Arena::free_handle)?;
        self.freed();
        Ok(size)
    }

    /// [`free_handle`](Self::free_handle) into the freed-but-not-flushed
    /// state ([`Arena::free_handle_deferred`]): the same checks (a slab's
    /// handle is refused), and the range waits for
    /// [`flushed`](Self::flushed); no waiter is woken.
    pub fn free_handle_deferred(&self, handle: Handle) -> Result<Size, ArenaError> {
        self.with_held(handle.addr(), handle.tag(), |_| Some(handle), Arena::free_handle_deferred)
    }

    /// Free the held allocation whose handle has these parts (as
    /// [`Arena::handle_from_parts`] rebuilds it, then
    /// [`free_handle`](Self::free_handle)) under one taking of the lock.
    /// The handle is taken to be this arena's: a caller that keeps handles
    /// from several arenas keeps [`Handle::arena`] too and rebuilds them
    /// with [`Handle::from_parts`].
    pub fn free_handle_parts(&self, addr: Addr, tag: u32) -> Result<Size, ArenaError> {
        let size =
            self.with_held(addr, tag, |a| a.handle_from_parts(addr, tag), Arena::free_handle)?;
        self.freed();
        Ok(size)
    }

    /// [`free_handle_parts`](Self::free_handle_parts) into the
    /// freed-but-not-flushed state, as
    /// [`free_handle_deferred`](Self::free_handle_deferred).
    pub fn free_handle_deferred_parts(&self, addr: Addr, tag: u32) -> Result<Size, ArenaError> {
        self.with_held(addr, tag, |a| a.handle_from_parts(addr, tag), Arena::free_handle_deferred)
    }

    /// `free` the held allocation at `addr` in `tag` whose handle `handle`
    /// gives, under the lock; a slab of the quantum caches, or parts that
    /// name no handle, are [`ArenaError::BadHandle`], counted as bad frees
    /// as the arena counts the handles it refuses.
    #[inline]
    fn with_held(
        &self,
        addr: Addr,
        tag: u32,
        handle: impl FnOnce(&Arena<S, I>) -> Option<Handle>,
        free: impl FnOnce(&mut Arena<S, I>, Handle) -> Result<Size, ArenaError>,
    ) -> Result<Size, ArenaError> {
        self.with(|a| {
            let slab = self.caches.as_ref().is_some_and(|q| q.is_slab(addr));
            match if slab { None } else { handle(a) } {
                Some(h) => free(a, h),
                None => {
                    a.count_bad_free();
                    Err(ArenaError::BadHandle { addr, tag })
                }
            }
        })
    }

    /// Both magazines of class `c` of a cache in front were empty: a
    /// magazine from the depot or the slabs, with one object out of it
    /// claimed for a client that asked for `size` (after a reclaim, once
    /// more, when nothing could be had). Takes the lock; the caller must not
    /// be pinned.
    pub(crate) fn refill(&self, c: usize, size: Size) -> Option<(Addr, Magazine)> {
        match self.with_caches(|l| l.refill(c, size))? {
            // Slabs of other classes went back; one more try.
            None if self.reclaim() > 0 => self.with_caches(|l| l.refill(c, size))?,
            got => got,
        }
    }

    /// A cache's miss on class `c` for `size`: an object from a magazine of
    /// the depot or the slabs ([`refill`](Self::refill); the magazine, with
    /// the rest, goes to `install`), else instant fit from the arena. The
    /// caller must not be pinned.
    pub(crate) fn refill_or_alloc(
        &self,
        c: usize,
        size: Size,
        install: impl FnOnce(Magazine),
    ) -> Result<Addr, ArenaError> {
        match self.refill(c, size) {
            Some((a, mag)) => {
                install(mag);
                Ok(a)
            }
            None => self.with(|ar| ar.alloc(size, Policy::InstantFit)),
        }
    }

    /// Hand magazines, each with its class, to the depot or the slabs under
    /// one taking of the lock, and wake waiters (a cache's miss can take
    /// them now). The caller must not be pinned.
    pub(crate) fn give_back(&self, mags: impl IntoIterator<Item = (usize, Magazine)>) {
        self.with_caches(|l| {
            for (c, m) in mags {
                l.give_back(c, &m);
            }
        });
        self.freed();
    }

    /// Give everything the depots hold back to the slabs, and every wholly
    /// free slab back to the arena. Magazines held by live handles and
    /// per-CPU caches are not reachable; they come back when those flush or
    /// drop. Returns the number of slabs freed.
    pub fn reclaim(&self) -> usize {
        let freed = self.with_caches(|l| l.reclaim()).unwrap_or(0);
        if freed > 0 {
            self.freed();
        }
        freed
    }

    /// Quantum-cache statistics. Hits and misses of live handles and
    /// per-CPU caches are added when they miss, flush or drop: a handle's
    /// hits at its next miss in any size class, a CPU's hits of a class at
    /// its next miss in that class (each class's hits are counted in that
    /// class's magazine word of the CPU).
    pub fn qcache_stats(&self) -> QCacheStats {
        self.with_caches(|l| l.stats()).unwrap_or_default()
    }

    /// Verify the arena's invariants and the caches' (see
    /// [`QCache`]): every slab a held arena allocation of its class's slab
    /// size, no object both in its slab and live, live sizes in their class,
    /// depot magazines full of cached objects.
    pub fn check(&self) -> Result<(), ArenaError> {
        self.with(|arena| arena.check())?;
        self.with_caches(|l| l.check()).unwrap_or(Ok(()))
    }

    /// Take the arena back out. The caches are reclaimed first (no handle
    /// or per-CPU cache can be alive: they borrow this arena), so every
    /// slab whose objects are all free is freed in the arena, as any free:
    /// an imported span that empties goes back to the source (a source that
    /// panics there unwinds through this call, and the shared arena is
    /// dropped as it does).
    ///
    /// Refused while a slab still has an object out of it: allocated through
    /// the caches and not freed, or in the magazines of a cache that was
    /// forgotten (`mem::forget`) instead of dropped, which strands them for
    /// good. Outside the caches nothing could free such a slab, so the
    /// arena would hold it for ever (and its
    /// [`into_source`](Arena::into_source) would refuse for ever). The
    /// shared arena comes back in a [`Refused`] whose
    /// [`InUse`](ArenaError::InUse) counts the slabs' bytes: free the
    /// objects (through the caches or [`free`](Self::free)) and try again.
    #[expect(clippy::result_large_err, reason = "the shared arena, back to its owner")]
    pub fn into_inner(self) -> Result<Arena<S, I>, Refused<Self>> {
        self.reclaim();
        if let Some(q) = self.caches.as_ref() {
            let slabs = self.with(|a| {
                a.walk(SegmentKinds::ALLOCATED)
                    .filter(|s| s.held && q.is_slab(s.range.base()))
                    .map(|s| s.range.size().0)
                    .sum::<usize>()
            });
            if slabs > 0 {
                let e = ArenaError::InUse {
                    what: "quantum-cache slabs with objects out",
                    size: Size(slabs),
                };
                return Err(Refused::new(e, self));
            }
        }
        Ok(self.arena.into_inner())
    }
}
