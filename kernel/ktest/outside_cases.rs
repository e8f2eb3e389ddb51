// SPDX-License-Identifier: MIT OR Apache-2.0

//! An outside reviewer's adversarial cases, generic over the backend (both
//! builds): the `Vm` at the edges of its reservation and with impossible
//! arguments, bad frees of every kind through the thread-safe arena and its
//! per-CPU quantum caches, one object freed by four kthreads at once, and
//! eight kthreads (more than the CPUs) sharing per-CPU caches while space
//! runs out. Each claim tested is quoted from the rustdoc it comes from.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use kernel::time::{Instant, Monotonic};
use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CpuCaches, SyncArena, Wait};
use vmspace::vm::Vm;
use vmspace_kernel::{new_kernel_mutex, sleep_ms, KernelCpuPin, KernelMutex, KernelWaiter};
use vmspace_shim::{Addr, PageOps, Protection, Range, Size};
use vmspace_workload::Rng;

use crate::outcome::{ensure, Context, Failure, Outcome};
use crate::threads::run_threads;
use crate::touch::{stamp_pages, verify_pages};

type Shared<M> = SyncArena<KernelMutex, KernelWaiter, PageStore<M>, NoSource>;
type PerCpu<'a, M> = CpuCaches<'a, KernelMutex, KernelWaiter, PageStore<M>, NoSource, KernelCpuPin>;

/// A shared arena of quantum 16 over `span` with quantum caches for 1 to 8
/// quanta, its tables on `meta`.
pub(crate) fn shared<M: PageOps + Clone + Send>(
    meta: M,
    span: Range,
) -> Result<Shared<M>, Failure> {
    shared_n(meta, span, 8)
}

/// [`shared`] with caches for 1 to `classes` quanta.
fn shared_n<M: PageOps + Clone + Send>(
    meta: M,
    span: Range,
    classes: usize,
) -> Result<Shared<M>, Failure> {
    let mut a = Arena::on_pages("outside", Size(16), meta.clone(), 1 << 14, NoSource)
        .context("Arena::on_pages")?;
    a.add(span.base(), span.size()).context("add")?;
    let qc = PageStore::new(meta, Size(1 << 20)).context("qcache store")?;
    let lock = new_kernel_mutex!("vmspace_ktest outside arena")
        .map_err(|_| Failure::new("no memory for the mutex"))?;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for the waiter"))?;
    SyncArena::with_lock_and_caches(a, lock, waiter, QCacheConfig::new(classes, qc))
        .context("with_lock_and_caches")
}

/// Per-CPU caches over `s`, their magazines on `meta`.
fn per_cpu<M: PageOps + Clone + Send>(s: &Shared<M>, meta: M) -> Result<PerCpu<'_, M>, Failure> {
    let store = PageStore::new(meta, Size(1 << 20)).context("per-CPU store")?;
    // SAFETY: KUnit cases and `run_threads` threads are task context, and so
    // is every user of these caches.
    let pin = unsafe { KernelCpuPin::new() };
    CpuCaches::new(s, pin, store).context("CpuCaches::new")
}

pub(crate) fn range(base: usize, size: usize) -> Result<Range, Failure> {
    Range::from_size(Addr(base), Size(size)).context("range")
}

/// `Vm::reserve`: "A `size` of 0, or a `grain` that is not a power of two
/// at least the backend's page size, is refused with an error"; sizes no
/// address space can hold must be errors too, never a panic. Then the
/// edges: "Bad ranges (misaligned, outside the VM, mapping what is mapped,
/// unmapping what is not) are errors that leave the VM unchanged", in
/// particular ranges in the VM's own metadata past its limit; and
/// "Map ... the pages of `range` ... They read zero" after a remap.
pub fn vm_edges<P: PageOps + Copy>(ops: P) -> Outcome {
    let page = ops.page_size().0;
    let refused = [
        (0, page),
        (usize::MAX, page),
        (usize::MAX - page + 1, page),
        (1usize << 62, page),
        (page, page + 1),
        (page, page / 2),
        (page, 0),
        (page, 1usize << 63),
        (usize::MAX / 2 + 1, 1usize << 62),
    ];
    for (size, grain) in refused {
        ensure(
            Vm::reserve(ops, Size(size), Size(grain)).is_err(),
            "an impossible reservation was made",
        )?;
    }
    let mut vm = Vm::reserve(ops, Size(16 * page), Size(page)).context("reserve")?;
    let (base, limit) = (vm.base().0, vm.limit().0);
    let last = range(limit - page, page)?;
    vm.map(last).context("map the last page")?;
    // SAFETY: `last` was just mapped read-write and is ours alone.
    unsafe { verify_pages(last, Size(page), None) }?;
    // SAFETY: as above.
    unsafe { stamp_pages(last, Size(page), 7) };
    let meta = vm.reserved().0 - (limit - base);
    let bad = [
        range(limit - page, 2 * page)?,
        range(limit, page)?,
        range(limit, meta)?,
        range(base - page, page)?,
        range(base - page, 2 * page)?,
        range(base + 1, page)?,
        range(base, page + 1)?,
        range(base, 0)?,
        range(limit - 2 * page, 2 * page)?,
        range(base, limit - base + page)?,
    ];
    for r in bad {
        let mapped = vm.mapped();
        let map = vm.map(r);
        let unmap = vm.unmap(r);
        let deferred = vm.unmap_deferred(r);
        let prot = vm.protect(r, Protection::Read);
        ensure(map.is_err() && unmap.is_err(), "a bad range was mapped or unmapped")?;
        ensure(
            deferred.is_err() && prot.is_err(),
            "a bad range was unmapped deferred or protected",
        )?;
        ensure(vm.mapped() == mapped, "a refused call changed the mapped count")?;
        vm.check().context("check after a refused call")?;
    }
    ensure(
        vm.is_range_mapped(last).context("is_range_mapped")?,
        "the last page was unmapped by a refused call",
    )?;
    // SAFETY: `last` is still mapped read-write (checked) and ours alone.
    unsafe { verify_pages(last, Size(page), Some(7)) }?;
    vm.unmap(last).context("unmap the last page")?;
    let whole = vm.range();
    vm.map(whole).context("map all")?;
    // SAFETY: just mapped read-write, ours alone.
    unsafe { verify_pages(whole, Size(page), None) }
        .map_err(|_| Failure::new("a remapped page kept old data"))?;
    // The module's committed backend refuses protection; where it works,
    // a round trip must work.
    if vm.protect(whole, Protection::None).is_ok() {
        vm.protect(whole, Protection::ReadWrite).context("protect read-write")?;
    }
    vm.unmap(whole).context("unmap all")?;
    vm.trim().context("trim")?;
    ensure(vm.mapped() == Size(0), "pages left mapped")?;
    vm.check().context("check")
}

/// `SyncArena::free`, `CpuCaches::free`: "Frees are checked: an object is
/// freed only with the size it was allocated with, once ...; anything else
/// is [`ArenaError::BadFree`] and changes nothing"; `free_deferred`: "those
/// that are parts of a slab are refused"; `free_handle`: another arena's
/// handle is refused; the largest sizes are errors, not panics or waits.
pub fn bad_frees<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    let span = range(1 << 30, 1 << 20)?;
    let s = shared(meta.clone(), span)?;
    let other = shared(meta.clone(), range(1 << 31, 1 << 20)?)?;
    {
        let caches = per_cpu(&s, meta.clone())?;
        let a = caches.alloc(Size(20)).context("cached alloc")?;
        let before = s.with(|x| x.sizes());
        let wrong = [
            (a, 32),
            (a, 17),
            (a, 16),
            (a, 128),
            (a, 0),
            (Addr(a.0 + 16), 20),
            (Addr(a.0 + 1), 20),
            (Addr(span.base().0 + (512 << 10)), 64),
            (Addr(span.base().0 + (512 << 10)), 8192),
            (Addr(16), 16),
            (Addr(usize::MAX - 15), 16),
            (Addr(usize::MAX - 15), usize::MAX),
            (a, usize::MAX),
        ];
        for (addr, size) in wrong {
            ensure(
                caches.free(addr, Size(size)).is_err(),
                "a bad free through the per-CPU caches was accepted",
            )?;
            ensure(s.free(addr, Size(size)).is_err(), "a bad free through the arena was accepted")?;
            ensure(s.free_deferred(addr, Size(size)).is_err(), "a bad deferred free was accepted")?;
        }
        ensure(s.free_deferred(a, Size(20)).is_err(), "a slab's object was freed deferred")?;
        ensure(s.with(|x| x.sizes()) == before, "a refused free changed the arena")?;
        caches.free(a, Size(20)).context("the right free")?;
        ensure(
            caches.free(a, Size(20)).is_err(),
            "a double free through the per-CPU caches was accepted",
        )?;
        ensure(s.free(a, Size(20)).is_err(), "a double free through the arena was accepted")?;
        for size in [0, usize::MAX, usize::MAX - 15, 1usize << 63, 2 << 20] {
            ensure(caches.alloc(Size(size)).is_err(), "an impossible size was allocated")?;
            let w = Wait::Timeout(Duration::from_millis(20));
            let t0 = Instant::<Monotonic>::now();
            let r = s.alloc(Size(size), Policy::BestFit, w);
            let ms = t0.elapsed().as_millis();
            kernel::pr_info!(
                "bad_frees: alloc({size:#x}, Timeout(20 ms)) -> {r:?} after {ms} ms\n"
            );
            ensure(r.is_err(), "an impossible size was allocated")?;
            ensure(ms < 2000, "a 20 ms timed wait took over 2 s")?;
        }
        let max = s.qcache_max();
        let x = caches.alloc(max).context("alloc qcache_max")?;
        let y = caches.alloc(Size(max.0 + 1)).context("alloc qcache_max + 1")?;
        ensure(caches.free(y, max).is_err(), "qcache_max + 1 freed as qcache_max")?;
        ensure(caches.free(x, Size(max.0 + 1)).is_err(), "qcache_max freed as qcache_max + 1")?;
        caches.free(x, max).context("free qcache_max")?;
        caches.free(y, Size(max.0 + 1)).context("free qcache_max + 1")?;
        let h = other
            .with(|x| x.alloc_handle(Size(4096), Policy::BestFit))
            .context("other's handle")?;
        ensure(s.free_handle(h).is_err(), "another arena's handle was freed here")?;
        ensure(
            s.free_handle_deferred(h).is_err(),
            "another arena's handle was freed deferred here",
        )?;
        ensure(
            other.free_handle(h).context("free handle")? == Size(4096),
            "wrong size for a handle",
        )?;
        ensure(other.free_handle(h).is_err(), "a handle freed twice")?;
    }
    // `QCacheConfig`: "sizes of 1 to `classes` quanta (at most
    // MAX_CLASSES)": 0 and usize::MAX classes are errors, not panics.
    for classes in [0, 9, usize::MAX] {
        ensure(
            shared_n(meta.clone(), range(1 << 32, 1 << 20)?, classes).is_err(),
            "bad class count accepted",
        )?;
    }
    let most = shared_n(meta.clone(), range(1 << 32, 1 << 20)?, 8)?;
    ensure(most.qcache_max() == Size(8 * 16), "qcache_max is not 8 quanta")?;
    // Magazines in a store of one page: refused or working, never a panic.
    let tiny = PageStore::new(meta, Size(64)).context("tiny store")?;
    // SAFETY: task context, as every user of these caches.
    if let Ok(c) = CpuCaches::new(&most, unsafe { KernelCpuPin::new() }, tiny) {
        let a = c.alloc(Size(64)).context("alloc with a tiny magazine store")?;
        c.free(a, Size(64)).context("free with a tiny magazine store")?;
    }
    most.reclaim();
    ensure(
        most.with(|x| x.sizes().allocated) == Size(0),
        "memory left allocated in the widest caches",
    )?;
    s.reclaim();
    s.check().context("check")?;
    other.check().context("check other")?;
    ensure(s.with(|x| x.sizes().allocated) == Size(0), "memory left allocated")
}

/// "Of two frees of one object racing each other, on any path, exactly
/// one succeeds" (`SyncArena::free`), and each refused one counts in
/// `bad_frees` ("Frees of a cached object refused: not live (a double
/// free)"). Four kthreads free the same 48 objects at once, two through the
/// per-CPU caches and two through the arena, 40 rounds.
pub fn racing_double_frees<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    const N: usize = 48;
    let s = shared(meta.clone(), range(1 << 30, 1 << 20)?)?;
    let caches = per_cpu(&s, meta)?;
    let mut objs = [(Addr(0), 0usize); N];
    let mut rng = Rng::new(0x0D0B1E);
    for round in 0..40u32 {
        for o in objs.iter_mut() {
            let size = 1 + rng.below(128);
            *o = (caches.alloc(Size(size)).context("alloc")?, size);
        }
        let wins: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];
        let bad_before = s.qcache_stats().bad_frees;
        let started = AtomicU32::new(0);
        let ok = run_threads(4, |t| {
            // Sleep, not spin: four workers on two CPUs of a kernel without
            // forced preemption would never let the others start.
            started.fetch_add(1, Ordering::SeqCst);
            while started.load(Ordering::SeqCst) < 4 {
                sleep_ms(1);
            }
            for i in 0..N {
                let (a, size) = objs[(i + t * 7 + round as usize) % N];
                let r = if t % 2 == 0 { caches.free(a, Size(size)) } else { s.free(a, Size(size)) };
                match r {
                    Ok(()) => {
                        wins[(i + t * 7 + round as usize) % N].fetch_add(1, Ordering::SeqCst);
                    }
                    Err(ArenaError::BadFree { .. }) => {}
                    Err(_) => return false,
                }
            }
            true
        });
        ensure(ok, "a racing free failed with something other than BadFree")?;
        for w in wins.iter() {
            let n = w.load(Ordering::SeqCst);
            if n != 1 {
                kernel::pr_err!("racing_double_frees: round {round}: an object freed {n} times\n");
                return Err(Failure::new(
                    "an object raced by four frees was not freed exactly once",
                ));
            }
        }
        let st = s.qcache_stats();
        if st.slab_collisions == 0 && st.bad_frees - bad_before != 3 * N as u64 {
            kernel::pr_err!(
                "racing_double_frees: bad_frees grew by {}\n",
                st.bad_frees - bad_before
            );
            return Err(Failure::new("refused racing frees miscounted in bad_frees"));
        }
        s.check().context("check after a round")?;
    }
    drop(caches);
    s.reclaim();
    s.check().context("check")?;
    ensure(s.with(|x| x.sizes().allocated) == Size(0), "memory left allocated")
}

/// Eight kthreads (more than the CPUs, so tasks are preempted between pins)
/// share one set of per-CPU caches over 8 KiB of mapped memory, which runs
/// out: allocations wait up to 2 ms. No two live objects may overlap
/// (stamped and checked), only `NoSpace` may fail, and everything comes
/// back at the end.
pub fn oversubscribed_per_cpu<M: PageOps + Clone + Send, P: PageOps>(
    meta: M,
    vm_ops: P,
) -> Outcome {
    let page = vm_ops.page_size();
    let mut vm = Vm::reserve(vm_ops, Size(8 << 10), page).context("Vm::reserve")?;
    let span = vm.range();
    vm.map(span).context("map")?;
    let s = shared(meta.clone(), span)?;
    let nospace = AtomicU32::new(0);
    {
        let caches = per_cpu(&s, meta)?;
        let ok = run_threads(8, |t| {
            let mut rng = Rng::new(0xC0FFEE + t as u64);
            let mut live = [(Addr(0), 0usize); 48];
            let stamp = |a: Addr| (a.0 as u64) ^ ((t as u64 + 1) << 56);
            for _ in 0..500 {
                let slot = rng.below(live.len());
                let (a, size) = live[slot];
                if size != 0 {
                    // SAFETY: a live allocation of ours in mapped memory,
                    // at least 16 bytes and 16-aligned.
                    let (x, y) = unsafe {
                        (
                            a.as_ptr::<u64>().read_volatile(),
                            ((a.0 + size - 8) as *const u64).read_volatile(),
                        )
                    };
                    if x != stamp(a) || y != stamp(a) {
                        kernel::pr_err!(
                            "oversubscribed_per_cpu: thread {t}: object {:#x} overwritten\n",
                            a.0
                        );
                        return false;
                    }
                    if caches.free(a, Size(size)).is_err() {
                        return false;
                    }
                    live[slot] = (Addr(0), 0);
                    continue;
                }
                let size = 16 * (1 + rng.below(10));
                match caches.alloc_wait(Size(size), Wait::Timeout(Duration::from_millis(2))) {
                    Ok(a) => {
                        // SAFETY: just allocated, ours alone, in mapped
                        // memory, `size` >= 16 and 16-aligned.
                        unsafe {
                            a.as_ptr::<u64>().write_volatile(stamp(a));
                            ((a.0 + size - 8) as *mut u64).write_volatile(stamp(a));
                        }
                        live[slot] = (a, size);
                    }
                    Err(ArenaError::NoSpace { .. }) => {
                        nospace.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => return false,
                }
            }
            live.iter().filter(|l| l.1 != 0).all(|&(a, size)| caches.free(a, Size(size)).is_ok())
        });
        ensure(ok, "a thread found a clash or an unexpected error (see the log)")?;
    }
    kernel::pr_info!(
        "oversubscribed_per_cpu: {} allocations found no space\n",
        nospace.load(Ordering::Relaxed)
    );
    ensure(
        nospace.load(Ordering::Relaxed) > 0,
        "the space never ran out: the waits were not exercised",
    )?;
    s.reclaim();
    s.check().context("check")?;
    ensure(s.with(|x| x.sizes().allocated) == Size(0), "memory left allocated")?;
    drop(s);
    vm.unmap(span).context("unmap")
}

/// The outside reviewer's generic suite:
/// `outside_suite!(suite, path::TO_META_OPS, path::TO_VM_OPS)`.
#[macro_export]
macro_rules! outside_suite {
    ($suite:ident, $meta:path, $vm:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::outside_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn vm_edges() -> Outcome {
                report(cases::vm_edges(&$vm))
            }

            #[test]
            fn bad_frees() -> Outcome {
                report(cases::bad_frees(&$meta))
            }

            #[test]
            fn racing_double_frees() -> Outcome {
                report(cases::racing_double_frees(&$meta))
            }

            #[test]
            fn deferred_free_wakes_on_flush() -> Outcome {
                report($crate::outside_handles::deferred_free_wakes_on_flush(&$meta))
            }

            #[test]
            fn children_on_kthreads() -> Outcome {
                report($crate::outside_handles::children_on_kthreads(&$meta))
            }

            #[test]
            fn slab_handles_refused() -> Outcome {
                report($crate::outside_handles::slab_handles_refused(&$meta))
            }

            #[test]
            fn shared_child_of_shared_parent() -> Outcome {
                report($crate::outside_handles::shared_child_of_shared_parent(&$meta))
            }

            #[test]
            fn oversubscribed_per_cpu() -> Outcome {
                report(cases::oversubscribed_per_cpu(&$meta, &$vm))
            }
        }
    };
}
