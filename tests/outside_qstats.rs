//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the exact values of `QCacheStats` and of the shared
//! arena's counters, sizes and live count after each step through every
//! door (arena, CacheHandle, CpuCaches), against a model of where every
//! object is (live, in a handle's magazines, in a depot magazine, in its
//! slab).

use vmspace::arena::{ArenaError, Constraints, Policy, SliceStore};
use vmspace::qcache::SlotFlag;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};

mod outside_common;
#[allow(unused_imports)]
use outside_common::Rng;
mod outside_qstats_model;
use outside_qstats_model::*;

/// Random traffic through two handles, a one-slot CpuCaches and the
/// arena, with the model checked after every step.
fn model_run(q: usize, classes: usize, seed: u64, steps: usize) -> [u64; 8] {
    model_run_at(q, classes, seed, steps, None)
}

fn model_run_at(q: usize, classes: usize, seed: u64, steps: usize, at: Option<usize>) -> [u64; 8] {
    // Stores for per-CPU caches made again: each needs one of its own (the
    // dropped one's stays borrowed), so there is one a step, made up front
    // (calloc: untouched pages cost nothing) and freed with the run.
    let mut spare: Vec<Vec<u8>> = (0..steps).map(|_| vec![0u8; 1 << 16]).collect();
    let mut spare = spare.iter_mut();
    let mut b = bufs();
    let mut m = Model::new(q, classes);
    // 32 slabs of class 0 fit the span, aligned: no two slabs of a class
    // share a table slot, so no collisions.
    let span = 32 * m.align(0);
    let base = at.unwrap_or(span * 4);
    let (s, mags) = shared(&mut b, q, classes, base, span);
    assert_eq!(s.qcache_max(), Size(m.max()));
    let mut h = [Some(CacheHandle::new(&s)), Some(CacheHandle::new(&s))];
    let mut cpu = Some(CpuCaches::new(&s, OneSlot(SlotFlag::new()), mags).unwrap());
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let max = m.max();
    let mut sizes_: Vec<usize> = (0..classes).flat_map(|c| [c * q + 1, (c + 1) * q]).collect();
    sizes_.extend([max + 1, max + q, 1 + q / 2]);
    let mut freed: Vec<(usize, usize)> = vec![];
    compare(&s, &m, "start");
    for step in 0..steps {
        let ctx = format!("q {q} classes {classes} seed {seed} step {step}");
        let door = rng.below(4) as usize; // 0, 1 handles, 2 cpu, 3 arena
        match rng.below(18) {
            0..=4 if m.live.len() + m.plain.len() < 48 => {
                let size = if rng.chance(3) {
                    1 + rng.below(max as u64 + q as u64) as usize
                } else {
                    sizes_[rng.below(sizes_.len() as u64) as usize]
                };
                let cached = m.class_of(size);
                let e = cached.filter(|_| door < 3).map(|c| m.predict(door, c));
                let r = match door {
                    0 | 1 => h[door].as_mut().unwrap().alloc(Size(size)),
                    2 => cpu.as_ref().unwrap().alloc(Size(size)),
                    _ => s.alloc(
                        Size(size),
                        if rng.chance(2) { Policy::BestFit } else { Policy::InstantFit },
                        Wait::No,
                    ),
                };
                if std::env::var("QDEBUG").is_ok() {
                    eprintln!(
                        "{ctx}: door {door} size {size} -> {r:?}; held {:x?} stats {:?}",
                        held(&s),
                        qstats(&s)
                    );
                }
                m.after_alloc(&s, door, size, e, r, &ctx);
            }
            5..=8 if !m.live.is_empty() || !m.plain.is_empty() => {
                let n = m.live.len() + m.plain.len();
                let i = rng.below(n as u64) as usize;
                let (x, size, obj) = if i < m.live.len() {
                    let (&x, &(_, z)) = m.live.iter().nth(i).unwrap();
                    (x, z, true)
                } else {
                    let (&x, &z) = m.plain.iter().nth(i - m.live.len()).unwrap();
                    (x, z, false)
                };
                let r = match door {
                    0 | 1 => h[door].as_mut().unwrap().free(Addr(x), Size(size)),
                    2 => cpu.as_ref().unwrap().free(Addr(x), Size(size)),
                    _ => s.free(Addr(x), Size(size)),
                };
                r.unwrap_or_else(|e| panic!("{ctx}: free {x:#x} {size}: {e:?}"));
                if obj {
                    let (c, _) = m.live.remove(&x).unwrap();
                    if door < 3 {
                        m.push(door, c, x);
                    }
                    freed.push((x, size));
                } else {
                    m.plain.remove(&x);
                    m.frees += 1;
                }
            }
            9 => {
                // A double free of an object whose slab is still there, or
                // a live object freed with another size of its class.
                let pick = if rng.chance(2) && !freed.is_empty() {
                    let (x, z) = freed[rng.below(freed.len() as u64) as usize];
                    let c = m.class_of(z).unwrap();
                    (!m.live.contains_key(&x) && m.slabs[c].contains(&m.slab_of(c, x)))
                        .then_some((x, z))
                } else if !m.live.is_empty() && q > 1 {
                    let (&x, &(c, z)) =
                        m.live.iter().nth(rng.below(m.live.len() as u64) as usize).unwrap();
                    let other = c * q + 1 + (z - c * q) % q; // another size of class c
                    Some((x, other))
                } else {
                    None
                };
                if let Some((x, z)) = pick {
                    let r = match door {
                        0 | 1 => h[door].as_mut().unwrap().free(Addr(x), Size(z)),
                        2 => cpu.as_ref().unwrap().free(Addr(x), Size(z)),
                        _ => s.free(Addr(x), Size(z)),
                    };
                    assert!(
                        matches!(r, Err(ArenaError::BadFree { .. })),
                        "{ctx}: bad free {x:#x} {z}: {r:?}"
                    );
                    m.st.bad_frees += 1;
                }
                // A plain allocation freed with a wrong size: the arena's.
                if let Some((&x, &z)) = m.plain.iter().next() {
                    let wrong = z + q;
                    let r = match door {
                        0 | 1 => h[door].as_mut().unwrap().free(Addr(x), Size(wrong)),
                        2 => cpu.as_ref().unwrap().free(Addr(x), Size(wrong)),
                        _ => s.free(Addr(x), Size(wrong)),
                    };
                    assert!(
                        matches!(r, Err(ArenaError::BadFree { .. })),
                        "{ctx}: bad free {x:#x} {wrong}: {r:?}"
                    );
                    m.bad_frees += 1;
                }
            }
            10 => match rng.below(4) {
                0 | 1 => {
                    let k = rng.below(2) as usize;
                    if rng.chance(2) {
                        h[k].as_mut().unwrap().flush();
                    } else {
                        h[k] = None;
                        h[k] = Some(CacheHandle::new(&s));
                    }
                    m.flush(k);
                }
                _ => {
                    if rng.chance(2) {
                        cpu.as_mut().unwrap().flush();
                    } else {
                        let c = cpu.take().unwrap();
                        let _ = (c.arena(), c.pin());
                        drop(c);
                        // The store went with it; a new one from the spares.
                        let buf = spare.next().expect("one spare store a step");
                        cpu = Some(
                            CpuCaches::new(&s, OneSlot(SlotFlag::new()), SliceStore::new(buf))
                                .unwrap(),
                        );
                    }
                    m.flush(2);
                }
            },
            11 if rng.chance(3) => {
                let freed_n = s.reclaim();
                let before = m.st.slabs_freed;
                m.reclaim(&held(&s), &ctx);
                assert_eq!(freed_n as u64, m.st.slabs_freed - before, "{ctx}: reclaim()'s return");
            }
            12 => {
                // Constrained allocations bypass the caches.
                let size = sizes_[rng.below(sizes_.len() as u64) as usize];
                let align = q << rng.below(4);
                let r = s.xalloc(&Constraints::new(Size(size)).align(Size(align)), Wait::No);
                if let Ok(x) = r {
                    assert_eq!(x.0 % align, 0, "{ctx}");
                }
                m.after_alloc(&s, 3, size, None, r, &ctx);
            }
            13 if !m.plain.is_empty() => {
                let (&x, &z) =
                    m.plain.iter().nth(rng.below(m.plain.len() as u64) as usize).unwrap();
                s.free_deferred(Addr(x), Size(z)).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                assert_eq!(sizes(&s).unflushed, Size(z.div_ceil(q) * q), "{ctx}");
                m.plain.remove(&x);
                m.frees += 1;
                assert_eq!(s.flushed(), Size(z.div_ceil(q) * q), "{ctx}");
            }
            14..=16 if m.live.len() + m.plain.len() < 16 => {
                // A burst through one door of one size, then frees of all
                // of it through one door: magazines fill, go to the depot.
                let size = sizes_[rng.below(sizes_.len() as u64) as usize];
                let n =
                    if rng.chance(4) { 150 + rng.below(50) } else { 10 + rng.below(50) } as usize;
                let mut got = vec![];
                for k in 0..n {
                    let ctx = format!("{ctx} burst alloc {k}");
                    let e = m.class_of(size).filter(|_| door < 3).map(|c| m.predict(door, c));
                    let r = match door {
                        0 | 1 => h[door].as_mut().unwrap().alloc(Size(size)),
                        2 => cpu.as_ref().unwrap().alloc(Size(size)),
                        _ => s.alloc(Size(size), Policy::InstantFit, Wait::No),
                    };
                    if let Ok(x) = r {
                        got.push(x.0);
                    }
                    m.after_alloc(&s, door, size, e, r, &ctx);
                    if k % 8 == 0 {
                        compare(&s, &m, &ctx);
                    }
                }
                let door = rng.below(4) as usize;
                for (k, x) in got.into_iter().enumerate() {
                    let ctx = format!("{ctx} burst free {k}");
                    let r = match door {
                        0 | 1 => h[door].as_mut().unwrap().free(Addr(x), Size(size)),
                        2 => cpu.as_ref().unwrap().free(Addr(x), Size(size)),
                        _ => s.free(Addr(x), Size(size)),
                    };
                    r.unwrap_or_else(|e| panic!("{ctx}: free {x:#x} {size}: {e:?}"));
                    if let Some((c, _)) = m.live.remove(&x) {
                        if door < 3 {
                            m.push(door, c, x);
                        }
                        freed.push((x, size));
                    } else {
                        assert!(m.plain.remove(&x).is_some(), "{ctx}");
                        m.frees += 1;
                    }
                    if k % 8 == 0 {
                        compare(&s, &m, &ctx);
                    }
                }
            }
            _ => {}
        }
        compare(&s, &m, &ctx);
    }
    // Everything back: free all, flush all, reclaim.
    for (x, (c, z)) in std::mem::take(&mut m.live) {
        h[0].as_mut().unwrap().free(Addr(x), Size(z)).unwrap();
        m.live.insert(x, (c, z));
        m.live.remove(&x);
        m.push(0, c, x);
    }
    for (x, z) in std::mem::take(&mut m.plain) {
        s.free(Addr(x), Size(z)).unwrap();
        m.frees += 1;
    }
    compare(&s, &m, "freed all");
    drop(h);
    m.flush(0);
    m.flush(1);
    drop(cpu);
    m.flush(2);
    compare(&s, &m, "dropped");
    s.reclaim();
    m.reclaim(&held(&s), "final reclaim");
    compare(&s, &m, "final");
    assert_eq!(sizes(&s).allocated, Size(0));
    assert_eq!(qstats(&s).hits + qstats(&s).misses, m.st.hits + m.st.misses);
    if std::env::var("QDEBUG").is_ok() {
        eprintln!(
            "END q {q} classes {classes} seed {seed}: {:?} failures {} allocs {} bad {} seen {:?}",
            m.st, m.failures, m.allocs, m.bad_frees, m.seen
        );
    }
    m.seen
}

fn covered(runs: &[[u64; 8]], need: &[usize]) {
    for &k in need {
        assert!(runs.iter().any(|r| r[k] > 0), "path {k} never taken: {runs:?}");
    }
}

#[test]
fn model_q16_four_classes() {
    let runs: Vec<_> = (1..=3).map(|seed| model_run(16, 4, seed, 250)).collect();
    covered(&runs, &[0, 1, 2, 3, 5, 6, 7]);
}

#[test]
fn model_q1_eight_classes_tight() {
    let runs: Vec<_> = (1..=2).map(|seed| model_run(1, 8, seed, 250)).collect();
    covered(&runs, &[0, 2, 3, 4]);
}

#[test]
fn model_q4096_three_classes() {
    let runs = [model_run(4096, 3, 11, 250), model_run(64, 1, 5, 250)];
    covered(&runs, &[0, 1, 2, 3, 5, 6, 7]);
}

/// The same at the top of the address space: the last span below 2^64
/// that is aligned to its size.
#[test]
fn model_at_the_top_of_the_address_space() {
    let span = 32 * 1024; // 32 slabs of class 0 (16 * 64 bytes)
    let runs = [model_run_at(16, 4, 9, 200, Some(usize::MAX - 2 * span + 1))];
    covered(&runs, &[0, 2, 3]);
}
