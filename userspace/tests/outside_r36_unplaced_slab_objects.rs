//! Outside review, round 36: a per-CPU allocation whose caller the pin
//! never places, while objects of its class sit free in their slab and
//! the arena itself is full.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:189-191 (`CpuCaches::alloc_wait`): "Allocate
//!   `size`, waiting for space as `wait` allows when neither the caches
//!   nor the arena have any. A waiter retries its CPU's magazines, the
//!   depot, the slabs and the arena each time space comes back".
//! - src/sync/percpu.rs:34-36 (the type): "When the pin cannot place the
//!   caller on a slot (a user-space thread it cannot place), the call goes
//!   to the arena instead."
//! - src/qcache/pin.rs:107-109: a pin may leave any magazine operation
//!   unplaced (`Unpinned`), as `RseqPin` does for a thread on a CPU
//!   numbered `slots` or more.
//!
//! Both failed before the fix: an unplaced call went to the arena alone,
//! so with the arena full it failed (and waited in vain) beside free
//! objects of its class in the slabs; `alloc_wait` says it waits only
//! "when neither the caches nor the arena have any".

mod pins;

use std::time::Duration;

use pins::{by_thread, set_slot, store, Placed, Store};
use vmspace::arena::{Arena, NoSource};
use vmspace::qcache::{QCacheConfig, OBJECTS};
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::UserArena;

const Q: usize = 16;

/// One slot behind a try-lock; every magazine operation of a thread that
/// `set_slot(None)` leaves unplaced (`by_thread`).
fn one_slot_or_unplaced() -> Placed<1> {
    Placed::new(by_thread)
}

/// An arena of one span filled by class-0 slabs, all but one object of
/// which are back in their slabs (one stays live, so the slabs are not
/// wholly free and a reclaim keeps them); `f` gets the arena. Returns
/// what `f` returns.
fn with_slab_objects_free<R>(f: impl FnOnce(&UserArena<Store, NoSource>) -> R) -> R {
    // The objects of class 0 (one quantum) of a slab: `OBJECTS` of them,
    // the slab aligned to its size.
    let mut a = Arena::new("r36", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(4096)).unwrap();
    let s = UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap();
    let mut taken = Vec::new();
    {
        let mut h = CacheHandle::new(&s);
        while let Ok(x) = h.alloc(Size(Q)) {
            taken.push(x);
        }
        // Keep one object of each slab live, free the rest.
        let st = s.qcache_stats();
        assert!(st.slabs > 0, "{st:?}");
        let mut kept = std::collections::BTreeSet::new();
        for &x in &taken {
            let slab = x.0 & !(Q * OBJECTS - 1);
            if kept.insert(slab) {
                continue;
            }
            h.free(x, Size(Q)).unwrap();
        }
    }
    s.reclaim();
    let st = s.qcache_stats();
    assert!(st.objects_in_slabs > 0, "no free object of the class in a slab: {st:?}");
    f(&s)
}

/// src/sync/percpu.rs (the type, as fixed after this round): an unplaced
/// call "goes to the arena instead (an allocation the arena has no space
/// for takes an object from the depot or the slabs, the rest of its
/// magazine given back ...)". The arena is full: the unplaced call takes
/// a slab's object, the objects left stay in the slabs (none is lost to
/// a magazine no slot holds), and a placed call of the same size is
/// served from the slabs too.
#[test]
fn an_unplaced_call_on_a_full_arena_takes_a_slab_object() {
    with_slab_objects_free(|s| {
        let before = s.qcache_stats().objects_in_slabs;
        let cpu = CpuCaches::new(s, one_slot_or_unplaced(), store()).unwrap();
        set_slot(None);
        let r = cpu.alloc(Size(Q));
        set_slot(Some(0));
        let x = r.expect("an unplaced call takes a slab's object");
        let st = s.qcache_stats();
        assert_eq!(st.objects_in_slabs, before - 1, "{st:?}");
        assert_eq!(st.depot_magazines, 0, "{st:?}");
        let placed = cpu.alloc(Size(Q)).expect("a placed call takes a slab's object");
        assert_ne!(placed, x);
        cpu.free(placed, Size(Q)).unwrap();
        set_slot(None);
        let freed = cpu.free(x, Size(Q));
        set_slot(Some(0));
        freed.unwrap();
        s.check().unwrap();
    });
}

/// src/sync/percpu.rs:189-191: a waiting allocation "waiting for space as
/// `wait` allows when neither the caches nor the arena have any" retries
/// "the depot, the slabs and the arena". Here the slabs hold free objects
/// of the class the whole time: the wait (bounded at 200 ms, only so the
/// test ends) should end with one of them, not `NoSpace`.
#[test]
fn an_unplaced_waiter_is_served_by_free_objects_in_its_slabs() {
    with_slab_objects_free(|s| {
        let cpu = CpuCaches::new(s, one_slot_or_unplaced(), store()).unwrap();
        set_slot(None);
        let r = cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::from_millis(200)));
        set_slot(Some(0));
        let objects = s.qcache_stats().objects_in_slabs;
        assert!(
            r.is_ok(),
            "a waiting allocation of a cached size timed out ({r:?}) with {objects} free \
             objects of its class in its slabs"
        );
        cpu.free(r.unwrap(), Size(Q)).unwrap();
    });
}
