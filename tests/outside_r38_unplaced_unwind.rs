//! Outside review, round 38: an unplaced per-CPU allocation whose source
//! panics at its import (it makes one: the arena's first try), and objects
//! of another arena freed through the caches.
//!
//! Contracts (quoted):
//! - src/qcache/mod.rs:50-54 (`misses`): "Allocations that found both
//!   magazines empty and were not served from a magazine in the end
//!   (served by the depot, a slab or the arena, or failed, or unwound), and
//!   per-CPU allocations whose caller the pin could not place on a slot".
//! - src/sync/arena.rs (`SyncArena::free`): "A bad free is an error and
//!   changes nothing."
//!
//! After each unwinding call: one miss more, `check()` clean, nothing
//! waits, and the next call (source disarmed) works (no lock left held).

mod pins;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use pins::{by_thread, reclaim_and_check_empty, set_slot, Placed};
use vmspace::arena::{Arena, ArenaError, SliceStore, Source};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CpuCaches, NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Range, Size};

const Q: usize = 16;

/// Hands out fresh ranges going up; when armed (`PANIC_AT` = n > 0), the
/// next n - 1 imports fail (`NoSpace`) and the n-th panics.
struct Panicky {
    next: usize,
}

static PANIC_AT: AtomicUsize = AtomicUsize::new(0);

impl Source for Panicky {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        match PANIC_AT.load(Ordering::SeqCst) {
            0 => {}
            1 => {
                PANIC_AT.store(0, Ordering::SeqCst);
                panic!("source panics on purpose");
            }
            n => {
                PANIC_AT.store(n - 1, Ordering::SeqCst);
                return Err(ArenaError::NoSpace { size: size.0 });
            }
        }
        let r = Range::from_size(Addr(self.next), size)?;
        self.next += size.0.next_multiple_of(1 << 16);
        Ok(r)
    }
    fn release(&mut self, _range: Range) -> Result<(), ArenaError> {
        Ok(())
    }
}

/// An unplaced allocation of a class with nothing cached imports once:
/// its first try in the arena (no slab is made for it, and with nothing
/// reclaimed no last try is made: src/sync/percpu.rs, `alloc_unplaced`,
/// as fixed after this round; it imported three times). The source armed
/// to panic at its n-th import: at the first, the call unwinds; armed for
/// a later one, the call fails (`NoSpace`) having imported once. Either
/// way one miss, the arena consistent and usable.
#[test]
fn an_unplaced_allocation_unwinding_at_each_import_counts_one_miss() {
    for at in 1..=3 {
        let (mut t, mut h, mut qc, mut mg) =
            (vec![0u8; 1 << 16], vec![0u8; 1 << 16], vec![0u8; 1 << 16], vec![0u8; 1 << 14]);
        let a = Arena::new(
            "r38-unwind",
            Size(Q),
            SliceStore::new(&mut t),
            SliceStore::new(&mut h),
            Panicky { next: 1 << 30 },
        )
        .unwrap();
        let s: SyncArena<SpinLock, NoWait, _, _> =
            SyncArena::with_quantum_caches(a, QCacheConfig::new(4, SliceStore::new(&mut qc)))
                .unwrap();
        let cpu =
            CpuCaches::new(&s, Placed::<2>::new(by_thread), SliceStore::new(&mut mg)).unwrap();
        set_slot(None);
        let before = s.qcache_stats();
        PANIC_AT.store(at, Ordering::SeqCst);
        let r = catch_unwind(AssertUnwindSafe(|| cpu.alloc(Size(Q))));
        let unwound = r.is_err();
        let after = s.qcache_stats();
        s.check().unwrap();
        assert_eq!(s.waiting(), 0);
        let left = PANIC_AT.swap(0, Ordering::SeqCst);
        assert_eq!(after.misses, before.misses + 1, "import {at}: {r:?} {after:?}");
        if at == 1 {
            assert!(unwound, "import 1 panicked: {r:?}");
        } else {
            assert!(matches!(r, Ok(Err(ArenaError::NoSpace { .. }))), "armed at {at}: {r:?}");
            assert_eq!(left, at - 1, "armed at {at}: one import made");
        }
        // Usable: the next unplaced call is served, and freed.
        let x = cpu.alloc(Size(Q)).unwrap();
        cpu.free(x, Size(Q)).unwrap();
        s.check().unwrap();
        // An object from another arena's range, and a double free: errors,
        // nothing changed.
        let st = s.qcache_stats();
        assert!(cpu.free(Addr(1 << 20), Size(Q)).is_err());
        assert!(cpu.free(x, Size(Q)).is_err());
        let st2 = s.qcache_stats();
        assert_eq!((st2.objects_in_slabs, st2.slabs), (st.objects_in_slabs, st.slabs));
        s.check().unwrap();
        drop(cpu);
        reclaim_and_check_empty(&s);
    }
}
