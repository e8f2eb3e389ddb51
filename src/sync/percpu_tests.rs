//! [`CpuCaches`] with test pins: hits and counters, checked frees, a
//! magazine installed on another CPU or refused there, and threads sharing
//! one set of caches.

extern crate std;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::vec;
use std::vec::Vec;

use super::tests::{buffers, reclaim_all, shared};
use super::CpuCaches;
use crate::arena::{ArenaError, SliceStore};
use crate::qcache::pin::tests::TestPin;
use crate::qcache::{CpuPin, SlotFlag, OBJECTS, ROUNDS};
use vmspace_shim::{Addr, Size};

/// A pin that goes where the test says: the slots in `plan`, in order,
/// then `default`. Single-threaded tests only.
struct ScriptPin {
    flags: [SlotFlag; 2],
    plan: Mutex<VecDeque<usize>>,
    default: Mutex<usize>,
}

impl ScriptPin {
    fn new() -> Self {
        ScriptPin {
            flags: [SlotFlag::new(), SlotFlag::new()],
            plan: Mutex::new(VecDeque::new()),
            default: Mutex::new(0),
        }
    }
    fn then(&self, slots: &[usize]) {
        self.plan.lock().unwrap().extend(slots);
    }
    fn stay(&self, slot: usize) {
        *self.default.lock().unwrap() = slot;
    }
}

// SAFETY: two slots; `pin` takes the chosen slot's flag (exclusive until
// released, acquire/release ordered) and panics rather than share it.
unsafe impl CpuPin for ScriptPin {
    fn slots(&self) -> usize {
        2
    }
    fn pin(&self) -> usize {
        let next = self.plan.lock().unwrap().pop_front();
        let slot = next.unwrap_or(*self.default.lock().unwrap());
        assert!(self.flags[slot].try_take(), "slot {slot} pinned twice");
        slot
    }
    unsafe fn unpin(&self, slot: usize) {
        // SAFETY: the caller pinned `slot` (this method's contract).
        unsafe { self.flags[slot].release() }
    }
}

#[test]
fn hits_are_counted_per_slot_and_reclaim_returns_everything() {
    let mut b = buffers();
    let mut mags = vec![0u8; 1 << 14];
    let s = shared(&mut b, 1 << 20, 4);
    let caches = CpuCaches::new(&s, TestPin::new(2), SliceStore::new(&mut mags)).unwrap();
    let mut live: Vec<Addr> = (0..100).map(|_| caches.alloc(Size(48)).unwrap()).collect();
    let mut sorted = live.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 100, "no object handed out twice");
    for a in live.drain(..) {
        caches.free(a, Size(48)).unwrap();
    }
    for _ in 0..10 {
        let a = caches.alloc(Size(48)).unwrap();
        caches.free(a, Size(48)).unwrap();
    }
    s.check().unwrap();
    drop(caches);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, 110, "{st:?}");
    assert!(st.hits >= 100, "{st:?}");
    assert_eq!(st.slabs, 2, "100 objects need two slabs of {OBJECTS}");
    assert_eq!(reclaim_all(&s), 2);
}

#[test]
fn bad_frees_are_refused_and_large_sizes_go_to_the_arena() {
    let mut b = buffers();
    let mut mags = vec![0u8; 1 << 14];
    let s = shared(&mut b, 1 << 20, 2);
    let caches = CpuCaches::new(&s, TestPin::new(3), SliceStore::new(&mut mags)).unwrap();
    let a = caches.alloc(Size(16)).unwrap();
    let other = caches.alloc(Size(16)).unwrap();
    caches.free(a, Size(16)).unwrap();
    assert!(matches!(caches.free(a, Size(16)), Err(ArenaError::BadFree { .. })), "double free");
    let interior = Addr(other.0 + 8);
    assert!(matches!(caches.free(interior, Size(16)), Err(ArenaError::BadFree { .. })));
    assert!(caches.free(other, Size(32)).is_err(), "wrong class");
    assert!(caches.free(Addr(12345 << 4), Size(16)).is_err(), "never allocated");
    let big = caches.alloc(Size(4096)).unwrap();
    assert_eq!(s.with(|ar| ar.lookup(big)).map(|(r, _)| r.size()), Some(Size(4096)));
    caches.free(big, Size(4096)).unwrap();
    caches.free(other, Size(16)).unwrap();
    drop(caches);
    reclaim_all(&s);
}

#[test]
fn a_refilled_magazine_goes_to_the_slot_pinned_after_the_miss() {
    let mut b = buffers();
    let mut mags = vec![0u8; 1 << 14];
    let s = shared(&mut b, 1 << 20, 1);
    let pin = ScriptPin::new();
    let caches = CpuCaches::new(&s, pin, SliceStore::new(&mut mags)).unwrap();
    // Three refills on slot 0 (1 + 14 hits each) leave its magazines empty.
    let mut live: Vec<Addr> = (0..3 * ROUNDS).map(|_| caches.alloc(Size(16)).unwrap()).collect();
    assert_eq!(s.qcache_stats().misses, 3);
    assert_eq!(s.qcache_stats().objects_in_slabs, OBJECTS - 3 * ROUNDS);
    // Slot 1 gets both magazines full.
    caches.pin().stay(1);
    for a in live.drain(..2 * ROUNDS) {
        caches.free(a, Size(16)).unwrap();
    }
    // A miss on slot 0 whose magazine finds slot 1 full: back to the slabs.
    caches.pin().then(&[0, 1]);
    live.push(caches.alloc(Size(16)).unwrap());
    let st = s.qcache_stats();
    assert_eq!((st.misses, st.depot_magazines), (4, 0), "{st:?}");
    assert_eq!(st.objects_in_slabs, OBJECTS - 3 * ROUNDS - 1, "14 came back: {st:?}");
    s.check().unwrap();
    // A miss on slot 0 whose magazine finds slot 1 with room: installed.
    caches.pin().then(&[1]);
    caches.free(live.pop().unwrap(), Size(16)).unwrap(); // pushes out a full one
    assert_eq!(s.qcache_stats().depot_magazines, 1);
    caches.pin().then(&[1]);
    live.push(caches.alloc(Size(16)).unwrap()); // a hit: slot 1's loaded is empty now
    caches.pin().then(&[0, 1]);
    live.push(caches.alloc(Size(16)).unwrap()); // from the depot, 14 left
    assert_eq!(s.qcache_stats().depot_magazines, 0);
    caches.pin().stay(1);
    for _ in 0..ROUNDS - 1 + ROUNDS {
        live.push(caches.alloc(Size(16)).unwrap());
    }
    assert_eq!(s.qcache_stats().misses, 5, "slot 1 served 14 + 15 without missing");
    let mut sorted = live.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), live.len(), "no object handed out twice");
    caches.pin().stay(0);
    for a in live {
        caches.free(a, Size(16)).unwrap();
    }
    drop(caches);
    assert_eq!(reclaim_all(&s), 1);
}

#[test]
fn threads_share_one_set_of_caches() {
    let mut b = buffers();
    let mut mags = vec![0u8; 1 << 14];
    let s = shared(&mut b, 1 << 22, 8);
    let caches = CpuCaches::new(&s, TestPin::new(2), SliceStore::new(&mut mags)).unwrap();
    let everything = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (caches, everything) = (&caches, &everything);
            scope.spawn(move || {
                // xorshift64: a seeded stream without the workload crate.
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (77 + t);
                let mut next = move |n: u64| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % n) as usize
                };
                let mut live = Vec::new();
                for _ in 0..20_000 {
                    if !live.is_empty() && next(1000) < 480 {
                        let (a, size) = live.swap_remove(next(live.len() as u64));
                        caches.free(a, size).unwrap();
                    } else {
                        let size = Size(16 * (1 + next(9)));
                        live.push((caches.alloc(size).unwrap(), size));
                    }
                }
                everything.lock().unwrap().extend(live);
            });
        }
    });
    s.check().unwrap();
    let mut all = everything.into_inner().unwrap();
    all.sort();
    for w in all.windows(2) {
        assert!(w[0].0 .0 + w[0].1 .0 <= w[1].0 .0, "live objects overlap: {w:?}");
    }
    for (a, size) in all {
        caches.free(a, size).unwrap();
    }
    drop(caches);
    let st = s.qcache_stats();
    assert!(st.hits > 10 * st.misses, "{st:?}");
    reclaim_all(&s);
}

#[test]
fn without_caches_or_slots() {
    let mut b = buffers();
    let mut mags = vec![0u8; 1 << 12];
    let s = shared(&mut b, 1 << 20, 0);
    assert_eq!(s.qcache_max(), Size(0));
    let caches = CpuCaches::new(&s, TestPin::new(1), SliceStore::new(&mut mags)).unwrap();
    let x = caches.alloc(Size(16)).unwrap();
    caches.free(x, Size(16)).unwrap();
    assert!(caches.free(x, Size(16)).is_err());
    drop(caches);
    let (mut small, mut b) = ([0u8; 512], buffers());
    let s = shared(&mut b, 1 << 20, 8);
    let e = CpuCaches::new(&s, TestPin::new(4), SliceStore::new(&mut small));
    assert!(e.is_err(), "4 slots of 8 classes do not fit in 512 bytes");
}

/// A line-aligned buffer of `len` bytes starting `offset` bytes (a
/// multiple of STORE_ALIGN) past a line: the slice from `offset`.
fn at_offset(buf: &mut Vec<u64>, offset: usize, len: usize) -> &mut [u8] {
    buf.clear();
    buf.resize((offset + len) / 8 + 16, 0);
    let skip = (buf.as_ptr() as usize).wrapping_neg() % 64;
    // SAFETY: the bytes of the vector's initialized u64s, viewed as bytes
    // (any u64 is valid bytes); the slice ends inside them.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) };
    &mut bytes[skip + offset..skip + offset + len]
}

#[test]
fn the_documented_store_sizes_suffice_at_every_alignment_and_no_less_does_at_the_worst() {
    use super::tests::Shared;
    use crate::qcache::{magazine_store_bytes, table_store_bytes, QCacheConfig, MAX_CLASSES};
    let mut words = Vec::new();
    for classes in [1, 3, MAX_CLASSES] {
        let need = table_store_bytes(classes);
        assert_eq!(table_store_bytes(classes + 100), table_store_bytes(MAX_CLASSES));
        for offset in (0..64).step_by(crate::arena::STORE_ALIGN) {
            let mut b = buffers();
            let a = shared(&mut b, 1 << 20, 0).into_inner().unwrap();
            let ok =
                QCacheConfig::new(classes, SliceStore::new(at_offset(&mut words, offset, need)));
            assert!(Shared::with_quantum_caches(a, ok).is_ok(), "{classes} classes at +{offset}");
            let a = shared(&mut b, 1 << 20, 0).into_inner().unwrap();
            let short = SliceStore::new(at_offset(&mut words, offset, need - 1));
            let short = Shared::with_quantum_caches(a, QCacheConfig::new(classes, short));
            assert!(short.is_err(), "{classes} classes at +{offset} in a byte less");
        }
        for slots in [1, 2, 5] {
            let need = magazine_store_bytes(classes, slots).unwrap();
            // The worst alignment (a word past a line) needs every byte.
            let tries = (0..64).step_by(crate::arena::STORE_ALIGN).map(|o| (o, need));
            for (offset, len) in tries.chain([(8, need - 1)]) {
                let mut w = Vec::new();
                let mut b = buffers();
                let s = shared(&mut b, 1 << 20, classes);
                let store = SliceStore::new(at_offset(&mut w, offset, len));
                let caches = CpuCaches::new(&s, TestPin::new(slots), store);
                let ok = len == need;
                assert_eq!(
                    caches.is_ok(),
                    ok,
                    "{classes} classes, {slots} slots, {len} at +{offset}"
                );
            }
        }
    }
    assert_eq!(magazine_store_bytes(usize::MAX, 2), None);
}
