//! Ranges freed but not flushed, seen from other threads and through a
//! parent.

use super::*;

/// A deferrer allocates (by address and by handle), frees deferred and
/// now and then flushes, recording each unflushed range; three threads
/// allocate all the while (every policy, constrained, waiting, through
/// per-CPU caches and a handle, whose slabs come from the arena) in an
/// arena with little room to spare. None of them ever gets a range that
/// overlaps one freed but not yet flushed.
#[test]
fn unflushed_ranges_are_never_handed_out_to_other_threads() {
    const SPAN: usize = 64 << 10;
    let s = &shared(BASE, SPAN, 4);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        // Ranges freed deferred and not yet flushed; written under the lock
        // together with each `flushed()`.
        let pending = &RwLock::new(Vec::<(usize, usize)>::new());
        let done = &AtomicBool::new(false);
        let seen = &AtomicUsize::new(0);
        let overlaps = |a: Addr, size: usize| -> Option<(usize, usize)> {
            let p = pending.read().unwrap();
            let end = a.0 + size;
            p.iter().copied().find(|&(b, n)| a.0 < b + n && b < end)
        };
        std::thread::scope(|sc| {
            sc.spawn(move || {
                let mut rng = Rng::new(31);
                let t0 = Instant::now();
                let mut n = 0;
                // Three seconds, and on until another thread got a range
                // (when they run is up to the scheduler; a deadline far
                // beyond any run ends a broken one).
                while t0.elapsed() < Duration::from_secs(3)
                    || (seen.load(Ordering::Relaxed) == 0 && t0.elapsed() < Duration::from_secs(60))
                {
                    let size = Q * rng.between(4, 256);
                    if rng.below(2) == 0 {
                        if let Ok(a) = s.alloc(Size(size), Policy::InstantFit, Wait::No) {
                            s.free_deferred(a, Size(size)).unwrap();
                            pending.write().unwrap().push((a.0, size));
                            n += 1;
                        }
                    } else if let Ok(h) = s.with(|a| a.alloc_handle(Size(size), Policy::BestFit)) {
                        assert_eq!(
                            s.free_handle_deferred_parts(h.addr(), h.tag()).unwrap(),
                            Size(size)
                        );
                        pending.write().unwrap().push((h.addr().0, size));
                        n += 1;
                    }
                    if n % 6 == 5 || rng.below(20) == 0 {
                        let mut p = pending.write().unwrap();
                        s.flushed();
                        p.clear();
                    }
                    std::thread::yield_now();
                }
                let mut p = pending.write().unwrap();
                s.flushed();
                p.clear();
                done.store(true, Ordering::Relaxed);
            });
            for t in 0..3u64 {
                sc.spawn(move || {
                    let mut rng = Rng::new(400 + t);
                    let mut h = Handle::new(s);
                    let mut mine: Vec<(Addr, usize, usize)> = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        if mine.len() < 24 && rng.below(100) < 60 {
                            let way = rng.below(6);
                            let size =
                                if way >= 4 { rng.between(1, 64) } else { Q * rng.between(1, 200) };
                            let wait = Wait::Timeout(Duration::from_millis(rng.below(4) as u64));
                            let policy = [
                                Policy::InstantFit,
                                Policy::BestFit,
                                Policy::FirstFit,
                                Policy::NextFit,
                            ][rng.below(4)];
                            let r = match way {
                                0 | 1 => s.alloc(Size(size), policy, wait),
                                2 => s.xalloc(
                                    &Constraints::new(Size(size)).align(Size(Q << rng.below(6))),
                                    wait,
                                ),
                                3 => s.xalloc(
                                    &Constraints::new(Size(size)).policy(policy).from_top(true),
                                    wait,
                                ),
                                4 => cpu.alloc_wait(Size(size), wait),
                                _ => h.alloc_wait(Size(size), wait),
                            };
                            match r {
                                Ok(a) => {
                                    if let Some(p) = overlaps(a, size) {
                                        panic!(
                                            "{a:?}+{size} (way {way}) overlaps unflushed {p:x?}"
                                        );
                                    }
                                    seen.fetch_add(1, Ordering::Relaxed);
                                    mine.push((a, size, way));
                                }
                                Err(e) => assert!(no_space(&Err::<(), _>(e)), "way {way}"),
                            }
                        } else if !mine.is_empty() {
                            let (a, size, way) = mine.swap_remove(rng.below(mine.len()));
                            match way {
                                4 => cpu.free(a, Size(size)).unwrap(),
                                5 => h.free(a, Size(size)).unwrap(),
                                _ => s.free(a, Size(size)).unwrap(),
                            }
                        }
                    }
                    for (a, size, _) in mine {
                        s.free(a, Size(size)).unwrap();
                    }
                });
            }
        });
        assert!(seen.load(Ordering::Relaxed) > 0);
        assert!(s.with(|a| a.counters().flushes) > 0);
    }
    assert_empty(s, SPAN, "unflushed");
}

/// Two threads each run a child arena importing from the shared parent,
/// freeing deferred and flushing now and then; two other threads allocate
/// from the parent (directly and through its per-CPU caches) all the
/// while. The parent never hands out a range a child holds freed but not
/// flushed; children given back flushed leave the parent empty.
#[test]
fn child_arenas_unflushed_ranges_never_reach_other_threads_through_the_parent() {
    const SPAN: usize = 256 << 10;
    let s = &shared(BASE, SPAN, 4);
    {
        let cpu = &UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
        // (child, base, size) freed deferred in a child and not flushed.
        let pending = &RwLock::new(Vec::<(usize, usize, usize)>::new());
        let done = &AtomicUsize::new(0);
        let seen = &AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for t in 0..2usize {
                sc.spawn(move || {
                    let mut rng = Rng::new(60 + t as u64);
                    let mut child = vmspace::arena::Arena::on_pages(
                        "child",
                        Size(Q),
                        MmapBackend::new(),
                        1 << 12,
                        s,
                    )
                    .unwrap();
                    let mut mine: Vec<(Addr, usize)> = Vec::new();
                    let t0 = Instant::now();
                    // Three seconds, and on until a thread allocating from
                    // the parent got a range (see above).
                    while t0.elapsed() < Duration::from_secs(3)
                        || (seen.load(Ordering::Relaxed) == 0
                            && t0.elapsed() < Duration::from_secs(60))
                    {
                        if mine.len() < 16 && rng.below(100) < 60 {
                            let size = Q * rng.between(1, 512);
                            if let Ok(a) = child.alloc(Size(size), Policy::InstantFit) {
                                mine.push((a, size));
                            }
                        } else if !mine.is_empty() {
                            let (a, size) = mine.swap_remove(rng.below(mine.len()));
                            if rng.below(3) == 0 {
                                child.free(a, Size(size)).unwrap();
                            } else {
                                child.free_deferred(a, Size(size)).unwrap();
                                pending.write().unwrap().push((t, a.0, size));
                            }
                        }
                        if rng.below(25) == 0 {
                            let mut p = pending.write().unwrap();
                            child.flushed();
                            p.retain(|&(c, _, _)| c != t);
                        }
                    }
                    for (a, size) in mine {
                        child.free(a, Size(size)).unwrap();
                    }
                    let mut p = pending.write().unwrap();
                    child.flushed();
                    p.retain(|&(c, _, _)| c != t);
                    drop(p);
                    child.check().unwrap();
                    assert_eq!(child.sizes().allocated, Size(0));
                    drop(child);
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
            for t in 0..2u64 {
                sc.spawn(move || {
                    let mut rng = Rng::new(70 + t);
                    let mut mine: Vec<(Addr, usize, bool)> = Vec::new();
                    while done.load(Ordering::SeqCst) < 2 {
                        if mine.len() < 32 && rng.below(100) < 60 {
                            let by_cpu = rng.below(2) == 0;
                            let size = if by_cpu { rng.between(1, 64) } else { Q * rng.between(1, 256) };
                            let r = if by_cpu {
                                cpu.alloc(Size(size))
                            } else {
                                s.alloc(Size(size), Policy::BestFit, Wait::No)
                            };
                            if let Ok(a) = r {
                                let p = pending.read().unwrap();
                                if let Some(u) =
                                    p.iter().find(|&&(_, b, n)| a.0 < b + n && b < a.0 + size)
                                {
                                    panic!("parent handed out {a:?}+{size}, unflushed in a child: {u:x?}");
                                }
                                drop(p);
                                seen.fetch_add(1, Ordering::Relaxed);
                                mine.push((a, size, by_cpu));
                            }
                        } else if let Some((a, size, by_cpu)) = mine.pop() {
                            if by_cpu {
                                cpu.free(a, Size(size)).unwrap();
                            } else {
                                s.free(a, Size(size)).unwrap();
                            }
                        }
                    }
                    for (a, size, _) in mine {
                        s.free(a, Size(size)).unwrap();
                    }
                });
            }
        });
        assert!(seen.load(Ordering::Relaxed) > 0);
    }
    assert_empty(s, SPAN, "children");
}
