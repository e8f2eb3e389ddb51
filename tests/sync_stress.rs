//! Thread-safe arenas under load: several threads allocating random sizes
//! with mixed policies through quantum caches (per-thread handles, or one
//! set of per-CPU caches shared by all, pinned by restartable sequences or
//! by try-locks), the shared arena and child arenas importing from it;
//! threads stamping what the per-CPU caches hand out, also while they are
//! moved between CPUs and outnumber them; then waiting for space.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy};
use vmspace::qcache::{CpuPin, QCacheConfig};
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::vm::Vm;
use vmspace::{Addr, Range, Size};
use vmspace_user::{
    allowed_cpus, run_only_on, CondvarWaiter, MmapBackend, ParkingLock, RseqPin, SchedPin,
    UserArena, UserCpuCaches,
};
use vmspace_workload::Rng;

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(64 << 20)).unwrap()
}

type Parent = UserArena<Store, NoSource>;

fn parent(span: usize, classes: usize) -> Parent {
    parent_at(Addr(1 << 40), span, classes)
}

fn parent_at(base: Addr, span: usize, classes: usize) -> Parent {
    let mut a = Arena::new("parent", Size(16), store(), store(), NoSource).unwrap();
    a.add(base, Size(span)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store())).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Cache,
    Shared,
    Child,
}

/// How threads reach the quantum caches.
#[allow(clippy::large_enum_variant)] // one a thread, on its stack
enum Caches<'c, 'a, P: CpuPin> {
    /// A handle of the thread's own.
    Own(CacheHandle<'a, ParkingLock, CondvarWaiter, Store, NoSource>),
    /// Per-CPU caches shared by every thread.
    PerCpu(&'c UserCpuCaches<'a, Store, NoSource, P>),
}

impl<'a, P: CpuPin> Caches<'_, 'a, P> {
    fn new(p: &'a Parent, per_cpu: Option<&'a UserCpuCaches<'a, Store, NoSource, P>>) -> Self {
        per_cpu.map_or_else(|| Caches::Own(CacheHandle::new(p)), Caches::PerCpu)
    }
    fn alloc(&mut self, s: Size) -> Result<Addr, ArenaError> {
        match self {
            Caches::Own(h) => h.alloc(s),
            Caches::PerCpu(c) => c.alloc(s),
        }
    }
    fn free(&mut self, a: Addr, s: Size) -> Result<(), ArenaError> {
        match self {
            Caches::Own(h) => h.free(a, s),
            Caches::PerCpu(c) => c.free(a, s),
        }
    }
}

fn stress<P: CpuPin>(threads: usize, ops: usize, per_cpu: Option<P>) {
    let p = parent(1 << 30, 8);
    let initial = p.with(|a| a.sizes());
    let cpu = per_cpu.map(|pin| CpuCaches::new(&p, pin, store()).unwrap());
    let barrier = Barrier::new(threads);
    let everything: Mutex<Vec<Range>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (p, barrier, everything, cpu) = (&p, &barrier, &everything, cpu.as_ref());
            scope.spawn(move || {
                let mut rng = Rng::new(1000 + t as u64);
                let mut cache = Caches::new(p, cpu);
                let mut child = Arena::new("child", Size(16), store(), store(), p).unwrap();
                let mut live: Vec<(Addr, Size, Via)> = Vec::new();
                for i in 0..ops {
                    if !live.is_empty() && rng.chance(450) {
                        let (a, s, via) = live.swap_remove(rng.below(live.len()));
                        match via {
                            Via::Cache => cache.free(a, s).unwrap(),
                            Via::Shared => p.free(a, s).unwrap(),
                            Via::Child => child.free(a, s).unwrap(),
                        }
                        continue;
                    }
                    let policy =
                        [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit]
                            [rng.below(4)];
                    let (r, s, via) = match rng.below(10) {
                        0..=4 => {
                            let s = Size(16 * rng.between(1, 8));
                            (cache.alloc(s), s, Via::Cache)
                        }
                        5..=6 => {
                            let s = Size(rng.between(1, 4096));
                            (p.alloc(s, policy, Wait::No), s, Via::Shared)
                        }
                        7 => {
                            let s = Size(16 * rng.between(1, 64));
                            let c = Constraints::new(s).align(Size(256)).policy(policy);
                            (p.xalloc(&c, Wait::No), s, Via::Shared)
                        }
                        _ => {
                            let s = Size(rng.between(1, 2048));
                            (child.alloc(s, policy), s, Via::Child)
                        }
                    };
                    live.push((r.unwrap_or_else(|e| panic!("thread {t} op {i}: {e}")), s, via));
                    if i % 997 == 0 {
                        p.check().unwrap();
                    }
                }
                everything
                    .lock()
                    .unwrap()
                    .extend(live.iter().map(|&(a, s, _)| Range::from_size(a, s).unwrap()));
                barrier.wait();
                if t == 0 {
                    let mut all = everything.lock().unwrap();
                    all.sort_by_key(|r| r.base());
                    for w in all.windows(2) {
                        assert!(
                            !w[0].overlaps(&w[1]),
                            "live ranges overlap: {} and {}",
                            w[0],
                            w[1]
                        );
                    }
                    p.check().unwrap();
                }
                barrier.wait();
                for (a, s, via) in live {
                    match via {
                        Via::Cache => cache.free(a, s).unwrap(),
                        Via::Shared => p.free(a, s).unwrap(),
                        Via::Child => child.free(a, s).unwrap(),
                    }
                }
                child.check().unwrap();
                assert_eq!(child.sizes().allocated, Size(0));
            });
        }
    });
    drop(cpu);
    let stats = p.qcache_stats();
    assert!(stats.hits > stats.misses, "{stats:?}");
    p.reclaim();
    p.check().unwrap();
    assert_eq!(p.with(|a| a.sizes()), initial, "freeing everything restores the initial sizes");
}

#[test]
fn two_threads() {
    stress::<SchedPin>(2, 20_000, None);
}

#[test]
fn four_threads() {
    stress::<SchedPin>(4, 10_000, None);
}

#[test]
fn two_threads_per_cpu_caches() {
    stress(2, 20_000, Some(SchedPin::new()));
    stress(2, 20_000, Some(RseqPin::new()));
}

#[test]
fn four_threads_per_cpu_caches() {
    stress(4, 10_000, Some(SchedPin::new()));
    stress(4, 10_000, Some(RseqPin::new()));
}

fn stamp(addr: Addr, t: usize) -> u64 {
    (addr.0 as u64) ^ ((t as u64 + 1) << 56)
}

/// Four threads allocate and free through one set of per-CPU caches over
/// mapped memory, stamping both ends of every allocation and checking the
/// stamps before freeing it: no object is ever handed to two threads at
/// once, and nothing is lost. With one slot, the two CPUs' threads contend
/// for it all the time; with two, they mostly stay on their own. With
/// restartable sequences on one slot, threads on the second CPU cannot be
/// placed and go to the arena, sharing objects with the slot's.
#[test]
fn per_cpu_caches_hand_each_object_to_one_thread_at_a_time() {
    stamped(SchedPin::with_slots(1), false, 4, false);
    stamped(SchedPin::with_slots(2), false, 4, false);
    stamped(RseqPin::new(), true, 4, false);
    let one = RseqPin::with_slots(1);
    let rseq = one.uses_rseq();
    stamped(one, rseq, 4, false);
}

/// Six threads on the machine's CPUs (more threads than CPUs here, so they
/// are preempted inside their sequences), each moving itself to another
/// CPU every few operations with `sched_setaffinity` and interrupted by
/// signals from another thread all the while (a signal delivered inside a
/// restartable sequence restarts it): as above, and every 16-byte unit of
/// the arena is marked live in a shared bitmap by the thread it is handed
/// to, which checks that no one held it, and unmarked when freed: no object
/// is ever handed out twice or lost.
#[test]
fn per_cpu_caches_survive_migration_and_preemption() {
    stamped(RseqPin::new(), true, 6, true);
    stamped(SchedPin::new(), false, 6, true);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Send SIGUSR2 (handled, doing nothing) to every thread in `targets` in
/// turn until `stop` is set.
fn signal_storm(targets: &Mutex<Vec<libc::pthread_t>>, stop: &std::sync::atomic::AtomicBool) {
    // SAFETY: installs a handler that does nothing (async-signal-safe) for
    // SIGUSR2, which nothing else in these tests uses; SA_RESTART keeps
    // interrupted system calls going.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
    }
    while !stop.load(Ordering::Relaxed) {
        for &t in targets.lock().unwrap().iter() {
            // SAFETY: `t` is a live thread of the scope (removed before it
            // ends); signalling it is harmless.
            unsafe { libc::pthread_kill(t, libc::SIGUSR2) };
        }
        std::thread::yield_now();
    }
}

fn stamped<P: CpuPin>(pin: P, rseq: bool, threads: usize, migrate: bool) {
    let mut vm = Vm::reserve(MmapBackend::new(), Size(16 << 20), Size(2 << 20)).unwrap();
    let span = vm.range();
    vm.map(span).unwrap();
    let p = parent_at(span.base(), span.size().0, 8);
    // CPU numbers, not a count: a restartable-sequence pin indexes its
    // slots by the CPU's number, and a thread on a CPU numbered past them
    // goes to the arena directly (taskset -c 1 with one slot used no cache).
    let cpus = allowed_cpus().expect("the thread's affinity mask");
    // Slots a restartable-sequence pin gives every CPU (any pin that takes
    // a free slot when its own is busy places every thread).
    let cpu_slots = if rseq { pin.slots() } else { usize::MAX };
    let cpu = CpuCaches::new(&p, pin, store()).unwrap();
    // One bit per 16-byte unit of the span: live or not.
    let units = span.size().0 / 16;
    let live_units: Vec<AtomicU64> = (0..units.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
    let mark = |addr: Addr, size: usize, live: bool| {
        for u in (addr.0 - span.base().0) / 16..(addr.0 - span.base().0 + size) / 16 {
            let bit = 1u64 << (u % 64);
            let old = if live {
                live_units[u / 64].fetch_or(bit, Ordering::AcqRel)
            } else {
                live_units[u / 64].fetch_and(!bit, Ordering::AcqRel)
            };
            assert_eq!(old & bit != 0, !live, "unit {u} of {addr:?} (+{size}) handed out twice");
        }
    };
    let targets = Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        if migrate {
            scope.spawn(|| signal_storm(&targets, &stop));
        }
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (cpu, mark, targets, cpus) = (&cpu, &mark, &targets, &cpus);
                scope.spawn(move || {
                    if migrate {
                        // SAFETY: pthread_self has no preconditions.
                        targets.lock().unwrap().push(unsafe { libc::pthread_self() });
                    }
                    let mut rng = Rng::new(0x7417 + t as u64);
                    let mut live = [(Addr(0), 0usize); 64];
                    for i in 0..50_000 {
                        if migrate && i % 7 == 0 {
                            run_only_on(cpus[rng.below(cpus.len())]).expect("an allowed CPU");
                        }
                        let slot = rng.below(live.len());
                        match live[slot] {
                            (_, 0) => {
                                let quanta = if rng.chance(900) {
                                    rng.between(1, 8)
                                } else {
                                    rng.between(9, 208)
                                };
                                let size = 16 * quanta;
                                let addr = cpu.alloc(Size(size)).unwrap();
                                if migrate {
                                    mark(addr, size, true);
                                }
                                // SAFETY: just allocated to this thread, in mapped
                                // memory, at least 16 bytes and 16-aligned.
                                unsafe {
                                    addr.as_ptr::<u64>().write_volatile(stamp(addr, t));
                                    ((addr.0 + size - 8) as *mut u64)
                                        .write_volatile(!stamp(addr, t));
                                }
                                live[slot] = (addr, size);
                            }
                            (addr, size) => {
                                // SAFETY: a live allocation of this thread, as above.
                                let (first, last) = unsafe {
                                    (
                                        addr.as_ptr::<u64>().read_volatile(),
                                        ((addr.0 + size - 8) as *const u64).read_volatile(),
                                    )
                                };
                                assert_eq!((first, last), (stamp(addr, t), !stamp(addr, t)));
                                if migrate {
                                    mark(addr, size, false);
                                }
                                cpu.free(addr, Size(size)).unwrap();
                                live[slot] = (Addr(0), 0);
                            }
                        }
                    }
                    for (addr, size) in live.into_iter().filter(|&(_, s)| s != 0) {
                        if migrate {
                            mark(addr, size, false);
                        }
                        cpu.free(addr, Size(size)).unwrap();
                    }
                    if migrate {
                        // SAFETY: pthread_self has no preconditions.
                        let me = unsafe { libc::pthread_self() };
                        // SAFETY: pthread_equal compares two thread ids.
                        targets
                            .lock()
                            .unwrap()
                            .retain(|&t| unsafe { libc::pthread_equal(t, me) } == 0);
                    }
                })
            })
            .collect();
        // Stop the signals whatever happened, then report a panic.
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Ordering::Relaxed);
        for r in results {
            if let Err(e) = r {
                std::panic::resume_unwind(e);
            }
        }
    });
    p.check().unwrap();
    drop(cpu);
    let stats = p.qcache_stats();
    // (Unless some CPU this process may run on has no restartable-sequence
    // slot: threads there bypass the caches, and the scheduler may have
    // kept every thread on such a CPU.)
    if cpus.iter().all(|&c| c < cpu_slots) {
        assert!(stats.hits > 10 * stats.misses, "{stats:?}");
    }
    p.reclaim();
    p.check().unwrap();
    assert_eq!(p.with(|a| a.sizes().allocated), Size(0));
}

#[test]
fn a_waiter_gets_the_space_another_thread_frees() {
    let p = parent(4096, 1);
    let all = p.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    assert!(matches!(
        p.alloc(Size(1024), Policy::InstantFit, Wait::No),
        Err(ArenaError::NoSpace { .. })
    ));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            p.alloc(Size(1024), Policy::InstantFit, Wait::Timeout(Duration::from_secs(20)))
        });
        std::thread::sleep(Duration::from_millis(100));
        p.free(all, Size(4096)).unwrap();
        let got = waiter.join().unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
        p.free(got, Size(1024)).unwrap();
    });
    p.check().unwrap();
}

#[test]
fn waiting_for_space_times_out() {
    let p = parent(4096, 1);
    let all = p.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let started = Instant::now();
    let e = p
        .alloc(Size(16), Policy::InstantFit, Wait::Timeout(Duration::from_millis(150)))
        .unwrap_err();
    assert!(matches!(e, ArenaError::NoSpace { .. }), "{e:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    p.free(all, Size(4096)).unwrap();
}
