//! Outside review, round 44: `KeepFree<&SyncArena>` per thread, four
//! threads' arenas importing from one shared parent (small, so imports
//! fail with `NoSpace` and the adapters trim and retry), run 10 times.
//!
//! Held (passes): every range any adapter hands out overlaps no range any
//! other adapter has handed out and not had back, nor any adapter's kept
//! span (README.md:244-247; keep.rs:38-40 "it adds no way to hand a range out
//! twice"); every `check()` after every step; `imported + reused` is the
//! imports the arena made; after all arenas are dropped the parent holds
//! nothing.

use std::sync::Mutex;

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Range, Size};

const PAGE: usize = 4096;

type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;

/// Every range handed out by any adapter, not yet given back.
type Registry = Mutex<Vec<Range>>;

/// Records what the adapter below hands out in the shared registry.
struct Reg<'r, S> {
    inner: S,
    reg: &'r Registry,
    imports: u64,
}

impl<S: Source> Source for Reg<'_, S> {
    fn quantum(&self) -> Size {
        self.inner.quantum()
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let r = self.inner.import(size, align)?;
        self.imports += 1;
        let mut reg = self.reg.lock().unwrap();
        if let Some(o) = reg.iter().find(|o| o.overlaps(&r)) {
            panic!("{r} handed out while {o} is held elsewhere");
        }
        reg.push(r);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        {
            let mut reg = self.reg.lock().unwrap();
            let i = reg.iter().position(|o| *o == range).expect("given back what was held");
            reg.swap_remove(i);
        }
        let r = self.inner.release(range);
        assert!(r.is_ok(), "a give-back of a held span: {r:?}");
        Ok(())
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.release(range)
    }
}

fn rng(r: &mut u64) -> u64 {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *r >> 33
}

/// Returns (reused, allocations that failed).
fn worker(s: &Shared<'_>, reg: &Registry, seed: u64) -> (u64, u64) {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let k = KeepFree::<_, 2>::new(s, Size(2 * PAGE));
    let source = Reg { inner: k, reg, imports: 0 };
    let mut a =
        Arena::new("child", Size(64), SliceStore::new(&mut t), SliceStore::new(&mut h), source)
            .unwrap();
    let mut live: Vec<(Addr, usize)> = Vec::new();
    let mut r = seed;
    let mut failed = 0;
    for step in 0..400 {
        if rng(&mut r) % 2 == 0 || live.is_empty() {
            let size = 64 * (1 + (rng(&mut r) % 200) as usize);
            match a.alloc(Size(size), Policy::InstantFit) {
                Ok(x) => live.push((x, size)),
                Err(_) => failed += 1,
            }
        } else {
            let i = rng(&mut r) as usize % live.len();
            let (x, size) = live.swap_remove(i);
            a.free(x, Size(size)).unwrap();
        }
        let reg_now = reg.lock().unwrap();
        let k = &a.source().inner;
        k.check().unwrap_or_else(|e| panic!("seed {seed} step {step}: {e:?}"));
        for kept in k.kept() {
            assert!(
                !reg_now.iter().any(|o| o.overlaps(kept)),
                "seed {seed} step {step}: kept {kept} is held by an arena"
            );
        }
        drop(reg_now);
        a.check().unwrap();
        let c = k.counts();
        assert_eq!(c.imported + c.reused, a.source().imports, "seed {seed} step {step}");
    }
    for (x, size) in live {
        a.free(x, Size(size)).unwrap();
    }
    (a.source().inner.counts().reused, failed)
}

#[test]
fn holds_threads_sharing_a_parent_through_adapters() {
    for round in 0..10u64 {
        let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut p = Arena::new(
            "parent",
            Size(PAGE),
            SliceStore::new(&mut t),
            SliceStore::new(&mut h),
            NoSource,
        )
        .unwrap();
        p.add(Addr(1 << 30), Size(48 * PAGE)).unwrap();
        let s: Shared = SyncArena::new(p);
        let reg = Registry::default();
        let got: Vec<(u64, u64)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let (s, reg) = (&s, &reg);
                    sc.spawn(move || worker(s, reg, round * 16 + i))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let (reused, failed) = got.iter().fold((0, 0), |t, g| (t.0 + g.0, t.1 + g.1));
        assert!(reused > 0 && failed > 0, "coverage: reused {reused}, failed {failed}");
        assert!(reg.lock().unwrap().is_empty());
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "round {round}");
        s.check().unwrap();
    }
}
