// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on the core's thread-safe arena (`vmspace::sync::SyncArena`) with
//! the kernel's lock and waiter ([`KernelMutex`], [`KernelWaiter`]) and its
//! quantum caches, per thread and per CPU ([`KernelCpuPin`]), on real kernel
//! threads.

use core::sync::atomic::{AtomicU32, Ordering};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::qcache::{CpuPin, QCacheConfig};
use vmspace::sync::{CacheHandle, CpuCaches};
use vmspace::sync::{SyncArena, Wait, Waiter};
use vmspace::vm::Vm;
use vmspace_workload::Rng;
use vmspace_kernel::{
    current_cpu, new_kernel_mutex, nr_cpu_ids, num_online_cpus, sleep_ms, KernelCpuPin, KernelMutex, KernelWaiter,
};
use vmspace_shim::{Addr, PageOps, Range, Size};

use crate::outcome::{ensure, Context, Failure, Outcome};
use crate::threads::run_threads;

type Shared<M> = SyncArena<KernelMutex, KernelWaiter, PageStore<M>, NoSource>;
type PerCpu<'a, M> = CpuCaches<'a, KernelMutex, KernelWaiter, PageStore<M>, NoSource, KernelCpuPin>;

/// Per-CPU caches over `s`, their magazines on `meta`.
fn per_cpu<M: PageOps + Clone + Send>(s: &Shared<M>, meta: M) -> Result<PerCpu<'_, M>, Failure> {
    let store = PageStore::new(meta, Size(1 << 20)).context("per-CPU store")?;
    // SAFETY: KUnit cases and the threads of `run_threads` are task context,
    // and so is every user of these caches.
    let pin = unsafe { KernelCpuPin::new() };
    CpuCaches::new(s, pin, store).context("CpuCaches::new")
}

/// What the thread cases allocate through: a thread's own cache handle, or
/// per-CPU caches shared by all.
trait Caches {
    fn alloc(&mut self, size: Size) -> Result<Addr, ArenaError>;
    fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError>;
}

impl<M: PageOps + Clone + Send> Caches for CacheHandle<'_, KernelMutex, KernelWaiter, PageStore<M>, NoSource> {
    fn alloc(&mut self, size: Size) -> Result<Addr, ArenaError> {
        CacheHandle::alloc(self, size)
    }
    fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        CacheHandle::free(self, addr, size)
    }
}

impl<M: PageOps + Clone + Send> Caches for &PerCpu<'_, M> {
    fn alloc(&mut self, size: Size) -> Result<Addr, ArenaError> {
        CpuCaches::alloc(self, size)
    }
    fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        CpuCaches::free(self, addr, size)
    }
}

/// A shared arena of quantum 16 over `span`, with quantum caches for 1 to 8
/// quanta, its tables on `meta`.
fn shared<M: PageOps + Clone + Send>(meta: M, span: Range) -> Result<Shared<M>, Failure> {
    let mut a = Arena::on_pages("shared", Size(16), meta.clone(), 1 << 14, NoSource).context("Arena::on_pages")?;
    a.add(span.base(), span.size()).context("add")?;
    let qc = PageStore::new(meta, Size(1 << 20)).context("qcache store")?;
    let lock = new_kernel_mutex!("vmspace_ktest shared arena").map_err(|_| Failure::new("no memory for the mutex"))?;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for the waiter"))?;
    SyncArena::with_lock_and_caches(a, lock, waiter, QCacheConfig::new(8, qc))
        .context("SyncArena::with_lock_and_caches")
}

/// Quantum-cache hits after the first miss, refused double frees, large
/// sizes past the caches, and everything back after a reclaim.
pub fn basic<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    let span = Range::from_size(Addr(1 << 30), Size(1 << 20)).context("span")?;
    let s = shared(meta, span)?;
    {
        let mut h = CacheHandle::new(&s);
        let a = h.alloc(Size(32)).context("cached alloc")?;
        h.free(a, Size(32)).context("cached free")?;
        ensure(h.free(a, Size(32)).is_err(), "double free through the cache accepted")?;
        let mut got = [Addr(0); 20];
        for g in got.iter_mut() {
            *g = h.alloc(Size(48)).context("cached alloc")?;
        }
        for g in got {
            h.free(g, Size(48)).context("cached free")?;
        }
        let big = s.alloc(Size(8192), Policy::BestFit, Wait::No).context("large alloc")?;
        s.free(big, Size(8192)).context("large free")?;
        ensure(s.qcache_stats().hits > 0, "no quantum-cache hit")?;
    }
    s.reclaim();
    s.check().context("check")?;
    ensure(s.with(|a| a.sizes().allocated) == Size(0), "memory left allocated after reclaim")
}

/// Four kernel threads allocate and free at random through their own cache
/// handles (with `per_cpu_caches`: through one set of per-CPU caches shared
/// by all) from one arena over mapped memory, stamping every allocation and
/// checking the stamps before freeing: no two live allocations overlap.
pub fn threads<M: PageOps + Clone + Send, P: PageOps>(meta: M, vm_ops: P, iterations: usize, per_cpu_caches: bool) -> Outcome {
    let page = vm_ops.page_size();
    let mut vm = Vm::reserve(vm_ops, Size(4 << 20), page).context("Vm::reserve")?;
    let span = vm.range();
    vm.map(span).context("map")?;
    let s = shared(meta.clone(), span)?;
    let started = AtomicU32::new(0);
    let ok = if per_cpu_caches {
        let caches = per_cpu(&s, meta)?;
        run_threads(4, |t| together(&started, 4) && thread_body(&mut &caches, t, iterations).is_ok())
    } else {
        run_threads(4, |t| together(&started, 4) && thread_body(&mut CacheHandle::new(&s), t, iterations).is_ok())
    };
    ensure(ok, "a thread found a clash or an error (see the log)")?;
    ensure(s.qcache_stats().hits > 0, "no quantum-cache hit")?;
    s.reclaim();
    s.check().context("check")?;
    ensure(s.with(|a| a.sizes().allocated) == Size(0), "memory left allocated")?;
    drop(s);
    vm.unmap(span).context("unmap")
}

/// Wait until `n` threads have called this (each thread once), so that the
/// threads of a case run at the same time rather than one after another.
fn together(started: &AtomicU32, n: u32) -> bool {
    started.fetch_add(1, Ordering::SeqCst);
    while started.load(Ordering::SeqCst) < n {
        sleep_ms(1);
    }
    true
}

fn stamp(addr: Addr, t: usize) -> u64 {
    (addr.0 as u64) ^ ((t as u64 + 1) << 56)
}

fn thread_body(h: &mut impl Caches, t: usize, iterations: usize) -> Outcome {
    let result = (|| -> Outcome {
        let mut rng = Rng::new(0x7417 + t as u64);
        let mut live = [(Addr(0), 0usize); 32];
        for _ in 0..iterations {
            let slot = rng.below(live.len());
            let (addr, size) = live[slot];
            if size != 0 {
                // SAFETY: `addr` is a live allocation of ours in mapped memory,
                // at least 16 bytes long and 16-aligned.
                let (first, last) = unsafe {
                    (addr.as_ptr::<u64>().read_volatile(), ((addr.0 + size - 8) as *const u64).read_volatile())
                };
                ensure(first == stamp(addr, t) && last == !stamp(addr, t), "an allocation was overwritten")?;
                h.free(addr, Size(size)).context("free")?;
                live[slot] = (Addr(0), 0);
            } else {
                let size = if rng.chance(900) { 16 * (1 + rng.below(8)) } else { 16 * (9 + rng.below(200)) };
                match h.alloc(Size(size)) {
                    Ok(addr) => {
                        // SAFETY: just allocated to us, in mapped memory.
                        unsafe {
                            addr.as_ptr::<u64>().write_volatile(stamp(addr, t));
                            ((addr.0 + size - 8) as *mut u64).write_volatile(!stamp(addr, t));
                        }
                        live[slot] = (addr, size);
                    }
                    Err(ArenaError::NoSpace { .. }) => {}
                    Err(e) => return Err(e).context("alloc"),
                }
            }
        }
        for (addr, size) in live {
            if size != 0 {
                h.free(addr, Size(size)).context("free at the end")?;
            }
        }
        Ok(())
    })();
    if let Err(f) = &result {
        kernel::pr_err!("thread {t}: {f}\n");
    }
    result
}

/// An allocation that waits for space gets it when another thread frees;
/// one with a timeout and no space gives up after the timeout.
pub fn waiting<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    let span = Range::from_size(Addr(1 << 30), Size(4096)).context("span")?;
    let s = shared(meta, span)?;
    let all = s.alloc(Size(4096), Policy::InstantFit, Wait::No).context("take everything")?;
    ensure(
        s.alloc(Size(64), Policy::InstantFit, Wait::No).is_err(),
        "an allocation succeeded in a full arena",
    )?;
    let ok = run_threads(2, |t| {
        if t == 0 {
            s.alloc(Size(64), Policy::InstantFit, Wait::Forever)
                .and_then(|a| s.free(a, Size(64)))
                .is_ok()
        } else {
            sleep_ms(50);
            s.free(all, Size(4096)).is_ok()
        }
    });
    ensure(ok, "the waiting allocation did not get the freed space")?;
    let all = s.alloc(Size(4096), Policy::InstantFit, Wait::No).context("take everything again")?;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for a clock"))?;
    let t0 = waiter.now();
    let r = s.alloc(Size(64), Policy::InstantFit, Wait::Timeout(core::time::Duration::from_millis(20)));
    let waited = waiter.now() - t0;
    ensure(r.is_err(), "a timed wait in a full arena succeeded")?;
    ensure(waited >= core::time::Duration::from_millis(20), "a timed wait gave up early")?;
    s.free(all, Size(4096)).context("free")?;
    s.check().context("check")
}

/// A timed wait with a signal pending sleeps. An interruptible sleep ends
/// at once while a signal is pending, and the core retries a wait that
/// returns early until its deadline, so the waiter spun on its CPU for the
/// whole timeout (found by a review). The test thread lets `SIGUSR1`
/// through, sends it to itself and makes one wait of 50 ms that nobody
/// ends: the call must sleep (a tick) rather than return at once.
pub fn signalled_timed_wait() -> Outcome {
    use kernel::bindings;
    /// `SIG_KTHREAD` and `SIG_IGN`: a kernel thread's handler values for
    /// "deliver" and "ignore".
    const DELIVER: usize = 2;
    const IGNORE: usize = 1;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for the waiter"))?;
    let me = kernel::current!().as_ptr();
    let sig = bindings::SIGUSR1 as core::ffi::c_int;
    // SAFETY: handler values 2 and 1 are `SIG_KTHREAD` and `SIG_IGN`, which
    // the kernel compares and never calls; `me` is this task, live.
    let pending = unsafe {
        bindings::kernel_sigaction(sig, core::mem::transmute::<usize, bindings::__sighandler_t>(DELIVER));
        bindings::send_sig(sig, me, 1);
        bindings::signal_pending(me) != 0
    };
    let t0 = waiter.now();
    let moved = waiter.wait(waiter.epoch(), Some(core::time::Duration::from_millis(50)));
    let took = waiter.now() - t0;
    // SAFETY: as above; the signal goes, and this thread ignores it again.
    unsafe {
        bindings::flush_signals(me);
        bindings::kernel_sigaction(sig, core::mem::transmute::<usize, bindings::__sighandler_t>(IGNORE));
    }
    ensure(pending, "no signal pending: the case tests nothing")?;
    ensure(!moved, "nobody notified, yet the epoch moved")?;
    ensure(
        took >= core::time::Duration::from_millis(1),
        "a timed wait with a signal pending returned without sleeping: its caller would spin",
    )
}

/// Per-CPU caches on one thread: hits after the first miss, refused double
/// and interior frees, large sizes past the caches, and everything back
/// after the caches are dropped and reclaimed.
pub fn per_cpu_basic<M: PageOps + Clone + Send>(meta: M) -> Outcome {
    let span = Range::from_size(Addr(1 << 30), Size(1 << 20)).context("span")?;
    let s = shared(meta.clone(), span)?;
    {
        let caches = per_cpu(&s, meta)?;
        let a = caches.alloc(Size(32)).context("cached alloc")?;
        caches.free(a, Size(32)).context("cached free")?;
        ensure(caches.free(a, Size(32)).is_err(), "double free through per-CPU caches accepted")?;
        let mut got = [Addr(0); 20];
        for g in got.iter_mut() {
            *g = caches.alloc(Size(48)).context("cached alloc")?;
        }
        ensure(caches.free(Addr(got[0].0 + 16), Size(48)).is_err(), "interior free accepted")?;
        for g in got {
            caches.free(g, Size(48)).context("cached free")?;
        }
        let big = caches.alloc(Size(8192)).context("large alloc")?;
        ensure(s.with(|a| a.lookup(big)).map(|(r, _)| r.size()) == Some(Size(8192)), "a large size did not come from the arena")?;
        caches.free(big, Size(8192)).context("large free")?;
    }
    let st = s.qcache_stats();
    ensure(st.hits >= 10 && st.misses >= 1, "no per-CPU cache hits after the first miss")?;
    ensure(s.reclaim() > 0, "reclaim freed no slab")?;
    s.check().context("check")?;
    ensure(s.with(|a| a.sizes().allocated) == Size(0), "memory left allocated after reclaim")
}

/// The kernel pin: one slot per possible CPU (`nr_cpu_ids`, at least the
/// CPUs online), and on four threads the slot pinned is the CPU the thread
/// runs on, held by one task at a time (each holds it a little while, so
/// that two holders of one slot would meet).
pub fn per_cpu_pin() -> Outcome {
    // SAFETY: KUnit cases and `run_threads` threads are task context.
    let pin = unsafe { KernelCpuPin::new() };
    ensure(pin.slots() == nr_cpu_ids(), "slots() is not nr_cpu_ids")?;
    let online = num_online_cpus();
    ensure(online >= 1 && pin.slots() >= online, "fewer slots than CPUs online")?;
    let inside: [AtomicU32; 64] = [const { AtomicU32::new(0) }; 64];
    let ok = run_threads(4, |_| {
        (0..2000).all(|i| {
            let slot = pin.pin();
            let here = current_cpu();
            let alone = inside.get(slot).is_none_or(|n| n.fetch_add(1, Ordering::Relaxed) == 0);
            for _ in 0..500 {
                core::hint::spin_loop();
            }
            if let Some(n) = inside.get(slot) {
                n.fetch_sub(1, Ordering::Relaxed);
            }
            // SAFETY: pinned just above, on this task.
            unsafe { pin.unpin(slot) };
            if i % 64 == 0 {
                sleep_ms(1);
            }
            slot < pin.slots() && slot == here && alone
        })
    });
    ensure(ok, "a pin returned another CPU than the current one, or a slot held twice")
}
