//! Outside review, round 32: child arenas on several threads importing
//! from one shared parent (`&SyncArena` as a `Source`), the parent small
//! enough that imports fail, while another thread reads the parent's
//! statistics.
//!
//! Contracts: `Counters` (src/arena/stats.rs:29) "They only ever
//! increase" (read concurrently: never down); `Sizes::total` "In spans:
//! allocated + free + unflushed" (each `sizes()` snapshot); the `&SyncArena`
//! source (src/sync/arena.rs:492): "imports are instant-fit constrained
//! allocations that do not wait, give-backs frees" — so once joined, the
//! parent's `allocs` is every import a child got, its `frees` every span
//! given back (children dropping give back theirs), its `failures` every
//! import it refused (a failing `SyncArena` allocation retries only "if a
//! reclaim gave slabs back", and there are no caches), and each child's
//! own counters follow its calls exactly, as in a single thread: `allocs`,
//! `frees`, `failures`, `bad_frees` by the result of each call, `imports`
//! and `exports` as its source saw them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use vmspace::arena::{
    Arena, ArenaError, Counters, NoSource, Policy, SegmentKinds, SliceStore, Source,
};
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Range, Size};

mod outside_common;
use outside_common::Rng;

type Parent<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;

const PQ: usize = 4096;

/// The parent as a source, counting what it is asked and answers.
struct Counting<'p, 'a> {
    parent: &'p Parent<'a>,
    import_ok: u64,
    import_failed: u64,
    released: u64,
}

impl Source for Counting<'_, '_> {
    fn quantum(&self) -> Size {
        Source::quantum(&self.parent)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let mut p = self.parent;
        let r = p.import(size, align);
        match r {
            Ok(_) => self.import_ok += 1,
            Err(_) => self.import_failed += 1,
        }
        r
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        let mut p = self.parent;
        let r = p.release(range);
        assert_eq!(r, Ok(()), "the parent takes back {range:?}");
        self.released += 1;
        r
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        let mut p = self.parent;
        p.release_unflushed(range)
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Totals {
    import_ok: u64,
    import_failed: u64,
    released: u64,
}

fn child_run(parent: &Parent<'_>, seed: u64, steps: usize) -> Totals {
    let (mut tags, mut hash) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let src = Counting { parent, import_ok: 0, import_failed: 0, released: 0 };
    let mut a =
        Arena::new("child", Size(64), SliceStore::new(&mut tags), SliceStore::new(&mut hash), src)
            .unwrap();
    let mut rng = Rng(seed | 1);
    let mut m = Counters::default();
    let mut live: Vec<(Addr, usize)> = vec![];
    for step in 0..steps {
        let what = format!("seed {seed} step {step}");
        match rng.below(10) {
            0..=4 => {
                let s = 1 + rng.below(3 * PQ as u64) as usize;
                match a.alloc(Size(s), Policy::InstantFit) {
                    Ok(x) => {
                        m.allocs += 1;
                        live.push((x, s));
                    }
                    Err(ArenaError::BadFree { .. }) => panic!("{what}"),
                    Err(_) => m.failures += 1,
                }
            }
            5..=7 if !live.is_empty() => {
                let (x, s) = live.swap_remove(rng.below(live.len() as u64) as usize);
                a.free(x, Size(s)).unwrap();
                m.frees += 1;
            }
            8 if !live.is_empty() => {
                let (x, s) = live[rng.below(live.len() as u64) as usize];
                assert!(a.free(x, Size(s + 64)).is_err(), "{what}");
                m.bad_frees += 1;
            }
            _ => {}
        }
        a.check().unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let c = a.counters();
        assert_eq!(
            (c.allocs, c.frees, c.failures, c.bad_frees),
            (m.allocs, m.frees, m.failures, m.bad_frees),
            "{what}: the child's (allocs, frees, failures, bad_frees)"
        );
        let s = a.source();
        assert_eq!(
            (c.imports, c.exports, c.export_failures),
            (s.import_ok, s.released, 0),
            "{what}: the child's (imports, exports, export_failures)"
        );
        let spans = a.walk(SegmentKinds::SPANS).filter(|s| s.imported).count() as u64;
        assert_eq!(c.imports - c.exports, spans, "{what}: imported spans held");
    }
    // Free what is live: every imported span goes back.
    for (x, s) in live {
        a.free(x, Size(s)).unwrap();
    }
    let s = a.source();
    let t = Totals { import_ok: s.import_ok, import_failed: s.import_failed, released: s.released };
    assert_eq!(a.sizes().imported, Size(0), "seed {seed}: nothing imported kept once all is free");
    t
}

fn run(seed: u64) {
    let (mut tags, mut hash) = (vec![0u8; 1 << 18], vec![0u8; 1 << 14]);
    let mut p = Arena::new(
        "parent",
        Size(PQ),
        SliceStore::new(&mut tags),
        SliceStore::new(&mut hash),
        NoSource,
    )
    .unwrap();
    p.add(Addr(1 << 32), Size(48 * PQ)).unwrap();
    let parent: Parent<'_> = SyncArena::new(p);
    let totals = Mutex::new(Totals::default());
    let left = AtomicUsize::new(3);
    let stop = AtomicBool::new(false);
    let bad = std::thread::scope(|s| {
        let (parent, totals, left, stop) = (&parent, &totals, &left, &stop);
        for t in 0..3u64 {
            s.spawn(move || {
                struct Out<'x>(&'x AtomicUsize);
                impl Drop for Out<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Release);
                    }
                }
                let _out = Out(left);
                let r = child_run(parent, seed.wrapping_mul(1000).wrapping_add(t * 77 + 1), 1500);
                let mut all = totals.lock().unwrap();
                all.import_ok += r.import_ok;
                all.import_failed += r.import_failed;
                all.released += r.released;
            });
        }
        let reader = s.spawn(move || {
            let mut v = vec![];
            let mut last = Counters::default();
            loop {
                let fin = left.load(Ordering::Acquire) == 0 || stop.load(Ordering::Acquire);
                let (c, z) = parent.with(|a| (a.counters(), a.sizes()));
                for (n, now, was) in [
                    ("allocs", c.allocs, last.allocs),
                    ("frees", c.frees, last.frees),
                    ("failures", c.failures, last.failures),
                    ("bad_frees", c.bad_frees, last.bad_frees),
                    ("search_steps", c.search_steps, last.search_steps),
                    ("lookups", c.lookups, last.lookups),
                ] {
                    if now < was {
                        v.push(format!("{n} went down {was} -> {now}"));
                    }
                }
                if z.total.0 != z.allocated.0 + z.free.0 + z.unflushed.0 {
                    v.push(format!("sizes {z:?}"));
                }
                last = c;
                if fin {
                    break v;
                }
                std::thread::yield_now();
            }
        });
        reader.join().unwrap()
    });
    assert!(bad.is_empty(), "seed {seed}: {:?}", &bad[..bad.len().min(4)]);
    let t = totals.into_inner().unwrap();
    let c = parent.with(|a| a.counters());
    let z = parent.with(|a| a.sizes());
    parent.check().unwrap();
    let ctx = format!("seed {seed}: {t:?}\n{c:?}\n{z:?}");
    assert!(t.import_failed > 0 && t.import_ok > 0, "{ctx}: imports failed and succeeded");
    assert_eq!(c.allocs, t.import_ok, "{ctx}: parent allocs = imports");
    assert_eq!(c.frees, t.released, "{ctx}: parent frees = give-backs");
    assert_eq!(c.failures, t.import_failed, "{ctx}: parent failures = refused imports");
    assert_eq!((z.allocated, parent.with(|a| a.live())), (Size(0), 0), "{ctx}");
}

#[test]
fn children_on_threads_over_one_shared_parent() {
    for seed in 1..=4 {
        run(seed);
    }
}
