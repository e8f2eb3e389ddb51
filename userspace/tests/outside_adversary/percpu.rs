//! Per-CPU caches under migration and preemption, and the slab records'
//! limit.

use super::*;

/// Six threads (more than the CPUs) bounce between CPUs with
/// sched_setaffinity while allocating, with short timed waits, in an arena
/// too small for all of them, through three sets of per-CPU caches (rseq
/// with a slot per CPU, rseq with one slot so one CPU's threads are
/// unplaced, and the try-lock fallback with one slot) and the arena, and
/// free through any of them. No range is ever held twice, every wait ends
/// in success or `NoSpace`, and at the end everything is back.
#[test]
fn per_cpu_caches_tight_arena_bouncing_threads_and_timed_waits() {
    const SPAN: usize = 32 << 10;
    let s = &shared(BASE, SPAN, 4);
    let own = &Owners::new(BASE, SPAN);
    let cpus = &allowed_cpus().expect("the thread's affinity mask");
    {
        let a = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let b = &UserCpuCaches::new(s, RseqPin::with_slots(1), store()).unwrap();
        let c = &UserCpuCaches::new(s, SchedPin::with_slots(1), store()).unwrap();
        let pool = &Mutex::new(Vec::<(Addr, usize)>::new());
        let (ok, full) = (&AtomicUsize::new(0), &AtomicUsize::new(0));
        std::thread::scope(|sc| {
            for t in 0..6u64 {
                sc.spawn(move || {
                    let mut rng = Rng::new(0xC0FFEE ^ t);
                    let t0 = Instant::now();
                    let mut i = 0;
                    // Three seconds, and on until some allocation succeeded
                    // (a deadline far beyond any run ends a broken one).
                    while t0.elapsed() < Duration::from_secs(3)
                        || (ok.load(Ordering::Relaxed) == 0
                            && t0.elapsed() < Duration::from_secs(60))
                    {
                        i += 1;
                        if i % 5 == 0 {
                            run_only_on(cpus[rng.below(cpus.len())]).expect("an allowed CPU");
                        }
                        if rng.below(100) < 55 {
                            let size = if rng.below(8) == 0 {
                                16 * rng.between(5, 40)
                            } else {
                                rng.between(1, 64)
                            };
                            let wait = Wait::Timeout(Duration::from_millis(rng.below(3) as u64));
                            let r = match rng.below(4) {
                                0 => a.alloc_wait(Size(size), wait),
                                1 => b.alloc_wait(Size(size), wait),
                                2 => c.alloc_wait(Size(size), wait),
                                _ => s.alloc(Size(size), Policy::InstantFit, wait),
                            };
                            match r {
                                Ok(x) => {
                                    own.take(x, size, "alloc");
                                    ok.fetch_add(1, Ordering::Relaxed);
                                    pool.lock().unwrap().push((x, size));
                                }
                                Err(e) => {
                                    assert!(no_space(&Err::<(), _>(e)), "alloc of {size}");
                                    full.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        } else {
                            let got = {
                                let mut p = pool.lock().unwrap();
                                let n = p.len();
                                (n > 0).then(|| p.swap_remove(rng.below(n)))
                            };
                            if let Some((x, size)) = got {
                                own.give(x, size);
                                let r = match rng.below(4) {
                                    0 => a.free(x, Size(size)),
                                    1 => b.free(x, Size(size)),
                                    2 => c.free(x, Size(size)),
                                    _ => s.free(x, Size(size)),
                                };
                                assert!(r.is_ok(), "free of {x:?}+{size}: {r:?}");
                            }
                        }
                    }
                });
            }
        });
        assert!(ok.load(Ordering::Relaxed) > 0);
        for (x, size) in pool.lock().unwrap().drain(..) {
            own.give(x, size);
            s.free(x, Size(size)).unwrap();
        }
        assert_eq!(s.waiting(), 0);
        eprintln!(
            "allocations {} NoSpace {}",
            ok.load(Ordering::Relaxed),
            full.load(Ordering::Relaxed)
        );
    }
    run_only_on(cpus[0]).expect("an allowed CPU");
    assert_empty(s, SPAN, "bouncing");
}

/// A waiter on per-CPU caches and a thread freeing into the same CPU's
/// magazines ("A waiter retries its CPU's magazines ... each time space
/// comes back: an object freed into any slot while someone waits"): the
/// arena is one slab, all of it held; the waiter, pinned to the freer's
/// CPU, is served by the free long before its (long) timeout.
#[test]
fn a_per_cpu_free_on_the_waiters_cpu_serves_the_waiter() {
    const SLAB: usize = 64 * Q;
    let s = &shared(BASE, SLAB, 4);
    let cpus = allowed_cpus().expect("the thread's affinity mask");
    let cpu0 = cpus[0];
    for pin_kind in 0..2 {
        let cpu = &UserCpuCaches::new(
            s,
            if pin_kind == 0 { RseqPin::new() } else { RseqPin::without_rseq(cpus.len()) },
            store(),
        )
        .unwrap();
        run_only_on(cpu0).expect("an allowed CPU");
        let objs: Vec<Addr> = (0..64).map(|_| cpu.alloc(Size(Q)).unwrap()).collect();
        assert!(no_space(&cpu.alloc(Size(Q))), "more than one slab in the arena");
        let (tx, rx) = std::sync::mpsc::channel();
        let served = std::thread::scope(|sc| {
            sc.spawn(move || {
                run_only_on(cpu0).expect("an allowed CPU");
                let r = cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::from_secs(20)));
                let _ = tx.send(r);
                r
            });
            let t0 = Instant::now();
            while s.waiting() == 0 {
                assert!(t0.elapsed() < Duration::from_secs(10), "the waiter never waited");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(50));
            cpu.free(objs[0], Size(Q)).unwrap();
            // Liveness bound only: the waiter's own timeout is 20 s.
            rx.recv_timeout(Duration::from_secs(10))
        });
        let got = served.unwrap_or_else(|_| {
            panic!("pin {pin_kind}: a waiter on the freer's CPU was not woken by the free")
        });
        let a = got.unwrap();
        assert_eq!(a, objs[0]);
        for &x in &objs {
            cpu.free(x, Size(Q)).unwrap();
        }
        assert_eq!(s.waiting(), 0);
    }
    assert_empty(s, SLAB, "same-CPU waiter");
}

/// Four threads hold thousands of objects of two classes at once, more
/// than the caches' slab tables have room for (32 slabs a class), through
/// per-CPU caches, handles and the arena, while a fifth checks; then each
/// frees another's objects through a random door. No range is held twice,
/// every free succeeds, everything comes back.
#[test]
fn more_live_objects_than_slab_records_from_several_threads() {
    const SPAN: usize = 4 << 20;
    let s = &shared(BASE, SPAN, 2);
    let own = &Owners::new(BASE, SPAN);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let lists: Vec<Mutex<Vec<(Addr, usize)>>> =
            (0..4).map(|_| Mutex::new(Vec::new())).collect();
        let lists = &lists;
        let stop = &AtomicBool::new(false);
        let barrier = &Barrier::new(4);
        std::thread::scope(|sc| {
            let checker = sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    s.check().unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            let workers: Vec<_> = (0..4u64)
                .map(|t| {
                    sc.spawn(move || {
                        let mut rng = Rng::new(900 + t);
                        let mut h = Handle::new(s);
                        for _ in 0..1500 {
                            let size = rng.between(1, 32);
                            let r = match rng.below(5) {
                                0 | 1 => cpu.alloc(Size(size)),
                                2 | 3 => h.alloc(Size(size)),
                                _ => s.alloc(Size(size), Policy::InstantFit, Wait::No),
                            };
                            let a = r.unwrap();
                            own.take(a, size, "alloc");
                            lists[t as usize].lock().unwrap().push((a, size));
                        }
                        barrier.wait();
                        let theirs =
                            std::mem::take(&mut *lists[(t as usize + 1) % 4].lock().unwrap());
                        for (a, size) in theirs {
                            own.give(a, size);
                            let r = match rng.below(3) {
                                0 => cpu.free(a, Size(size)),
                                1 => h.free(a, Size(size)),
                                _ => s.free(a, Size(size)),
                            };
                            assert!(r.is_ok(), "free of {a:?}+{size}: {r:?}");
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            checker.join().unwrap();
        });
        eprintln!("{:?}", s.qcache_stats());
    }
    assert_empty(s, SPAN, "many slabs");
}

/// `SyncArena::free_deferred`: "Objects handed out by the quantum caches
/// ... are not to be freed this way: those that are parts of a slab are
/// refused (a bad free; nothing changes); those a miss took from the arena
/// itself, when the class had no slab record to spare (counted in
/// `slab_collisions`), are allocations of their own". Hold more objects of
/// one class than the slab records have room for (32 slabs of 64), from two
/// threads through handles and per-CPU caches, then try to free every one
/// deferred: exactly those outside every slab are taken, one for each
/// collision.
#[test]
fn no_object_handed_out_through_the_caches_can_be_freed_deferred() {
    const SPAN: usize = 1 << 20;
    let s = &shared(BASE, SPAN, 1);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let objs: Vec<(Addr, bool)> = std::thread::scope(|sc| {
            let t: Vec<_> = (0..2)
                .map(|t| {
                    sc.spawn(move || {
                        let mut h = Handle::new(s);
                        let mut got = Vec::new();
                        for i in 0..1500 {
                            let by_cpu = (i + t) % 2 == 0;
                            let a = if by_cpu { cpu.alloc(Size(Q)) } else { h.alloc(Size(Q)) };
                            got.push((a.unwrap(), by_cpu));
                        }
                        got
                    })
                })
                .collect();
            t.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        let slabs: Vec<(usize, usize)> = s.with(|a| {
            a.walk(vmspace::arena::SegmentKinds::ALLOCATED)
                .filter(|seg| seg.held)
                .map(|seg| (seg.range.base().0, seg.range.limit().0))
                .collect()
        });
        let in_a_slab = |x: Addr| slabs.iter().any(|&(b, l)| (b..l).contains(&x.0));
        let mut accepted = Vec::new();
        for &(a, _) in &objs {
            let r = s.free_deferred(a, Size(Q));
            if in_a_slab(a) {
                assert!(bad_free(&r), "{a}: a slab's part freed deferred: {r:?}");
            } else {
                assert_eq!(r, Ok(()), "{a}: an allocation of the arena's own");
                accepted.push(a);
            }
        }
        let st = s.qcache_stats();
        let unflushed = s.with(|a| a.sizes().unflushed);
        assert_eq!(st.slabs, 32, "every record in use: {st:?}");
        assert_eq!(accepted.len() as u64, st.slab_collisions, "{st:?}");
        assert_eq!(unflushed, Size(accepted.len() * Q), "{st:?}");
        s.flushed();
        for &(a, by_cpu) in &objs {
            if !accepted.contains(&a) {
                let r = if by_cpu { cpu.free(a, Size(Q)) } else { s.free(a, Size(Q)) };
                r.unwrap();
            }
        }
    }
    assert_empty(s, SPAN, "deferred objects");
}
