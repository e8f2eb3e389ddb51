//! A `SyncArena` with quantum caches over a scripted source that refuses
//! give-backs as busy or otherwise, strands them, or panics, with imports
//! that fail or panic (one thread, seeded): after every step the arena
//! checks, `sizes().imported` equals the spans its books say it holds,
//! every allocation (cached or not) lies in a span held and overlaps no
//! live one, and nothing is given back twice or while the last call into
//! the source had unwound. After a calm spell and a reclaim everything
//! goes back.

mod outside_r50_common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use outside_r50_common::{quiet, Recorder, Rel, Rng, Scripted};
use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};

#[test]
fn sync_arena_with_caches_over_a_scripted_source() {
    quiet();
    for seed in 0..4u64 {
        let src = Scripted::new(4096, seed + 100);
        let script = src.s.clone();
        let (rec, books) = Recorder::new(src);
        let (mut t, mut h, mut qc) =
            (vec![0u8; 256 << 10], vec![0u8; 64 << 10], vec![0u8; 256 << 10]);
        let a = Arena::new("s", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), rec)
            .unwrap();
        let s: SyncArena<SpinLock, NoWait, _, _> =
            SyncArena::with_quantum_caches(a, QCacheConfig::new(4, SliceStore::new(&mut qc)))
                .unwrap();
        let mut ch = CacheHandle::new(&s);
        let mut rng = Rng(seed);
        let mut live: BTreeMap<usize, (usize, bool)> = BTreeMap::new();
        for step in 0..2000 {
            if step % 250 == 0 {
                let mut sc = script.borrow_mut();
                let phase = rng.below(3);
                sc.rel_busy = [0, 800, 200][phase as usize];
                sc.rel_other = [0, 0, 100][phase as usize];
                sc.rel_stranded = [0, 0, 50][phase as usize];
                sc.rel_panic_before = [0, 0, 30][phase as usize];
                sc.rel_panic_after = [0, 0, 30][phase as usize];
                sc.imp_panic = [0, 20, 30][phase as usize];
            }
            let r = rng.below(100);
            if r < 50 || live.is_empty() {
                let cached = rng.below(2) == 0;
                let size = if cached {
                    16 * (1 + rng.below(4) as usize)
                } else {
                    16 * (1 + rng.below(700) as usize)
                };
                let got = catch_unwind(AssertUnwindSafe(|| {
                    if cached {
                        ch.alloc(Size(size))
                    } else {
                        s.alloc(Size(size), Policy::InstantFit, Wait::No)
                    }
                }));
                if let Ok(Ok(x)) = got {
                    let b = books.borrow();
                    assert!(b.inside_held(x.0, size), "seed {seed} step {step}: {x} in no span");
                    if let Some((&y, &(n, _))) = live.range(..x.0 + size).next_back() {
                        assert!(y + n <= x.0, "seed {seed} step {step}: {x} overlaps {y:#x}");
                    }
                    drop(b);
                    live.insert(x.0, (size, cached));
                }
            } else if r < 95 {
                let k = rng.below(live.len() as u64) as usize;
                let (&x, &(size, cached)) = live.iter().nth(k).unwrap();
                live.remove(&x);
                let got = catch_unwind(AssertUnwindSafe(|| {
                    if cached {
                        ch.free(Addr(x), Size(size))
                    } else {
                        s.free(Addr(x), Size(size))
                    }
                }));
                if let Ok(r) = got {
                    r.unwrap_or_else(|e| panic!("seed {seed} step {step}: free: {e}"));
                }
            } else {
                let _ = catch_unwind(AssertUnwindSafe(|| s.reclaim()));
            }
            let ctx = format!("seed {seed} step {step}");
            s.check().unwrap_or_else(|e| panic!("{ctx}: check {e}"));
            let v: Vec<String> = books
                .borrow()
                .violations
                .iter()
                .chain(script.borrow().violations.iter())
                .cloned()
                .collect();
            assert!(v.is_empty(), "{ctx}: {v:#?}");
            assert_eq!(
                s.with(|a| a.sizes().imported),
                Size(books.borrow().held_size()),
                "{ctx}: imported vs held"
            );
        }
        // Calm: everything freed, a call returns, caches reclaimed.
        {
            let mut sc = script.borrow_mut();
            sc.always_rel = Some(Rel::Ok);
            sc.imp_panic = 0;
        }
        for (x, (size, cached)) in std::mem::take(&mut live) {
            if cached {
                ch.free(Addr(x), Size(size)).unwrap();
            } else {
                s.free(Addr(x), Size(size)).unwrap();
            }
        }
        drop(ch);
        let x = s.alloc(Size(1 << 16), Policy::InstantFit, Wait::No).unwrap();
        s.free(x, Size(1 << 16)).unwrap();
        while s.reclaim() > 0 {}
        // A free lets the walk for held spans run (it may wait out a back-off).
        for _ in 0..1100 {
            let y = s.alloc(Size(1 << 16), Policy::InstantFit, Wait::No).unwrap();
            let z = s.alloc(Size(16 * 500), Policy::InstantFit, Wait::No).unwrap();
            s.free(z, Size(16 * 500)).unwrap();
            s.free(y, Size(1 << 16)).unwrap();
        }
        s.check().unwrap();
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "seed {seed}");
        assert_eq!(s.with(|a| a.sizes().imported), Size(0), "seed {seed}: all given back");
        assert!(books.borrow().held.is_empty());
        drop(s);
    }
}
