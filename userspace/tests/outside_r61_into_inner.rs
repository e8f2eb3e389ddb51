//! Round 61 (outside reviewer): `SyncArena::into_inner` against threads.
//!
//! `into_inner(self)` cannot race with anything: `CacheHandle`,
//! `CpuCaches` and `Retrying` borrow the arena (`&'a SyncArena`), so it
//! compiles only once every one of them is gone, and scoped threads must
//! have been joined. The only way to end such a borrow without the
//! magazines' flush is `std::mem::forget` (safe Rust).
//!
//! - `into_inner_after_threads_join_and_caches_drop` (PASSES, sharp): four
//!   threads on two CPUs through per-CPU caches and handles, objects freed
//!   by other threads; once they are joined and the caches dropped,
//!   `into_inner` succeeds and the arena holds nothing but what was added.
//! - `into_inner_after_a_forgotten_cpu_caches_strands_its_slabs`: after a
//!   `CpuCaches` is forgotten with objects in its magazines (none live:
//!   every allocation was freed), `into_inner` refused for ever saying
//!   "objects live in the quantum caches", advice ("free the objects") that
//!   could not be followed. Was a doc DEFECT (fixed: the refusal says
//!   "quantum-cache slabs with objects out", and the docs of `into_inner`
//!   and `CpuCaches` say forgetting a cache strands its objects and slabs);
//!   the test holds that.

use vmspace::arena::ArenaError;
use vmspace::sync::CacheHandle;
use vmspace::{Addr, Size};
use vmspace_user::{allowed_cpus, run_only_on, RseqPin};

mod outside_r61_common;

use outside_r61_common::*;

#[test]
fn into_inner_after_threads_join_and_caches_drop() {
    let s = shared();
    let cpus = allowed_cpus().unwrap();
    {
        let c = caches(&s, RseqPin::new());
        let passed = std::sync::Mutex::new(Vec::<(Addr, Size)>::new());
        std::thread::scope(|sc| {
            for t in 0..4usize {
                let (c, s, cpus, passed) = (&c, &s, &cpus, &passed);
                sc.spawn(move || {
                    let mut h = CacheHandle::new(s);
                    for i in 0..3000usize {
                        if i % 10 == 0 {
                            run_only_on(cpus[(t + i / 10) % cpus.len()]).unwrap();
                        }
                        let sz = Size(Q * (1 + (i + t) % 8));
                        let a = if i % 2 == 0 { c.alloc(sz) } else { h.alloc(sz) }.unwrap();
                        if i % 3 == 0 {
                            passed.lock().unwrap().push((a, sz));
                        } else {
                            c.free(a, sz).unwrap();
                        }
                        // Free another thread's object, through the other door.
                        if i % 3 == 1 {
                            if let Some((b, bz)) = passed.lock().unwrap().pop() {
                                h.free(b, bz).unwrap();
                            }
                        }
                    }
                });
            }
        });
        for (a, sz) in passed.into_inner().unwrap() {
            s.free(a, sz).unwrap();
        }
        drop(c);
    }
    let arena = s.into_inner().unwrap_or_else(|r| panic!("refused: {:?}", r.error()));
    assert_eq!(arena.sizes().allocated, Size(0));
}

#[test]
fn into_inner_after_a_forgotten_cpu_caches_strands_its_slabs() {
    // Forgetting the caches leaks their pin's heap on purpose, which
    // LeakSanitizer reports under `make asan`.
    if std::env::var_os("VMSPACE_ASAN").is_some() {
        return;
    }
    let s = shared();
    let c = caches(&s, RseqPin::new());
    let objs: Vec<Addr> = (0..20).map(|_| c.alloc(Size(Q)).unwrap()).collect();
    for a in objs {
        c.free(a, Size(Q)).unwrap();
    }
    // Nothing is live now; the objects sit in this CPU's magazines.
    std::mem::forget(c);
    let r = s.into_inner().err().expect("the forgotten magazines strand their slabs");
    assert!(
        matches!(r.error(), ArenaError::InUse { what: "quantum-cache slabs with objects out", size } if size.0 > 0),
        "{:?}",
        r.error()
    );
    // For good: a reclaim cannot reach the forgotten magazines.
    let s = r.into_inner();
    s.reclaim();
    assert!(s.into_inner().is_err(), "stranded for the arena's life, as documented");
}
