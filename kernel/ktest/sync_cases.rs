// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on the core's thread-safe arena (`vmspace::sync::SyncArena`) with
//! the kernel's lock and waiter ([`KernelMutex`], [`KernelWaiter`]) and its
//! quantum caches, on real kernel threads.

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::qcache::CacheHandle;
use vmspace::sync::{SyncArena, Wait, Waiter};
use vmspace::vm::Vm;
use vmspace::workload::Rng;
use vmspace_kernel::{run_threads, sleep_ms, KernelMutex, KernelWaiter};
use vmspace_shim::{Addr, PageOps, Range, Size};

use crate::outcome::{ensure, Context, Failure, Outcome};

type Shared<M> = SyncArena<KernelMutex, KernelWaiter, PageStore<M>, NoSource>;

/// A shared arena of quantum 16 over `span`, with quantum caches for 1 to 8
/// quanta, its tables on `meta`.
fn shared<M: PageOps + Clone + Send>(meta: M, span: Range) -> Result<Shared<M>, Failure> {
    let mut a = Arena::on_pages("shared", Size(16), meta.clone(), 1 << 14, NoSource).context("Arena::on_pages")?;
    a.add(span.base(), span.size()).context("add")?;
    let qc = PageStore::new(meta, Size(1 << 20)).context("qcache store")?;
    let lock = KernelMutex::new().map_err(|_| Failure::new("no memory for the mutex"))?;
    let waiter = KernelWaiter::new().map_err(|_| Failure::new("no memory for the waiter"))?;
    SyncArena::new(a, lock, waiter, Some((8, qc))).context("SyncArena::new")
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
/// handles from one arena over mapped memory, stamping every allocation and
/// checking the stamps before freeing: no two live allocations overlap.
pub fn threads<M: PageOps + Clone + Send, P: PageOps>(meta: M, vm_ops: P, iterations: usize) -> Outcome {
    let page = vm_ops.page_size();
    let mut vm = Vm::reserve(vm_ops, Size(4 << 20), page).context("Vm::reserve")?;
    let span = vm.range();
    vm.map(span).context("map")?;
    let s = shared(meta, span)?;
    let ok = run_threads(4, |t| thread_body(&s, t, iterations).is_ok());
    ensure(ok, "a thread found a clash or an error (see the log)")?;
    s.reclaim();
    s.check().context("check")?;
    ensure(s.with(|a| a.sizes().allocated) == Size(0), "memory left allocated")?;
    drop(s);
    vm.unmap(span).context("unmap")
}

fn stamp(addr: Addr, t: usize) -> u64 {
    (addr.0 as u64) ^ ((t as u64 + 1) << 56)
}

fn thread_body<M: PageOps + Clone + Send>(s: &Shared<M>, t: usize, iterations: usize) -> Outcome {
    let result = (|| -> Outcome {
        let mut h = CacheHandle::new(s);
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
    crate::report("threads", result)
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
