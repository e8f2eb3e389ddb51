// SPDX-License-Identifier: MIT OR Apache-2.0

//! An outside reviewer's cases on thread-safe arenas: handles into one
//! with quantum caches (every tag at a slab's address is tried, since a
//! caller that takes handles from outside, the C API or a device, may name
//! any), and a shared arena importing from a shared parent, both locks
//! made at one call site, as the C API makes every arena's.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy, SegmentKinds, Source};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CpuCaches, SyncArena, Wait};
use vmspace_kernel::{new_kernel_mutex, sleep_ms, KernelCpuPin, KernelMutex, KernelWaiter};
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_workload::Rng;

use crate::outcome::{ensure, Context, Failure, Outcome};
use crate::outside_cases::{range, shared};
use crate::threads::run_threads;

/// Tags in the arena's table (`Arena::on_pages`' `max_tags`).
const TAGS: u32 = 1 << 12;

/// `SyncArena::free_handle`: "A handle naming one of the quantum caches'
/// slabs (also held allocations) is refused with `BadHandle`, like a stale
/// or foreign one, and nothing changes: callers that take handles from
/// outside (the C API) cannot free a slab from under its objects". Every
/// tag of the table, plus some past it, is tried at every slab's address,
/// through `free_handle_parts` and `free_handle_deferred_parts`; and the
/// slab by address, which "no by-address free reaches" (`SyncArena::with`).
pub fn slab_handles_refused<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    let span = Range::from_size(Addr(1 << 30), Size(1 << 20)).context("span")?;
    let mut a = Arena::on_pages("outside-slabs", Size(16), meta.clone(), TAGS as usize, NoSource)
        .context("arena")?;
    a.add(span.base(), span.size()).context("add")?;
    let qc = PageStore::new(meta.clone(), Size(1 << 20)).context("qcache store")?;
    let lock = new_kernel_mutex!("vmspace_ktest outside slabs")
        .map_err(|_| Failure::new("no memory for the mutex"))?;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for the waiter"))?;
    let s = SyncArena::with_lock_and_caches(a, lock, waiter, QCacheConfig::new(8, qc))
        .context("SyncArena")?;
    let store = PageStore::new(meta, Size(1 << 20)).context("per-CPU store")?;
    // SAFETY: a KUnit case runs in task context, and so does every use.
    let caches =
        CpuCaches::new(&s, unsafe { KernelCpuPin::new() }, store).context("CpuCaches::new")?;
    let mut objs = [(Addr(0), 0usize); 64];
    for (i, o) in objs.iter_mut().enumerate() {
        let size = 16 * (1 + i % 8);
        *o = (caches.alloc(Size(size)).context("cached alloc")?, size);
    }
    let mut slabs = [Range::empty(Addr(0)); 32];
    let n = s.with(|a| {
        let mut n = 0;
        for (slot, g) in slabs.iter_mut().zip(a.walk(SegmentKinds::ALLOCATED).filter(|g| g.held)) {
            *slot = g.range;
            n += 1;
        }
        n
    });
    ensure(n >= 8, "fewer slabs than classes used")?;
    let before = s.with(|a| a.sizes());
    for slab in &slabs[..n] {
        for tag in 1..TAGS + 64 {
            let by_handle = s.free_handle_parts(slab.base(), tag);
            let deferred = s.free_handle_deferred_parts(slab.base(), tag);
            if by_handle.is_ok() || deferred.is_ok() {
                kernel::pr_err!(
                    "slab_handles_refused: slab {:#x} freed through tag {tag}\n",
                    slab.base().0
                );
                return Err(Failure::new("a slab was freed through a handle"));
            }
        }
        ensure(s.free(slab.base(), slab.size()).is_err(), "a slab was freed by address")?;
        ensure(s.free_deferred(slab.base(), slab.size()).is_err(), "a slab was freed deferred")?;
    }
    ensure(s.with(|a| a.sizes()) == before, "refused frees changed the arena")?;
    s.check().context("check")?;
    for (addr, size) in objs {
        caches.free(addr, Size(size)).context("cached free")?;
    }
    drop(caches);
    s.reclaim();
    s.check().context("check after reclaim")?;
    ensure(s.with(|a| a.sizes().allocated) == Size(0), "memory left allocated")
}

type Tree<M, I> = SyncArena<KernelMutex, KernelWaiter, PageStore<M>, I>;

/// A shared arena over `source` (and `span`, if any) whose lock is in a
/// lockdep class of its own, as the C API's arenas' are: arenas of one tree
/// take each other's locks under their own.
fn tree_arena<M: PageOps + Clone, I: Source>(
    meta: M,
    span: Option<Range>,
    source: I,
) -> Result<Tree<M, I>, Failure> {
    let mut a = Arena::on_pages("outside-tree", Size(16), meta, 1024, source).context("arena")?;
    if let Some(r) = span {
        a.add(r.base(), r.size()).context("add")?;
    }
    let lock = KernelMutex::with_own_class(c"vmspace_ktest outside tree")
        .map_err(|_| Failure::new("no memory for the mutex"))?;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for the waiter"))?;
    Ok(SyncArena::with_lock(a, lock, waiter))
}

/// `SyncArena`: "`&SyncArena` is a [`Source`], so arenas on other threads
/// can import from one shared parent", and "A child that is itself shared
/// ..." (`Source for &SyncArena`). A shared child's allocation imports from
/// its shared parent with the child's lock held, so the parent's is taken
/// inside it. With both locks in one lockdep class (one call site of
/// `new_kernel_mutex!`, as every arena of the C API had) and no nesting
/// annotation, a lockdep kernel reported "possible recursive locking" here
/// (`make kunit-debug` failed on the report); the tree's locks now have a
/// class each (`KernelMutex::with_own_class`), as the C API's do.
pub fn shared_child_of_shared_parent<M: PageOps + Clone>(meta: M) -> Outcome {
    let span = Range::from_size(Addr(1 << 30), Size(1 << 20)).context("span")?;
    let parent = tree_arena(meta.clone(), Some(span), NoSource)?;
    {
        let child = tree_arena(meta, None, &parent)?;
        let a =
            child.alloc(Size(64), Policy::InstantFit, Wait::No).context("child alloc (imports)")?;
        ensure(
            parent.with(|p| p.sizes().allocated) != Size(0),
            "the child did not import from the parent",
        )?;
        child.free(a, Size(64)).context("child free")?;
        child.check().context("child check")?;
    }
    parent.check().context("parent check")?;
    ensure(parent.with(|p| p.sizes().allocated) == Size(0), "the child's span was not given back")
}

/// `SyncArena::flushed`: "make it all free (and wake waiters)", while
/// `free_deferred` leaves the range to no allocation "until
/// [`flushed`](Self::flushed)". A kthread waits (`Wait::Timeout(5 s)`) for
/// the whole span; another frees it deferred, checks the waiter still
/// waits 50 ms later, then calls `flushed`: the waiter must get the span,
/// and only after the flush.
pub fn deferred_free_wakes_on_flush<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    let span = range(1 << 30, 64 << 10)?;
    let s = shared(meta, span)?;
    let x = s.alloc(span.size(), Policy::BestFit, Wait::No).context("take the span")?;
    let flushed = AtomicU32::new(0);
    let ok = run_threads(2, |t| {
        if t == 0 {
            let r = s.alloc(span.size(), Policy::BestFit, Wait::Timeout(Duration::from_secs(5)));
            let after = flushed.load(Ordering::SeqCst) == 1;
            if !after {
                kernel::pr_err!(
                    "deferred_free_wakes_on_flush: waiter got {r:?} before the flush\n"
                );
            }
            return after && r.is_ok_and(|a| s.free(a, span.size()).is_ok());
        }
        let mut n = 0;
        while s.waiting() == 0 && n < 5000 {
            sleep_ms(1);
            n += 1;
        }
        let deferred = s.free_deferred(x, span.size()).is_ok();
        sleep_ms(50);
        let still = s.waiting() == 1;
        flushed.store(1, Ordering::SeqCst);
        let freed = s.flushed();
        if !(deferred && still && freed == span.size()) {
            kernel::pr_err!("deferred_free_wakes_on_flush: deferred {deferred}, still waiting {still}, flushed {freed:?}\n");
            return false;
        }
        true
    });
    ensure(ok, "a deferred free and its flush did not hand the span over (see the log)")?;
    s.check().context("check")?;
    ensure(s.with(|a| a.sizes().allocated) == Size(0), "memory left allocated")
}

/// "A shared arena is a source for arenas on any thread" (`Source for
/// &SyncArena`): four kthreads each run an arena importing from one shared
/// parent with quantum caches, free some of it deferred, and drop it with
/// ranges unflushed ("a span still holding an unflushed segment goes back
/// through `Source::release_unflushed`"). After the parent's `flushed`,
/// nothing is left allocated or unflushed in it.
pub fn children_on_kthreads<M: PageOps + Clone + Send + Sync>(meta: M) -> Outcome {
    let s = shared(meta.clone(), range(1 << 30, 1 << 20)?)?;
    let ok = run_threads(4, |t| {
        let body = || -> Outcome {
            let mut child =
                Arena::on_pages("child", Size(16), meta.clone(), 1024, &s).context("child")?;
            let mut rng = Rng::new(0xC41D + t as u64);
            let mut live = [(Addr(0), 0usize); 32];
            for _ in 0..2000 {
                let i = rng.below(live.len());
                let (a, size) = live[i];
                if size == 0 {
                    let size = 16 * (1 + rng.below(64));
                    match child.alloc(Size(size), Policy::InstantFit) {
                        Ok(a) => live[i] = (a, size),
                        Err(ArenaError::NoSpace { .. }) => {}
                        Err(e) => return Err(e).context("child alloc"),
                    }
                } else {
                    if rng.below(3) == 0 {
                        child.free_deferred(a, Size(size)).context("child free_deferred")?;
                    } else {
                        child.free(a, Size(size)).context("child free")?;
                    }
                    live[i] = (Addr(0), 0);
                }
                if rng.below(50) == 0 {
                    child.flushed();
                }
            }
            child.check().context("child check")?;
            for &(a, size) in live.iter().filter(|l| l.1 != 0) {
                child.free_deferred(a, Size(size)).context("child final free_deferred")?;
            }
            Ok(())
        };
        match body() {
            Ok(()) => true,
            Err(f) => {
                kernel::pr_err!("children_on_kthreads: thread {t}: {f}\n");
                false
            }
        }
    });
    ensure(ok, "a child failed (see the log)")?;
    s.flushed();
    s.reclaim();
    s.check().context("check")?;
    let sizes = s.with(|a| a.sizes());
    ensure(
        sizes.allocated == Size(0) && sizes.unflushed == Size(0),
        "the parent kept what the children gave back",
    )
}
