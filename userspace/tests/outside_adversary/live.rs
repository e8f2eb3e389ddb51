//! Statistics read while others churn, and waiters that time out.

use super::*;

/// While four threads churn through every door (good frees, double frees,
/// wrong sizes, deferred frees and flushes, reclaims), a reader takes
/// snapshots: in each, the arena's sizes add up (`total = allocated + free
/// + unflushed`, the span unchanged), its counters never go down ("They
/// only ever increase"), the caches' cumulative statistics never go down,
/// slabs now = created - freed, objects in slabs at most 64 a slab, and
/// `check()` passes.
#[test]
fn statistics_read_while_others_churn_are_consistent_and_monotonic() {
    const SPAN: usize = 256 << 10;
    let s = &shared(BASE, SPAN, 8);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let done = &AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for t in 0..3u64 {
                sc.spawn(move || {
                    let mut rng = Rng::new(77 + t);
                    let mut h = Handle::new(s);
                    let mut mine: Vec<(Addr, usize)> = Vec::new();
                    let t0 = Instant::now();
                    while t0.elapsed() < Duration::from_secs(2) {
                        match rng.below(10) {
                            0..=4 if mine.len() < 64 => {
                                let size = if rng.below(5) == 0 {
                                    Q * rng.between(9, 100)
                                } else {
                                    rng.between(1, 128)
                                };
                                let r = match rng.below(3) {
                                    0 => cpu.alloc(Size(size)),
                                    1 => h.alloc(Size(size)),
                                    _ => s.alloc(Size(size), Policy::BestFit, Wait::No),
                                };
                                if let Ok(a) = r {
                                    mine.push((a, size));
                                }
                            }
                            5 if !mine.is_empty() => {
                                let (a, size) = mine.swap_remove(rng.below(mine.len()));
                                // Deferred if it is the arena's, else a plain free.
                                if s.free_deferred(a, Size(size)).is_err() {
                                    cpu.free(a, Size(size)).unwrap();
                                }
                            }
                            6 => {
                                s.flushed();
                                s.reclaim();
                            }
                            _ if !mine.is_empty() => {
                                let (a, size) = mine.swap_remove(rng.below(mine.len()));
                                // The wrong size first.
                                assert!(bad_free(&s.free(a, Size(size + 1))));
                                h.free(a, Size(size)).unwrap();
                            }
                            _ => {}
                        }
                    }
                    for (a, size) in mine {
                        s.free(a, Size(size)).unwrap();
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
            sc.spawn(move || {
                let mut last_c = s.with(|a| a.counters());
                let mut last_q: QCacheStats = s.qcache_stats();
                let mut n = 0;
                while done.load(Ordering::SeqCst) < 3 {
                    n += 1;
                    let (z, c) = s.with(|a| (a.sizes(), a.counters()));
                    assert_eq!(z.total, Size(SPAN), "{z:?}");
                    assert_eq!(z.allocated.0 + z.free.0 + z.unflushed.0, z.total.0, "{z:?}");
                    assert_eq!(z.imported, Size(0));
                    let pairs = [
                        (last_c.allocs, c.allocs),
                        (last_c.frees, c.frees),
                        (last_c.failures, c.failures),
                        (last_c.bad_frees, c.bad_frees),
                        (last_c.lookups, c.lookups),
                        (last_c.deferred_frees, c.deferred_frees),
                        (last_c.flushes, c.flushes),
                    ];
                    for (i, (was, now)) in pairs.iter().enumerate() {
                        assert!(now >= was, "arena counter {i} went down: {last_c:?} -> {c:?}");
                    }
                    last_c = c;
                    let q = s.qcache_stats();
                    let pairs = [
                        (last_q.hits, q.hits),
                        (last_q.misses, q.misses),
                        (last_q.bad_frees, q.bad_frees),
                        (last_q.reclaims, q.reclaims),
                        (last_q.slabs_created, q.slabs_created),
                        (last_q.slabs_freed, q.slabs_freed),
                    ];
                    for (i, (was, now)) in pairs.iter().enumerate() {
                        assert!(now >= was, "cache statistic {i} went down: {last_q:?} -> {q:?}");
                    }
                    assert_eq!(q.slabs as u64, q.slabs_created - q.slabs_freed, "{q:?}");
                    assert!(q.objects_in_slabs <= q.slabs * 64, "{q:?}");
                    last_q = q;
                    if n % 8 == 0 {
                        s.check().unwrap();
                    }
                    std::thread::yield_now();
                }
            });
        });
        s.flushed();
    }
    assert_empty(s, SPAN, "statistics");
}

/// Four threads wait with short timeouts, through every door, for space a
/// fifth thread keeps taking and giving back, then one waits with a long
/// timeout for what the last holder frees. Every wait ends with success or
/// `NoSpace`, the long one with success; no waiter is left counted.
#[test]
fn timed_out_waiters_among_frees_leave_no_count() {
    const SPAN: usize = 8 << 10;
    let s = &shared(BASE, SPAN, 4);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let stop = &AtomicBool::new(false);
        let (served, timed_out) = (&AtomicUsize::new(0), &AtomicUsize::new(0));
        std::thread::scope(|sc| {
            sc.spawn(move || {
                let mut rng = Rng::new(3);
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(2) {
                    let r = s.alloc(Size(SPAN / 2), Policy::InstantFit, Wait::No);
                    std::thread::sleep(Duration::from_micros(rng.below(500) as u64));
                    if let Ok(a) = r {
                        s.free(a, Size(SPAN / 2)).unwrap();
                    }
                }
                stop.store(true, Ordering::SeqCst);
            });
            for t in 0..4u64 {
                sc.spawn(move || {
                    let mut rng = Rng::new(50 + t);
                    let mut h = Handle::new(s);
                    while !stop.load(Ordering::SeqCst) {
                        let wait = Wait::Timeout(Duration::from_micros(rng.below(3000) as u64));
                        let big = SPAN / 4 + Q * rng.below(8);
                        let (r, size, way) = match t {
                            0 => (s.alloc(Size(big), Policy::BestFit, wait), big, 0),
                            1 => (
                                s.xalloc(&Constraints::new(Size(big)).align(Size(1024)), wait),
                                big,
                                0,
                            ),
                            2 => (h.alloc_wait(Size(64), wait), 64, 2),
                            _ => (cpu.alloc_wait(Size(48), wait), 48, 1),
                        };
                        match r {
                            Ok(a) => {
                                served.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_micros(200));
                                match way {
                                    1 => cpu.free(a, Size(size)).unwrap(),
                                    2 => h.free(a, Size(size)).unwrap(),
                                    _ => s.free(a, Size(size)).unwrap(),
                                }
                            }
                            Err(e) => {
                                assert!(no_space(&Err::<(), _>(e)), "waiter {t}");
                                timed_out.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(s.waiting(), 0, "timed-out waiters left counted");
        eprintln!(
            "served {} timed out {}",
            served.load(Ordering::Relaxed),
            timed_out.load(Ordering::Relaxed)
        );
    }
    {
        // The last one: a long wait that a free from another thread ends.
        // (The caches were dropped: nothing is held in a magazine.)
        let hold = match s.alloc(Size(SPAN), Policy::InstantFit, Wait::No) {
            Ok(a) => a,
            Err(e) => panic!("whole span not free after the waiters: {e:?}"),
        };
        let got = std::thread::scope(|sc| {
            let w = sc.spawn(move || {
                s.alloc(Size(SPAN / 2), Policy::FirstFit, Wait::Timeout(Duration::from_secs(30)))
            });
            let t0 = Instant::now();
            while s.waiting() == 0 {
                assert!(t0.elapsed() < Duration::from_secs(20), "the waiter never waited");
                std::thread::sleep(Duration::from_millis(1));
            }
            s.free(hold, Size(SPAN)).unwrap();
            w.join().unwrap()
        });
        let a = got.expect("a waiter woken by a free was not served");
        s.free(a, Size(SPAN / 2)).unwrap();
        assert_eq!(s.waiting(), 0);
    }
    assert_empty(s, SPAN, "waiters");
}
