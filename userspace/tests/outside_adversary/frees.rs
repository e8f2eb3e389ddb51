//! Racing, foreign, stale and wrong-size frees through every door.

use super::*;

/// How one thread tries to free an allocation.
#[derive(Clone, Copy, Debug)]
enum HFree {
    Parts,
    PartsDeferred,
    Addr,
    AddrDeferred,
    Xfree,
}

const HFREES: [HFree; 5] =
    [HFree::Parts, HFree::PartsDeferred, HFree::Addr, HFree::AddrDeferred, HFree::Xfree];

/// Three threads free the same 64 cached objects (allocated with 20 bytes,
/// class 17..32) at once: two with the right size, one with 32 (the same
/// class, a wrong size), each through its own door, for every combination
/// of doors. Exactly one right-size free of each object succeeds; the
/// wrong-size free never does; every refusal is counted once, by the
/// caches ("Frees of a cached object refused"), none by the arena.
#[test]
fn racing_right_and_wrong_size_frees_of_one_cached_object() {
    const SPAN: usize = 1 << 20;
    const N: usize = 64;
    let s = &shared(BASE, SPAN, 4);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let mut round = 0;
        for d0 in DOORS {
            for d1 in DOORS {
                for d2 in DOORS {
                    round += 1;
                    let objs: Vec<Addr> = (0..N)
                        .map(|i| match i % 3 {
                            0 => cpu.alloc(Size(20)).unwrap(),
                            1 => {
                                let mut h = Handle::new(s);
                                h.alloc(Size(20)).unwrap()
                            }
                            _ => cpu.alloc(Size(20)).unwrap(),
                        })
                        .collect();
                    let before = (s.qcache_stats().bad_frees, s.with(|a| a.counters().bad_frees));
                    let barrier = &Barrier::new(3);
                    let objs = &objs;
                    let results: Vec<Vec<Result<(), ArenaError>>> = std::thread::scope(|sc| {
                        let spawn = |door: Door, size: usize| {
                            sc.spawn(move || {
                                let mut h = Handle::new(s);
                                barrier.wait();
                                objs.iter()
                                    .map(|&a| match door {
                                        Door::Cpu => cpu.free(a, Size(size)),
                                        Door::Handle => h.free(a, Size(size)),
                                        Door::Arena => s.free(a, Size(size)),
                                    })
                                    .collect::<Vec<_>>()
                            })
                        };
                        let t = [spawn(d0, 20), spawn(d1, 32), spawn(d2, 20)];
                        t.into_iter().map(|t| t.join().unwrap()).collect()
                    });
                    let what = format!("round {round}: doors {d0:?} {d1:?} {d2:?}");
                    for (i, &a) in objs.iter().enumerate() {
                        let (r0, r1, r2) = (&results[0][i], &results[1][i], &results[2][i]);
                        assert!(bad_free(r1), "{what}: {a:?} freed with a wrong size: {r1:?}");
                        assert!(
                            r0.is_ok() != r2.is_ok(),
                            "{what}: {a:?}: racing frees gave {r0:?} and {r2:?}"
                        );
                        assert!(r0.is_ok() || bad_free(r0), "{what}: {r0:?}");
                        assert!(r2.is_ok() || bad_free(r2), "{what}: {r2:?}");
                    }
                    let after = (s.qcache_stats().bad_frees, s.with(|a| a.counters().bad_frees));
                    assert_eq!(after.0 - before.0, 2 * N as u64, "{what}: caches' bad_frees");
                    assert_eq!(after.1, before.1, "{what}: arena's bad_frees");
                    s.check().unwrap_or_else(|e| panic!("{what}: {e:?}"));
                    // Every object is gone: a further free of each is refused.
                    for &a in objs {
                        assert!(bad_free(&s.free(a, Size(20))), "{what}: {a:?} still live");
                    }
                }
            }
        }
    }
    assert_empty(s, SPAN, "right and wrong size");
}

/// Objects, plain allocations and handles of arena X, freed through every
/// door of arena Y (its per-CPU caches, a handle, the arena, deferred, by
/// handle parts) while Y's own threads work: all refused, nothing of X or
/// Y changes; X's frees of them then succeed.
#[test]
fn foreign_objects_and_handles_are_refused_by_another_arena() {
    const SPAN: usize = 1 << 20;
    let x = &shared(BASE, SPAN, 4);
    let y = &shared(BASE + SPAN, SPAN, 4);
    {
        let xc = &UserCpuCaches::new(x, RseqPin::new(), store()).unwrap();
        let yc = &UserCpuCaches::new(y, RseqPin::new(), store()).unwrap();
        let stop = &AtomicBool::new(false);
        std::thread::scope(|sc| {
            // Y's own traffic.
            for t in 0..2u64 {
                sc.spawn(move || {
                    let mut rng = Rng::new(7 + t);
                    let mut h = Handle::new(y);
                    let mut mine: Vec<(Addr, usize, bool)> = Vec::new();
                    while !stop.load(Ordering::Relaxed) || !mine.is_empty() {
                        if !stop.load(Ordering::Relaxed) && (mine.len() < 100 && rng.below(2) == 0)
                        {
                            let size = rng.between(1, 80);
                            let by_cpu = rng.below(2) == 0;
                            let a = if by_cpu { yc.alloc(Size(size)) } else { h.alloc(Size(size)) };
                            mine.push((a.unwrap(), size, by_cpu));
                        } else if let Some((a, size, by_cpu)) = mine.pop() {
                            let r =
                                if by_cpu { h.free(a, Size(size)) } else { yc.free(a, Size(size)) };
                            r.unwrap();
                        }
                    }
                });
            }
            // The adversary.
            sc.spawn(move || {
                let mut h = Handle::new(y);
                let mut rng = Rng::new(99);
                for _ in 0..2000 {
                    let size = rng.between(1, 80);
                    let objs = [
                        xc.alloc(Size(size)).unwrap(),
                        x.alloc(Size(size), Policy::BestFit, Wait::No).unwrap(),
                        x.alloc(Size(size * 16), Policy::FirstFit, Wait::No).unwrap(),
                    ];
                    let sizes = [size, size, size * 16];
                    for (&a, &sz) in objs.iter().zip(&sizes) {
                        let sz = Size(sz);
                        assert!(bad_free(&yc.free(a, sz)), "Y's caches freed X's {a:?}");
                        assert!(bad_free(&h.free(a, sz)), "Y's handle freed X's {a:?}");
                        assert!(bad_free(&y.free(a, sz)), "Y freed X's {a:?}");
                        assert!(bad_free(&y.free_deferred(a, sz)), "Y deferred X's {a:?}");
                    }
                    let held = x.with(|a| a.alloc_handle(Size(size), Policy::InstantFit)).unwrap();
                    let r = y.free_handle_parts(held.addr(), held.tag());
                    assert!(bad_handle(&r), "Y freed X's handle: {r:?}");
                    let r = y.free_handle_deferred_parts(held.addr(), held.tag());
                    assert!(bad_handle(&r), "Y deferred X's handle: {r:?}");
                    let r = y.with(|a| a.free_handle(held));
                    assert!(bad_handle(&r), "Y's arena freed X's handle: {r:?}");
                    xc.free(objs[0], Size(size)).unwrap();
                    x.free(objs[1], Size(size)).unwrap();
                    x.free(objs[2], Size(size * 16)).unwrap();
                    assert_eq!(x.free_handle_parts(held.addr(), held.tag()).unwrap(), Size(size));
                }
                stop.store(true, Ordering::Relaxed);
            });
        });
        y.check().unwrap();
        assert_eq!(y.with(|a| a.sizes().unflushed), Size(0));
    }
    assert_empty(x, SPAN, "X");
    assert_empty(y, SPAN, "Y");
}

/// Two workers allocate and free through every door (per-CPU caches, a
/// handle made and dropped now and then, the arena) in an arena small
/// enough that slabs keep going back and coming again, a third thread
/// reclaims and checks all the while, and an adversary frees addresses
/// the workers have just used (and addresses beside them) with sizes no
/// one ever allocates (8, 24, 56, 300), by address and deferred. Every one
/// of the adversary's frees is refused and counted once; every worker free
/// succeeds; nothing is lost.
#[test]
fn stale_and_wrong_size_frees_while_slabs_come_and_go() {
    const SPAN: usize = 64 << 10;
    let s = &shared(BASE, SPAN, 4);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        let recent = &Mutex::new(Vec::<usize>::new());
        // The workers and the adversary done (however they end, a failed
        // assertion included): the reclaimer stops at 3.
        let finished = &AtomicUsize::new(0);
        struct Finished<'a>(&'a AtomicUsize);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let attempts = &AtomicU64::new(0);
        let start = refusals(s);
        std::thread::scope(|sc| {
            for t in 0..2u64 {
                sc.spawn(move || {
                    let _finished = Finished(finished);
                    let mut rng = Rng::new(1000 + t);
                    let mut h = Some(Handle::new(s));
                    let mut mine: Vec<(Addr, usize, usize)> = Vec::new();
                    let t0 = Instant::now();
                    let mut i = 0u64;
                    while t0.elapsed() < Duration::from_secs(3) {
                        i += 1;
                        if i % 97 == 0 {
                            drop(h.take());
                            s.reclaim();
                            h = Some(Handle::new(s));
                        }
                        let hh = h.as_mut().unwrap();
                        if mine.len() < 48 && rng.below(100) < 55 {
                            let size = [16, 20, 40, 64, 200, 520][rng.below(6)];
                            let door = rng.below(3);
                            let r = match door {
                                0 => cpu.alloc(Size(size)),
                                1 => hh.alloc(Size(size)),
                                _ => s.alloc(Size(size), Policy::InstantFit, Wait::No),
                            };
                            match r {
                                Ok(a) => {
                                    recent.lock().unwrap().push(a.0);
                                    mine.push((a, size, door));
                                }
                                Err(e) => assert!(no_space(&Err::<(), _>(e))),
                            }
                        } else if !mine.is_empty() {
                            let (a, size, _) = mine.swap_remove(rng.below(mine.len()));
                            let r = match rng.below(3) {
                                0 => cpu.free(a, Size(size)),
                                1 => hh.free(a, Size(size)),
                                _ => s.free(a, Size(size)),
                            };
                            assert!(r.is_ok(), "worker free of {a:?}+{size}: {r:?}");
                        }
                    }
                    for (a, size, _) in mine {
                        s.free(a, Size(size)).unwrap();
                    }
                });
            }
            sc.spawn(move || {
                let mut n = 0;
                while finished.load(Ordering::Relaxed) < 3 {
                    s.reclaim();
                    n += 1;
                    if n % 16 == 0 {
                        s.check().unwrap();
                    }
                    std::thread::yield_now();
                }
            });
            sc.spawn(move || {
                let _finished = Finished(finished);
                let mut rng = Rng::new(5);
                let mut h = Handle::new(s);
                let t0 = Instant::now();
                // Three seconds, and on until a free was tried (it needs a
                // worker's allocation first; when the workers run is up to
                // the scheduler, and a deadline far beyond any run ends a
                // broken one).
                while t0.elapsed() < Duration::from_secs(3)
                    || (attempts.load(Ordering::Relaxed) == 0
                        && t0.elapsed() < Duration::from_secs(60))
                {
                    let picked = {
                        let mut r = recent.lock().unwrap();
                        if r.len() > 4096 {
                            r.drain(..2048);
                        }
                        (!r.is_empty()).then(|| r[rng.below(r.len())])
                    };
                    let Some(a) = picked else {
                        std::thread::yield_now();
                        continue;
                    };
                    let a = Addr(a + Q * rng.below(3));
                    let size = Size([8, 24, 56, 300][rng.below(4)]);
                    let r = match rng.below(4) {
                        0 => cpu.free(a, size),
                        1 => h.free(a, size),
                        2 => s.free(a, size),
                        _ => s.free_deferred(a, size),
                    };
                    assert!(bad_free(&r), "stale free of {a:?}+{size:?} gave {r:?}");
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            });
        });
        let n = attempts.load(Ordering::Relaxed);
        assert!(n > 0);
        assert_eq!(refusals(s) - start, n, "refused frees counted other than once each");
    }
    assert_empty(s, SPAN, "stale frees");
}

/// Two threads free the same allocations at once, held by handles or made
/// by address, each through one of five doors (handle parts, handle parts
/// deferred, by address, by address deferred, `xfree` through `with`), for
/// every pair. A by-address free of a held allocation and a handle free of
/// an allocation made by address are refused; otherwise of two frees of one
/// allocation exactly one succeeds. Afterwards `flushed()` frees exactly
/// what was deferred, and the counters add up: one free per allocation,
/// one deferred free per deferred winner, one bad free per refusal.
#[test]
fn racing_handle_address_and_deferred_frees_of_one_allocation() {
    const SPAN: usize = 1 << 20;
    const N: usize = 48;
    let s = &shared(BASE, SPAN, 4);
    for d0 in HFREES {
        for d1 in HFREES {
            for held in [true, false] {
                let what = format!("{d0:?} vs {d1:?}, held {held}");
                let allocs: Vec<(Addr, u32, usize)> = (0..N)
                    .map(|i| {
                        let size = Q * (i % 13 + 5);
                        if held {
                            let h =
                                s.with(|a| a.alloc_handle(Size(size), Policy::BestFit)).unwrap();
                            (h.addr(), h.tag(), size)
                        } else {
                            let a = s.alloc(Size(size), Policy::FirstFit, Wait::No).unwrap();
                            (a, 0, size)
                        }
                    })
                    .collect();
                let c0 = s.with(|a| a.counters());
                let barrier = &Barrier::new(2);
                let allocs = &allocs;
                let results: Vec<Vec<Result<Size, ArenaError>>> = std::thread::scope(|sc| {
                    let spawn = |door: HFree| {
                        sc.spawn(move || {
                            barrier.wait();
                            allocs
                                .iter()
                                .map(|&(a, tag, size)| {
                                    // A made-by-address allocation has no
                                    // tag the caller knows: guess 1.
                                    let tag = if held { tag } else { 1 };
                                    let sz = Size(size);
                                    match door {
                                        HFree::Parts => s.free_handle_parts(a, tag),
                                        HFree::PartsDeferred => {
                                            s.free_handle_deferred_parts(a, tag)
                                        }
                                        HFree::Addr => s.free(a, sz).map(|()| sz),
                                        HFree::AddrDeferred => s.free_deferred(a, sz).map(|()| sz),
                                        HFree::Xfree => s.with(|x| x.xfree(a, sz)).map(|()| sz),
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                    };
                    let t = [spawn(d0), spawn(d1)];
                    t.into_iter().map(|t| t.join().unwrap()).collect()
                });
                let handle_door = |d: HFree| matches!(d, HFree::Parts | HFree::PartsDeferred);
                let deferred_door =
                    |d: HFree| matches!(d, HFree::PartsDeferred | HFree::AddrDeferred);
                let (mut wins, mut refused, mut deferred, mut deferred_bytes) =
                    (0u64, 0u64, 0u64, 0);
                let mut leftover = Vec::new();
                for (i, &(a, tag, size)) in allocs.iter().enumerate() {
                    let r = [&results[0][i], &results[1][i]];
                    let doors = [d0, d1];
                    let mut won = 0;
                    for k in 0..2 {
                        let fits = handle_door(doors[k]) == held;
                        match r[k] {
                            Ok(got) => {
                                assert!(fits, "{what}: {a:?} freed through a wrong door");
                                assert_eq!(*got, Size(size), "{what}: {a:?}");
                                won += 1;
                                if deferred_door(doors[k]) {
                                    deferred += 1;
                                    deferred_bytes += size;
                                }
                            }
                            Err(ArenaError::BadFree { .. } | ArenaError::BadHandle { .. }) => {
                                refused += 1;
                            }
                            Err(e) => panic!("{what}: {a:?}: {e:?}"),
                        }
                    }
                    let any_fits = doors.iter().any(|&d| handle_door(d) == held);
                    assert_eq!(won, usize::from(any_fits), "{what}: {a:?}: {:?} {:?}", r[0], r[1]);
                    wins += won as u64;
                    if won == 0 {
                        leftover.push((a, tag, size));
                    }
                }
                let c1 = s.with(|a| a.counters());
                assert_eq!(c1.frees - c0.frees, wins, "{what}: frees");
                assert_eq!(c1.deferred_frees - c0.deferred_frees, deferred, "{what}: deferred");
                assert_eq!(c1.bad_frees - c0.bad_frees, refused, "{what}: bad frees");
                assert_eq!(s.with(|a| a.sizes().unflushed), Size(deferred_bytes), "{what}");
                assert_eq!(s.flushed(), Size(deferred_bytes), "{what}: flushed");
                for (a, tag, size) in leftover {
                    if held {
                        assert_eq!(s.free_handle_parts(a, tag).unwrap(), Size(size), "{what}");
                    } else {
                        s.free(a, Size(size)).unwrap();
                    }
                }
                s.check().unwrap_or_else(|e| panic!("{what}: {e:?}"));
                assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{what}");
            }
        }
    }
    assert_empty(s, SPAN, "handle frees");
}
