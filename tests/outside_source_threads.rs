//! Outside review: threads importing through one shared `&SyncArena`,
//! racing double frees, foreign handles, and a panicking or re-entrant
//! source under the lock. From the public documentation only.
//!
//! SyncArena: "`&SyncArena` is a Source, so arenas on other threads can
//! import from one shared parent." SyncArena::free: "of two frees of one
//! object racing each other, on any path, exactly one succeeds."

mod outside_source_common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier, Mutex};
use std::time::Duration;

use outside_source_common::*;
use vmspace::arena::{ArenaError, Constraints, NoSource, Policy, SliceStore, Source};
use vmspace::qcache::{table_store_bytes, QCacheConfig};
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Range, Size};

type Shared<I> = SyncArena<SpinLock, NoWait, SliceStore<'static>, I>;

fn shared_root(classes: usize) -> Shared<NoSource> {
    let mut a = arena("root", 4096, NoSource);
    a.add(Addr(1 << 40), Size(1 << 32)).unwrap();
    let store = SliceStore::new(buf(table_store_bytes(classes) + 4096));
    SyncArena::with_quantum_caches(a, QCacheConfig::new(classes, store)).unwrap()
}

/// Live ranges of every thread: an insert must overlap nothing.
struct Live(Mutex<BTreeMap<usize, usize>>);
impl Live {
    fn insert(&self, x: Addr, size: Size, who: &str) {
        let mut m = self.0.lock().unwrap();
        let (b, l) = (x.0, x.0 + size.0);
        if let Some((&pb, &pl)) = m.range(..l).next_back() {
            assert!(pl <= b, "{who}: [{b:#x},{l:#x}) overlaps live [{pb:#x},{pl:#x})");
        }
        m.insert(b, l);
    }
    fn remove(&self, x: Addr) {
        self.0.lock().unwrap().remove(&x.0).expect("live");
    }
}

#[test]
fn two_children_import_through_one_shared_parent() {
    let root = shared_root(4);
    let before = root.with(|a| a.sizes());
    let live = Live(Mutex::new(BTreeMap::new()));
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (root, live) = (&root, &live);
            s.spawn(move || {
                let mut child = arena(if t == 0 { "c0" } else { "c1" }, 64, root);
                let mut cache = CacheHandle::new(root);
                let mut held: Vec<(Addr, Size, bool)> = Vec::new();
                let mut x = 0x2545F4914F6CDD1Du64 ^ t;
                for i in 0..3000usize {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x % 3 == 0 && !held.is_empty() {
                        let (p, sz, cached) = held.swap_remove(x as usize / 3 % held.len());
                        live.remove(p);
                        if cached {
                            cache.free(p, sz).unwrap()
                        } else {
                            child.free(p, sz).unwrap()
                        }
                    } else if x % 7 == 1 {
                        let sz = Size(4096 * (1 + (x >> 9) as usize % 4));
                        let p = cache.alloc(sz).unwrap();
                        live.insert(p, sz, "cache");
                        held.push((p, sz, true));
                    } else {
                        let sz = Size(64 * (1 + (x >> 9) as usize % 200));
                        let c = Constraints::new(sz)
                            .align(Size(64 << ((x >> 20) % 8)))
                            .nocross(Size(1 << 20));
                        let p = child.xalloc(&c).unwrap();
                        live.insert(p, Size(sz.0.next_multiple_of(64)), "child");
                        held.push((p, sz, false));
                    }
                    if i % 500 == 0 {
                        consistent(&child, "child");
                        root.check().unwrap();
                    }
                }
                for (p, sz, cached) in held {
                    live.remove(p);
                    if cached {
                        cache.free(p, sz).unwrap()
                    } else {
                        child.free(p, sz).unwrap()
                    }
                }
                consistent(&child, "child");
                assert_eq!(child.sizes().total, Size(0), "child keeps spans");
            });
        }
    });
    root.reclaim();
    root.check().unwrap();
    let (s, c) = root.with(|a| (a.sizes(), a.counters()));
    assert_eq!(s, before, "root not back to its initial sizes");
    assert_eq!(c.allocs, c.frees);
}

#[test]
fn racing_double_frees_exactly_one_wins() {
    let root = shared_root(4);
    let wins = AtomicUsize::new(0);
    for round in 0..300 {
        let size = Size(if round % 2 == 0 { 4096 * 3 } else { 4096 * 40 });
        // Even rounds: an object of the quantum caches, freed by address in
        // the arena (no cache in front) from two threads. Odd: a plain one.
        let mut cache = CacheHandle::new(&root);
        let p = if round % 2 == 0 {
            cache.alloc(size).unwrap()
        } else {
            root.alloc(size, Policy::InstantFit, Wait::No).unwrap()
        };
        drop(cache);
        let barrier = Barrier::new(2);
        wins.store(0, Ordering::SeqCst);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    barrier.wait();
                    match root.free(p, size) {
                        Ok(()) => {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => assert!(matches!(e, ArenaError::BadFree { .. }), "{e:?}"),
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}: exactly one free must win");
    }
    root.reclaim();
    root.check().unwrap();
    assert_eq!(root.with(|a| a.sizes().allocated), Size(0));
}

#[test]
fn handles_of_another_arena_are_refused() {
    let root = shared_root(2);
    let mut child = arena("child", 4096, &root);
    let mut other = arena("other", 4096, &root);
    let h = child.alloc_handle(Size(4096), Policy::InstantFit).unwrap();
    let g = other.alloc_handle(Size(4096), Policy::InstantFit).unwrap();
    let before = (other.sizes(), root.with(|a| a.sizes()));
    assert!(matches!(other.free_handle(h), Err(ArenaError::BadHandle { .. })));
    assert!(
        matches!(root.free_handle(h), Err(ArenaError::BadHandle { .. })),
        "a child's handle freed in the parent"
    );
    // A handle rebuilt with the child's parts but the parent's fingerprint.
    let forged = root.with(|a| a.handle_from_parts(h.addr(), h.tag())).unwrap();
    assert!(root.free_handle(forged).is_err());
    assert_eq!((other.sizes(), root.with(|a| a.sizes())), before);
    consistent(&other, "other");
    root.check().unwrap();
    assert_eq!(child.free_handle(h), Ok(Size(4096)));
    assert_eq!(other.free_handle(g), Ok(Size(4096)));
    consistent(&child, "child");
    drop((child, other));
    root.check().unwrap();
    assert_eq!(root.with(|a| a.sizes().allocated), Size(0));
}

/// A source that panics on its first import, then is honest.
struct PanicOnce(Evil, bool);
impl Source for PanicOnce {
    fn quantum(&self) -> Size {
        self.0.quantum()
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if !self.1 {
            self.1 = true;
            panic!("source panics on purpose");
        }
        self.0.import(size, align)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.0.release(range)
    }
}
// SAFETY: the recording source keeps its log in an Rc; the test below uses
// the shared arena from one thread at a time (the other waits on a
// channel), and only under its lock, so no two threads touch the Rc or its
// log at once.
unsafe impl Send for PanicOnce {}

#[test]
fn panicking_source_under_the_lock_does_not_wedge_the_shared_arena() {
    // SyncArena's docs speak of "a wait that ends by unwinding (a panicking
    // source)": a panic in the source must not leave the lock taken.
    let (inner, _log) = Evil::honest(4096, 1 << 40);
    let a = arena("p", 4096, PanicOnce(inner, false));
    let shared: &'static Shared<PanicOnce> = keep(Box::new(SyncArena::new(a)));
    let r =
        catch_unwind(AssertUnwindSafe(|| shared.alloc(Size(4096), Policy::InstantFit, Wait::No)));
    assert!(r.is_err(), "the panic propagates");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = shared.alloc(Size(4096), Policy::InstantFit, Wait::No);
        let ok = shared.check();
        tx.send((r, ok)).unwrap();
    });
    let (r, ok) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the shared arena is wedged after a panicking source");
    ok.unwrap();
    let p = r.unwrap();
    shared.free(p, Size(4096)).unwrap();
    assert_eq!(shared.waiting(), 0);
}
