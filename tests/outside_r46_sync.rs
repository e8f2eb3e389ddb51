//! Outside review, round 46: a `SyncArena` with quantum caches shared by
//! threads whose source panics at random calls (each caught on its
//! thread), while the others keep allocating and freeing through cache
//! handles and the arena. Afterwards: no object was live twice, the lock
//! works, `check()` holds, the arena's spans are exactly what the source
//! handed out and holds, and once calm every span goes back.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use vmspace::arena::{Arena, ArenaError, Policy, SegmentKind, SegmentKinds, SliceStore, Source};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

#[derive(Default)]
struct St {
    held: BTreeSet<(usize, usize)>,
    next: usize,
    panic_one_in: u64,
    rng: u64,
    violations: Vec<String>,
    panics: u64,
}

#[derive(Clone)]
struct Src(Arc<Mutex<St>>);

impl Src {
    fn lock(&self) -> std::sync::MutexGuard<'_, St> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn maybe_panic(&self, what: &str) {
        let mut s = self.lock();
        if s.panic_one_in == 0 {
            return;
        }
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        if s.rng % s.panic_one_in == 0 {
            s.panics += 1;
            drop(s);
            std::panic::panic_any(SourcePanic(what.to_string()));
        }
    }
}

struct SourcePanic(#[allow(dead_code)] String);

impl Source for Src {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.maybe_panic("import");
        let mut s = self.lock();
        let base = (s.next + align.0 - 1) & !(align.0 - 1);
        s.next = base + size.0 + Q;
        s.held.insert((base, size.0));
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        {
            let mut s = self.lock();
            if !s.held.remove(&(r.base().0, r.size().0)) {
                s.violations.push(format!("release of {r} not held"));
            }
        }
        self.maybe_panic("release");
        Ok(())
    }
    fn release_unflushed(&mut self, r: Range) -> Result<(), ArenaError> {
        let mut s = self.lock();
        if !s.held.remove(&(r.base().0, r.size().0)) {
            s.violations.push(format!("release_unflushed of {r} not held"));
        }
        Ok(())
    }
}

type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, Src>;

fn quiet() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |i| {
        if i.payload().downcast_ref::<SourcePanic>().is_none() {
            prev(i);
        }
    }));
}

fn spans_of(s: &Shared<'_>) -> BTreeSet<(usize, usize)> {
    s.with(|a| {
        a.walk(SegmentKinds::SPANS)
            .filter(|g| g.kind == SegmentKind::Span)
            .map(|g| (g.range.base().0, g.range.size().0))
            .collect()
    })
}

fn run(seed: u64) {
    let src = Src(Arc::new(Mutex::new(St {
        next: 1 << 30,
        rng: seed | 1,
        panic_one_in: 0,
        ..Default::default()
    })));
    let (mut t, mut h, mut qc) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10], vec![0u8; 256 << 10]);
    let a =
        Arena::new("s", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), src.clone())
            .unwrap();
    let s: Shared<'_> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(4, SliceStore::new(&mut qc))).unwrap();
    src.lock().panic_one_in = 6;
    let live: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|sc| {
        for th in 0..3u64 {
            let (s, live) = (&s, &live);
            sc.spawn(move || {
                let mut rng = (seed * 7919 + th * 104729) | 1;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut h = CacheHandle::new(s);
                let mut mine: Vec<(usize, usize)> = vec![];
                for _ in 0..600 {
                    let r = next();
                    if r % 5 < 3 || mine.is_empty() {
                        let size = if r % 2 == 0 {
                            16 * (1 + (r >> 8) % 4) as usize
                        } else {
                            16 * (1 + (r >> 8) % 600) as usize
                        };
                        let via_handle = (r >> 20) % 2 == 0;
                        let got = catch_unwind(AssertUnwindSafe(|| {
                            if via_handle {
                                h.alloc(Size(size))
                            } else {
                                s.alloc(Size(size), Policy::InstantFit, Wait::No)
                            }
                        }));
                        if let Ok(Ok(x)) = got {
                            let mut l = live.lock().unwrap();
                            if let Some((&b, &sz)) = l.range(..x.0 + size).next_back() {
                                assert!(
                                    b + sz <= x.0,
                                    "{x:?}+{size:#x} overlaps live {b:#x}+{sz:#x}"
                                );
                            }
                            l.insert(x.0, size);
                            mine.push((x.0, size));
                        }
                    } else {
                        let i = (r >> 8) as usize % mine.len();
                        let (b, sz) = mine.swap_remove(i);
                        live.lock().unwrap().remove(&b);
                        let via_handle = (r >> 20) % 2 == 0;
                        let got = catch_unwind(AssertUnwindSafe(|| {
                            if via_handle {
                                h.free(Addr(b), Size(sz))
                            } else {
                                s.free(Addr(b), Size(sz))
                            }
                        }));
                        if let Ok(r) = got {
                            r.unwrap();
                        }
                    }
                    if r % 97 == 0 {
                        let _ = catch_unwind(AssertUnwindSafe(|| s.reclaim()));
                    }
                }
                for (b, sz) in mine {
                    live.lock().unwrap().remove(&b);
                    let got = catch_unwind(AssertUnwindSafe(|| h.free(Addr(b), Size(sz))));
                    if let Ok(r) = got {
                        r.unwrap();
                    }
                }
                let _ = catch_unwind(AssertUnwindSafe(move || drop(h)));
            });
        }
    });
    assert!(src.lock().panics > 0, "seed {seed}: no panic happened");
    s.check().unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
    assert!(src.lock().violations.is_empty(), "seed {seed}: {:?}", src.lock().violations);
    assert_eq!(spans_of(&s), src.lock().held, "seed {seed}: spans vs source");
    src.lock().panic_one_in = 0;
    while s.reclaim() > 0 {}
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "seed {seed}: everything freed");
    // One import returns: give-backs resume.
    let x = s.alloc(Size(1 << 20), Policy::InstantFit, Wait::No).unwrap();
    s.free(x, Size(1 << 20)).unwrap();
    s.check().unwrap();
    assert_eq!(spans_of(&s), src.lock().held);
    drop(s);
    let st = src.lock();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert!(st.held.is_empty(), "seed {seed}: all given back: {:?}", st.held);
}

#[test]
fn sync_arena_with_caches_and_a_panicking_source_across_threads() {
    quiet();
    for seed in 1..=12 {
        run(seed);
    }
}
