//! Round 26 (outside reviewer): `allowed_cpus`, `run_only_on`,
//! `possible_cpus`, `SchedPin`, `RseqPin`, `UserCpuCaches`, `ParkingLock`,
//! `CondvarWaiter` and `UserArena` against their docs, including a run of
//! this binary under `taskset`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::{magazine_store_bytes, CpuPin, QCacheConfig};
use vmspace::sync::{RawLock, Wait, Waiter};
use vmspace::{Addr, Size};
use vmspace_user::{
    allowed_cpus, possible_cpus, run_only_on, CondvarWaiter, MmapBackend, ParkingLock, RseqPin,
    SchedPin, UserArena, UserCpuCaches,
};

fn here() -> usize {
    // SAFETY: no preconditions.
    usize::try_from(unsafe { libc::sched_getcpu() }).unwrap()
}

/// Run `f` on a fresh thread (its affinity mask is its own).
fn on_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

#[test]
fn allowed_cpus_is_the_threads_mask_in_order() {
    on_thread(|| {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty() && cpus.windows(2).all(|w| w[0] < w[1]));
        assert!(*cpus.last().unwrap() < possible_cpus(), "{cpus:?} vs {}", possible_cpus());
        assert!(cpus.contains(&here()));
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let list =
            status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
        let mut want = Vec::new();
        for part in list.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            want.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
        }
        assert_eq!(cpus, want);
    });
}

#[test]
fn run_only_on_moves_the_thread_before_returning_and_refuses_what_it_documents() {
    let cpus = allowed_cpus().unwrap();
    for &c in &cpus {
        on_thread(|| {
            for _ in 0..20 {
                run_only_on(c).unwrap();
                assert_eq!(here(), c, "not on CPU {c} when run_only_on returned");
                assert_eq!(allowed_cpus().unwrap(), [c]);
            }
        });
    }
    on_thread(|| {
        let before = allowed_cpus().unwrap();
        for bad in [libc::CPU_SETSIZE as usize, usize::MAX, 1 << 20] {
            let e = run_only_on(bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
        }
        // Numbers a cpu_set_t holds but the system has no CPU for.
        for bad in [possible_cpus(), libc::CPU_SETSIZE as usize - 1] {
            if bad < libc::CPU_SETSIZE as usize {
                let e = run_only_on(bad).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad}: {e}");
            }
        }
        assert_eq!(allowed_cpus().unwrap(), before);
    });
}

#[test]
fn sched_pin_takes_the_slot_of_the_cpu_then_the_next_free_one() {
    let cpus = allowed_cpus().unwrap();
    let n = possible_cpus();
    assert_eq!(SchedPin::new().slots(), n);
    assert_eq!(SchedPin::with_slots(0).slots(), 1);
    for &c in &cpus {
        on_thread(|| {
            run_only_on(c).unwrap();
            let pin = SchedPin::new();
            let a = pin.pin();
            assert_eq!(a, c, "the slot of the CPU sched_getcpu reports");
            let b = pin.pin();
            assert_eq!(b, (c + 1) % n, "the next free one");
            // SAFETY: pinned above, this thread.
            unsafe {
                pin.unpin(b);
                pin.unpin(a);
            }
            // Fewer slots than CPUs: CPUs past the last share slots.
            for slots in 1..=3 {
                let pin = SchedPin::with_slots(slots);
                let s = pin.pin();
                assert!(s < slots);
                assert_eq!(s, c % slots, "slots {slots} on CPU {c}");
                // SAFETY: pinned above.
                unsafe { pin.unpin(s) };
            }
        });
    }
}

#[test]
fn rseq_pin_slots_and_fallback() {
    let p = RseqPin::new();
    assert_eq!(p.slots(), possible_cpus());
    assert_eq!(RseqPin::with_slots(0).slots(), 1);
    let w = RseqPin::without_rseq(0);
    assert_eq!(w.slots(), 1);
    assert!(!w.uses_rseq());
    // pin and unpin are SchedPin's.
    on_thread(|| {
        let c = *allowed_cpus().unwrap().last().unwrap();
        run_only_on(c).unwrap();
        let s = p.pin();
        assert_eq!(s, c);
        // SAFETY: pinned above.
        unsafe { p.unpin(s) };
    });
}

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

/// Per-CPU caches on every allowed CPU, with as many slots as CPUs and
/// with one slot (RseqPin: the thread on CPU >= 1 goes to the arena):
/// allocations are distinct and every free succeeds, while the thread is
/// moved between CPUs.
#[test]
fn user_cpu_caches_give_distinct_objects_as_threads_hop_cpus() {
    let cpus = allowed_cpus().unwrap();
    for slots in [None, Some(1usize)] {
        let mut a = Arena::new("r26", Size(16), store(), store(), NoSource).unwrap();
        a.add(Addr(1 << 40), Size(1 << 20)).unwrap();
        let shared = UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap();
        let pin = slots.map_or_else(RseqPin::new, RseqPin::with_slots);
        let bytes = magazine_store_bytes(4, pin.slots()).unwrap();
        let caches: UserCpuCaches<'_, Store, NoSource> = UserCpuCaches::new(
            &shared,
            pin,
            PageStore::new(MmapBackend::new(), Size(bytes)).unwrap(),
        )
        .unwrap();
        std::thread::scope(|s| {
            for t in 0..3 {
                let caches = &caches;
                let cpus = &cpus;
                s.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..3000 {
                        if i % 100 == 0 {
                            run_only_on(cpus[(i / 100 + t) % cpus.len()]).unwrap();
                        }
                        let size = Size(16 * (1 + i % 4));
                        if i % 3 == 2 {
                            if let Some((a, sz)) = held.pop() {
                                caches.free(a, sz).unwrap();
                            }
                        } else {
                            held.push((caches.alloc(size).unwrap(), size));
                        }
                    }
                    for (a, sz) in held {
                        caches.free(a, sz).unwrap();
                    }
                });
            }
        });
        shared.check().unwrap();
    }
}

#[test]
fn condvar_waiter_epochs_timeouts_and_wakeups() {
    let w = CondvarWaiter::default();
    assert_eq!(w.epoch(), 0);
    let t0 = w.now();
    // A seen epoch that already moved: at once.
    w.notify_all();
    assert_eq!(w.epoch(), 1);
    assert!(w.wait(0, None));
    assert!(w.wait(0, Some(Duration::ZERO)));
    // Unchanged: times out (false).
    let start = Instant::now();
    assert!(!w.wait(1, Some(Duration::from_millis(30))));
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(!w.wait(1, Some(Duration::ZERO)));
    assert!(w.now() >= t0);
    // Woken by a notify, whatever the timeout, even the largest.
    for timeout in [
        None,
        Some(Duration::MAX),
        Some(Duration::from_secs(u64::MAX)),
        Some(Duration::from_secs(60)),
    ] {
        let seen = w.epoch();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                w.notify_all();
            });
            let start = Instant::now();
            // May return early (spuriously): loop on the epoch.
            while !w.wait(seen, timeout) {
                // A liveness bound only: the notifying thread may be slow
                // to run on a loaded machine.
                assert!(start.elapsed() < Duration::from_secs(30), "{timeout:?}: no wake-up");
            }
        });
        assert_eq!(w.epoch(), seen + 1);
    }
}

#[test]
fn parking_lock_excludes() {
    let l = ParkingLock::default();
    l.lock();
    assert!(!l.try_lock());
    let other = std::thread::scope(|s| s.spawn(|| l.try_lock()).join().unwrap());
    assert!(!other);
    // SAFETY: held.
    unsafe { l.unlock() };
    assert!(l.try_lock());
    // SAFETY: held.
    unsafe { l.unlock() };
    assert_eq!(format!("{l:?}"), "ParkingLock");
}

#[test]
fn user_arena_waits_for_a_free_from_another_thread() {
    let mut a = Arena::new("r26w", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(64)).unwrap();
    let shared: UserArena<Store, NoSource> = UserArena::new(a);
    let x = shared.alloc(Size(64), Policy::BestFit, Wait::No).unwrap();
    assert!(shared.alloc(Size(16), Policy::BestFit, Wait::No).is_err());
    let start = Instant::now();
    assert!(shared
        .alloc(Size(16), Policy::BestFit, Wait::Timeout(Duration::from_millis(30)))
        .is_err());
    assert!(start.elapsed() >= Duration::from_millis(30));
    let freed = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            freed.store(true, Ordering::SeqCst);
            shared.free(x, Size(64)).unwrap();
        });
        let y = shared.alloc(Size(16), Policy::BestFit, Wait::Forever).unwrap();
        assert!(freed.load(Ordering::SeqCst));
        shared.free(y, Size(16)).unwrap();
    });
    shared.check().unwrap();
}

/// Under `taskset -c <last>` (a mask that does not start at 0), the
/// thread's list and the pins' slots follow the CPU number.
#[test]
fn under_taskset() {
    if let Some(c) = std::env::var_os("R26_TASKSET") {
        let c: usize = c.to_str().unwrap().parse().unwrap();
        assert_eq!(allowed_cpus().unwrap(), [c]);
        assert_eq!(here(), c);
        let pin = SchedPin::new();
        let s = pin.pin();
        assert_eq!(s, c);
        // SAFETY: pinned above.
        unsafe { pin.unpin(s) };
        let rp = RseqPin::new();
        assert_eq!(rp.slots(), possible_cpus());
        return;
    }
    let last = *allowed_cpus().unwrap().last().unwrap();
    if last == 0 {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = match Command::new("taskset")
        .arg("-c")
        .arg(last.to_string())
        .arg(exe)
        .args(["--exact", "under_taskset", "--nocapture"])
        .env("R26_TASKSET", last.to_string())
        .output()
    {
        Ok(o) => o,
        Err(_) => return, // no taskset
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

/// rseq/mod.rs `with_slots`: "With them, a thread on a CPU numbered `slots`
/// or more gets `Popped::Unpinned` (its caches' calls go to the arena);
/// with the fallback, such CPUs share slots."
#[test]
fn a_cpu_past_the_slots_goes_to_the_arena_with_rseq_and_shares_without() {
    let cpus = allowed_cpus().unwrap();
    let Some(&high) = cpus.iter().find(|&&c| c >= 1) else { return };
    for (pin, rseq) in [(RseqPin::with_slots(1), true), (RseqPin::without_rseq(1), false)] {
        if rseq && !pin.uses_rseq() {
            continue;
        }
        let mut a = Arena::new("r26s", Size(16), store(), store(), NoSource).unwrap();
        a.add(Addr(1 << 40), Size(1 << 20)).unwrap();
        let shared = UserArena::with_quantum_caches(a, QCacheConfig::new(2, store())).unwrap();
        let bytes = magazine_store_bytes(2, pin.slots()).unwrap();
        let caches: UserCpuCaches<'_, Store, NoSource> = UserCpuCaches::new(
            &shared,
            pin,
            PageStore::new(MmapBackend::new(), Size(bytes)).unwrap(),
        )
        .unwrap();
        on_thread(|| {
            run_only_on(high).unwrap();
            for _ in 0..200 {
                let x = caches.alloc(Size(16)).unwrap();
                caches.free(x, Size(16)).unwrap();
            }
        });
        drop(caches);
        let st = shared.qcache_stats();
        if rseq {
            // To the arena, each a miss (`QCacheStats::misses`: "per-CPU
            // allocations whose caller the pin could not place on a slot";
            // they counted as neither before round 33).
            assert_eq!((st.hits, st.misses), (0, 200), "rseq, CPU {high} past 1 slot: {st:?}");
        } else {
            assert!(st.hits >= 150, "fallback, CPU {high} shares slot 0: {st:?}");
        }
        shared.check().unwrap();
    }
}
