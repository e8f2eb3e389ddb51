//! Waiters and the quantum caches: a thread waiting for space wakes when
//! the space it needs comes back through the caches, not only through the
//! arena. (Found by tests written outside the project: the arena reclaimed
//! the caches once before the first sleep and never again, a full magazine
//! reaching the depot woke no one, and a cache's waiter retried only the
//! arena.)
//!
//! Each arena has one span of exactly one slab (64 objects of 16 bytes),
//! all of it held by the test; a waiter asks with a timeout of 60 s, and
//! the test gives back what the waiter needs once it is waiting. The waiter
//! must be served by a wake-up, long before its timeout (a timed-out waiter
//! tries once more, which would take the space without any wake-up: a
//! bound on liveness, not a measure of speed).

use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, SchedPin, UserArena, UserCpuCaches};

type Shared = UserArena<PageStore<MmapBackend>, NoSource>;

const OBJECT: Size = Size(16);
const SLAB: usize = 64 * 16;

const PATIENCE: Wait = Wait::Timeout(Duration::from_secs(60));

/// An arena of one slab's span with quantum caches.
fn one_slab_arena() -> Shared {
    let pages = MmapBackend::new();
    let mut arena = Arena::on_pages("waiters", Size(16), pages, 1 << 12, NoSource).unwrap();
    arena.add(Addr(1 << 40), Size(SLAB)).unwrap();
    let slabs = PageStore::new(pages, Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(arena, QCacheConfig::new(4, slabs)).unwrap()
}

/// Run `wait` (waiting with [`PATIENCE`]) on a thread of its own; once it
/// is waiting, run `give`; the waiter must then be woken and served.
fn served_after(
    shared: &Shared,
    wait: impl FnOnce() -> Result<Addr, ArenaError> + Send,
    give: impl FnOnce(),
) -> Addr {
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let t0 = Instant::now();
            (wait(), t0.elapsed())
        });
        while shared.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Waiting is counted before the waiter's first retry: let it sleep.
        std::thread::sleep(Duration::from_millis(50));
        give();
        let (got, waited) = waiter.join().unwrap();
        assert!(
            waited < Duration::from_secs(30),
            "the waiter was not woken: {got:?} at its timeout"
        );
        got.expect("the waiter failed")
    })
}

#[test]
fn an_arena_waiter_wakes_when_a_flush_frees_a_whole_slab() {
    let shared = &one_slab_arena();
    let mut a = CacheHandle::new(shared);
    let objects: Vec<Addr> = (0..64).map(|_| a.alloc(OBJECT).unwrap()).collect();
    assert!(shared.alloc(Size(512), Policy::InstantFit, Wait::No).is_err(), "the arena is full");
    let got = served_after(
        shared,
        || shared.alloc(Size(512), Policy::InstantFit, PATIENCE),
        move || {
            for x in objects {
                a.free(x, OBJECT).unwrap();
            }
            drop(a); // the flush: the whole slab is in the depot now
        },
    );
    shared.free(got, Size(512)).unwrap();
    shared.check().unwrap();
}

#[test]
fn a_handle_waiter_wakes_when_a_full_magazine_reaches_the_depot() {
    let shared = &one_slab_arena();
    let mut a = CacheHandle::new(shared);
    let mut objects: Vec<Addr> = (0..64).map(|_| a.alloc(OBJECT).unwrap()).collect();
    assert!(a.alloc(OBJECT).is_err(), "the arena is full");
    let got = served_after(
        shared,
        || CacheHandle::new(shared).alloc_wait(OBJECT, PATIENCE),
        || {
            // More than two magazines hold: a full one goes to the depot.
            for x in objects.drain(..40) {
                a.free(x, OBJECT).unwrap();
            }
        },
    );
    // The waiter's handle was dropped with the rest of its magazine; the
    // object itself is live: free it and the rest.
    shared.free(got, OBJECT).unwrap();
    for x in objects {
        a.free(x, OBJECT).unwrap();
    }
    drop(a);
    shared.reclaim();
    assert_eq!(shared.with(|ar| ar.sizes().allocated), Size(0));
}

#[test]
fn a_per_cpu_waiter_wakes_when_objects_are_freed_into_its_slot() {
    let shared = &one_slab_arena();
    let store = PageStore::new(MmapBackend::new(), Size(1 << 16)).unwrap();
    // One slot: every thread shares its magazines.
    let caches = &UserCpuCaches::new(shared, SchedPin::with_slots(1), store).unwrap();
    let mut objects: Vec<Addr> = (0..64).map(|_| caches.alloc(OBJECT).unwrap()).collect();
    assert!(caches.alloc(OBJECT).is_err(), "the arena is full");
    let got = served_after(
        shared,
        || caches.alloc_wait(OBJECT, PATIENCE),
        || {
            // Ten objects into the slot's magazine: none reaches the depot.
            for x in objects.drain(..10) {
                caches.free(x, OBJECT).unwrap();
            }
        },
    );
    caches.free(got, OBJECT).unwrap();
    for x in objects {
        caches.free(x, OBJECT).unwrap();
    }
    shared.check().unwrap();
}
