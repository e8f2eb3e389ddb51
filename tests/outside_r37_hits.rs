//! Outside review, round 37: when a slot's quantum-cache hits reach the
//! statistics, per slot and per size class, with two slots and an
//! unplaced caller (round 36's corrected docs).
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:40-43 (`CpuCaches`): "Each slot's hits are counted
//!   in its magazines' words, one a size class, and a class's are added to
//!   [`SyncArena::qcache_stats`] at the slot's next miss in that class and
//!   on [`flush`](Self::flush) (so they lag, class by class); misses are
//!   added at once; dropping flushes."
//! - src/sync/arena.rs:470-474 (`qcache_stats`): "a CPU's hits of a class
//!   at its next miss in that class (each class's hits are counted in that
//!   class's magazine word of the CPU)".
//!
//! Exact arithmetic, one thread, a scripted pin (`Placed<2>`).

mod pins;

use pins::{placed, set_slot, Setup, Slices};
use vmspace::Size;

const Q: usize = 16;

/// Slot 0 hits 3 times in class 0 and twice in class 1; slot 1 hits once
/// in class 0. Then: slot 1's miss in class 0 adds only slot 1's class-0
/// hit; an unplaced miss in class 0 adds none; slot 0's miss in class 1
/// adds only its 2 class-1 hits; slot 0's miss in class 0 adds its 3;
/// the flush adds what is left (none); every step's misses at once.
#[test]
fn hits_reach_the_statistics_per_slot_and_per_class() {
    let mut slices = Slices::new(Setup::new("r37-hits", Q, 1 << 20));
    let (s, mags) = slices.shared();
    let mut cpu = placed(&s, mags);
    let stats = |s: &pins::Shared<'_>| {
        let st = s.qcache_stats();
        (st.hits, st.misses)
    };
    let mut held = Vec::new();
    // Slot 0: one miss in each class (a magazine each), then hits.
    set_slot(Some(0));
    for size in [Q, 2 * Q] {
        let a = cpu.alloc(Size(size)).unwrap();
        cpu.free(a, Size(size)).unwrap();
    }
    // Slot 1: one miss in class 0, one hit.
    set_slot(Some(1));
    let a = cpu.alloc(Size(Q)).unwrap();
    cpu.free(a, Size(Q)).unwrap();
    held.push((cpu.alloc(Size(Q)).unwrap(), Q)); // hit (slot 1, class 0)
    set_slot(Some(0));
    for _ in 0..3 {
        held.push((cpu.alloc(Size(Q)).unwrap(), Q)); // hits (slot 0, class 0)
    }
    for _ in 0..2 {
        held.push((cpu.alloc(Size(2 * Q)).unwrap(), 2 * Q)); // hits (slot 0, class 1)
    }
    assert_eq!(stats(&s), (0, 3), "hits lag; the 3 misses are in");
    // Drain slot 1's class 0 so its next pop misses: 15 rounds, 1 hit
    // taken, 14 left, each a hit.
    set_slot(Some(1));
    for _ in 0..14 {
        held.push((cpu.alloc(Size(Q)).unwrap(), Q));
    }
    assert_eq!(stats(&s), (0, 3));
    held.push((cpu.alloc(Size(Q)).unwrap(), Q)); // slot 1's class-0 miss
    assert_eq!(stats(&s), (15, 4), "slot 1's 15 class-0 hits, not slot 0's");
    set_slot(None);
    held.push((cpu.alloc(Size(Q)).unwrap(), Q)); // unplaced: a miss, no slot's hits
    assert_eq!(stats(&s), (15, 5));
    set_slot(Some(0));
    for _ in 0..(15 - 2) {
        held.push((cpu.alloc(Size(2 * Q)).unwrap(), 2 * Q)); // slot 0 class-1 hits
    }
    held.push((cpu.alloc(Size(2 * Q)).unwrap(), 2 * Q)); // slot 0's class-1 miss
    assert_eq!(stats(&s), (15 + 15, 6), "slot 0's class-1 hits only");
    for _ in 0..(15 - 3) {
        held.push((cpu.alloc(Size(Q)).unwrap(), Q)); // slot 0 class-0 hits
    }
    held.push((cpu.alloc(Size(Q)).unwrap(), Q)); // slot 0's class-0 miss
    assert_eq!(stats(&s), (15 + 15 + 15, 7), "slot 0's class-0 hits");
    cpu.flush();
    assert_eq!(stats(&s), (15 + 15 + 15, 7), "nothing left to add");
    // Every allocation made counted once.
    assert_eq!(held.len() as u64 + 3, 15 + 15 + 15 + 7);
    for (a, size) in held {
        cpu.free(a, Size(size)).unwrap();
    }
    drop(cpu);
    s.check().unwrap();
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
