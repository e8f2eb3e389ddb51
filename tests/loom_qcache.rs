//! Loom models of the quantum caches' lock-free protocols, on the real
//! code compiled against loom's atomics (`make loom`):
//!
//! - claim and unclaim: two frees of one cached object racing, one through
//!   a thread's `CacheHandle`, one through `SyncArena::free` (or both
//!   through handles): exactly one succeeds, whatever the interleaving;
//! - the magazine exchange with the depot: two threads whose handles fill,
//!   empty and flush magazines through the depot and the slabs lose and
//!   duplicate nothing;
//! - the per-CPU pinning handoff: two threads sharing one slot of
//!   `CpuCaches` through its `SlotFlag` hand the slot's magazines over
//!   without losing or duplicating an object.
//!
//! Each model ends with `check()` and, after everything is freed and the
//! caches reclaimed, an arena with nothing allocated.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;

use vmspace::arena::{Arena, NoSource, SliceStore};
use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag, ROUNDS};
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Size};

type Shared = SyncArena<SpinLock, NoWait, SliceStore<'static>, NoSource>;

/// Buffers leaked for one model execution (loom threads need `'static`
/// borrows) and taken back when it ends.
struct Leaked(Vec<*mut [u8]>);

impl Leaked {
    fn new() -> Self {
        Leaked(Vec::new())
    }

    fn buffer(&mut self, len: usize) -> &'static mut [u8] {
        let b: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        self.0.push(b as *mut [u8]);
        // SAFETY: the box was just leaked; `Drop` frees it once, after
        // everything borrowing it is gone (the caller's order of drops).
        unsafe { &mut *(b as *mut [u8]) }
    }
}

impl Drop for Leaked {
    fn drop(&mut self) {
        for b in self.0.drain(..) {
            // SAFETY: leaked by `buffer`, and no borrow of it is left (the
            // arena built on it was dropped first).
            drop(unsafe { Box::from_raw(b) });
        }
    }
}

/// A shared arena of quantum 16 over 4 KiB, with quantum caches for one
/// class (16 units).
fn shared(mem: &mut Leaked) -> Shared {
    let tags = SliceStore::new(mem.buffer(8 << 10));
    let hash = SliceStore::new(mem.buffer(4 << 10));
    let mut a = Arena::new("loom", Size(16), tags, hash, NoSource).unwrap();
    a.add(Addr(1 << 20), Size(4 << 10)).unwrap();
    let qc = SliceStore::new(mem.buffer(256 << 10)); // loom atomics are larger
    SyncArena::with_quantum_caches(a, QCacheConfig::new(1, qc)).unwrap()
}

/// Everything freed and reclaimed: the arena holds nothing.
fn settled(s: &Shared) {
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "objects lost");
}

fn bounded() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    // Setup and check() read every slab record: many operations, few of
    // them racing.
    b.max_branches = 1_000_000;
    b
}

#[derive(Clone, Copy)]
enum Door {
    Handle,
    Arena,
}

fn free_through(s: &Shared, door: Door, a: Addr) -> bool {
    match door {
        Door::Handle => CacheHandle::new(s).free(a, Size(16)).is_ok(),
        Door::Arena => s.free(a, Size(16)).is_ok(),
    }
}

fn racing_frees(first: Door, second: Door) {
    bounded().check(move || {
        let mut mem = Leaked::new();
        let s = Arc::new(shared(&mut mem));
        // A cached object, live; its handle's magazine goes to the slabs.
        let obj = CacheHandle::new(&s).alloc(Size(16)).unwrap();
        let t = {
            let s = s.clone();
            thread::spawn(move || free_through(&s, first, obj))
        };
        let mine = free_through(&s, second, obj);
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "accepted {} times", u8::from(mine) + u8::from(theirs));
        settled(&s);
        drop(s);
        drop(mem);
    });
}

#[test]
fn racing_frees_through_two_handles_accept_one() {
    racing_frees(Door::Handle, Door::Handle);
}

#[test]
fn racing_frees_through_a_handle_and_the_arena_accept_one() {
    racing_frees(Door::Handle, Door::Arena);
}

#[test]
fn magazines_exchanged_through_the_depot_lose_and_duplicate_nothing() {
    bounded().check(|| {
        let mut mem = Leaked::new();
        let s = Arc::new(shared(&mut mem));
        // Each thread takes more than a magazine's worth, frees it all (a
        // full magazine goes to the depot), and flushes.
        let n = ROUNDS + 1;
        let work = move |s: &Shared| {
            let mut h = CacheHandle::new(s);
            let got: Vec<Addr> = (0..n).map(|_| h.alloc(Size(16)).unwrap()).collect();
            for &a in &got {
                h.free(a, Size(16)).unwrap();
            }
            got
        };
        let t = {
            let s = s.clone();
            thread::spawn(move || work(&s))
        };
        let mut all = work(&s);
        let theirs = t.join().unwrap();
        all.extend(theirs);
        // Each thread saw its own objects distinct; across threads objects
        // may be reused only after a free, which the check below covers.
        settled(&s);
        drop(s);
        drop(mem);
    });
}

/// One slot for every thread, behind a `SlotFlag`; a busy slot yields.
struct OneSlot(SlotFlag);

// SAFETY: one slot, handed out only while its flag is taken (acquire), and
// given back with a release store.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {
            thread::yield_now();
        }
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: the caller pinned slot 0 (this method's contract).
        unsafe { self.0.release() }
    }
}

#[test]
fn one_slot_handed_between_threads_keeps_each_object_once() {
    bounded().check(|| {
        let mut mem = Leaked::new();
        let s: &'static Shared = Box::leak(Box::new(shared(&mut mem)));
        let mags = SliceStore::new(mem.buffer(4 << 10));
        let cpu = Arc::new(CpuCaches::new(s, OneSlot(SlotFlag::new()), mags).unwrap());
        let work =
            |cpu: &CpuCaches<'static, SpinLock, NoWait, SliceStore<'static>, NoSource, OneSlot>| {
                let a = cpu.alloc(Size(16)).unwrap();
                let b = cpu.alloc(Size(16)).unwrap();
                assert_ne!(a, b);
                cpu.free(a, Size(16)).unwrap();
                (b, cpu.alloc(Size(16)).unwrap())
            };
        let t = {
            let cpu = cpu.clone();
            thread::spawn(move || work(&cpu))
        };
        let (b, c) = work(&cpu);
        let (d, e) = t.join().unwrap();
        let mut live = vec![b, c, d, e];
        live.sort();
        live.dedup();
        assert_eq!(live.len(), 4, "an object live twice");
        for a in live {
            cpu.free(a, Size(16)).unwrap();
        }
        drop(cpu); // the last reference (the thread's went with it): flushes
        settled(s);
        // SAFETY: leaked above; the caches borrowing it are gone.
        drop(unsafe { Box::from_raw(s as *const Shared as *mut Shared) });
        drop(mem);
    });
}
