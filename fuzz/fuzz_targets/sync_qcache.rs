//! Fuzz the thread-safe arena with quantum caches, one thread at a time:
//! allocations and frees through every door (a `CacheHandle`, one-slot
//! `CpuCaches`, `SyncArena` itself), frees of an allocation through a door
//! other than the one that made it, and bad frees of every kind (a double
//! free, a wrong size in the same class, a slab's own range, an address
//! never handed out), and deferred frees and flushes, checked against a
//! list of live allocations: no address is handed out twice or before its
//! flush, every good free succeeds and every bad one fails (a deferred free
//! of a cached object is refused, as documented, and changes nothing), and
//! `check()` passes after every step. Everything freed, flushed and
//! reclaimed, the arena holds nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore};
use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag, OBJECTS};
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};

const QUANTUM: usize = 16;
const CLASSES: usize = 4;
const BASE: usize = 1 << 20;
const SPAN: usize = 256 << 10;

/// One slot behind a try-lock (the fuzzer runs one thread).
struct OneSlot(SlotFlag);

// SAFETY: one slot, handed out only while its flag is taken.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        assert!(self.0.try_take(), "one thread, one slot");
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: the caller pinned slot 0 (this method's contract).
        unsafe { self.0.release() }
    }
}

fuzz_target!(|data: &[u8]| {
    let (mut tags, mut hash) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let (mut qc, mut mags) = (vec![0u8; 64 << 10], vec![0u8; 4 << 10]);
    let mut arena = Arena::new(
        "fuzz",
        Size(QUANTUM),
        SliceStore::new(&mut tags),
        SliceStore::new(&mut hash),
        NoSource,
    )
    .unwrap();
    arena.add(Addr(BASE), Size(SPAN)).unwrap();
    let s: SyncArena<SpinLock, NoWait, _, _> =
        SyncArena::with_quantum_caches(arena, QCacheConfig::new(CLASSES, SliceStore::new(&mut qc)))
            .unwrap();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), SliceStore::new(&mut mags)).unwrap();
    let mut handle = CacheHandle::new(&s);
    let mut live: Vec<(Addr, usize)> = Vec::new();
    let mut freed: Vec<Addr> = Vec::new();
    let mut unflushed: Vec<(Addr, usize)> = Vec::new();

    let free = |door: u8, a: Addr, size: usize, h: &mut CacheHandle<'_, _, _, _, _>| match door % 3
    {
        0 => h.free(a, Size(size)),
        1 => cpu.free(a, Size(size)),
        _ => s.free(a, Size(size)),
    };
    for chunk in data.chunks_exact(3) {
        let (op, x, y) = (chunk[0], chunk[1], chunk[2]);
        let overlaps = |live: &[(Addr, usize)], a: Addr, n: usize| {
            live.iter().any(|&(b, m)| a.0 < b.0 + m && b.0 < a.0 + n)
        };
        match op % 10 {
            // Allocate through a door: mostly cached sizes, some larger.
            0..=2 => {
                let size = if y & 0x80 == 0 {
                    1 + usize::from(x) % (QUANTUM * CLASSES)
                } else {
                    1 + usize::from(x) * 8
                };
                let got = match op % 3 {
                    0 => handle.alloc(Size(size)),
                    1 => cpu.alloc(Size(size)),
                    _ => s.alloc(Size(size), Policy::InstantFit, Wait::No),
                };
                if let Ok(a) = got {
                    assert!(!overlaps(&live, a, size), "{a} ({size}) handed out while live");
                    assert!(!overlaps(&unflushed, a, size), "{a} ({size}) handed out unflushed");
                    freed.retain(|&f| f != a);
                    live.push((a, size));
                }
            }
            // Free a live allocation through any door: must succeed.
            3 if !live.is_empty() => {
                let (a, size) = live.swap_remove(usize::from(x) % live.len());
                free(y, a, size, &mut handle).unwrap_or_else(|e| panic!("free {a} ({size}): {e}"));
                freed.push(a);
            }
            // A double free of something freed and not handed out again.
            4 if !freed.is_empty() => {
                let a = freed[usize::from(x) % freed.len()];
                let size = 1 + usize::from(y) % (QUANTUM * CLASSES);
                assert!(free(y, a, size, &mut handle).is_err(), "double free of {a} accepted");
            }
            // A live allocation freed with another size (same class or not).
            5 if !live.is_empty() => {
                let (a, size) = live[usize::from(x) % live.len()];
                let wrong = if y % 2 == 0 {
                    size + 1 + usize::from(y) % 15
                } else {
                    size.saturating_sub(1 + usize::from(y) % 15)
                };
                if wrong != size {
                    assert!(
                        free(y, a, wrong, &mut handle).is_err(),
                        "{a} ({size}) freed as {wrong}"
                    );
                }
            }
            // The slab holding a live cached object, freed as a whole.
            6 if !live.is_empty() => {
                let (a, size) = live[usize::from(x) % live.len()];
                let class_size = size.div_ceil(QUANTUM) * QUANTUM;
                let slab_bytes = class_size * OBJECTS;
                let slab = Addr(a.0 & !(slab_bytes.next_power_of_two() - 1));
                let as_live = live.iter().any(|&(b, m)| b == slab && m == slab_bytes);
                if size <= QUANTUM * CLASSES && !as_live {
                    assert!(
                        free(y, slab, slab_bytes, &mut handle).is_err(),
                        "slab at {slab} freed"
                    );
                }
            }
            // An address never handed out (outside the span).
            7 => {
                let a = Addr(BASE + SPAN + usize::from(x) * QUANTUM);
                assert!(free(y, a, QUANTUM, &mut handle).is_err(), "stray free of {a}");
                if y & 1 == 0 {
                    s.reclaim();
                } else {
                    handle.flush();
                }
            }
            // A deferred free of a live allocation: taken unless it is a
            // slab's object (refused as not the arena's allocation).
            8 if !live.is_empty() => {
                let i = usize::from(x) % live.len();
                let (a, size) = live[i];
                match s.free_deferred(a, Size(size)) {
                    Ok(()) => unflushed.push(live.swap_remove(i)),
                    Err(e) => {
                        assert!(size <= QUANTUM * CLASSES, "{a} ({size}) not cached, refused: {e}");
                        assert!(matches!(e, ArenaError::BadFree { allocated: None, .. }), "{e:?}");
                    }
                }
            }
            // Everything freed deferred is flushed: all of it comes back.
            9 => {
                let want: usize = unflushed.iter().map(|&(_, n)| n.div_ceil(QUANTUM) * QUANTUM).sum();
                assert_eq!(s.flushed(), Size(want), "flushed() of {unflushed:?}");
                freed.extend(unflushed.drain(..).map(|(a, _)| a));
            }
            _ => {}
        }
        s.check().unwrap_or_else(|e| panic!("check: {e}"));
    }
    for (a, size) in live.drain(..) {
        free(0, a, size, &mut handle).unwrap();
    }
    s.flushed();
    drop(handle);
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "objects lost");
});
