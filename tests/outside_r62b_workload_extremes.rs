//! Round 62b (outside reviewer): the workload generators at their extreme
//! configurations. CHANGELOG.md "### Fixed" (Unreleased): "`Rng::between(0,
//! usize::MAX)`, `VmCall::decode` and the arena-op generators panicked on
//! the largest values and a zero quantum" (fixed); workload/src/arena_ops/
//! mod.rs:183-187: `sane()` makes "no address or size an operation computes
//! overflow[s] (the fields are public: any values may come in)".

use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace_workload::arena_ops::{ArenaOp, ArenaOpConfig, ArenaOpGen};
use vmspace_workload::vm_calls::VmCall;
use vmspace_workload::Rng;

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

#[test]
fn between_covers_the_whole_range_without_panicking() {
    let mut r = Rng::new(3);
    let mut high = false;
    for _ in 0..10_000 {
        let x = r.between(0, usize::MAX);
        high |= x > usize::MAX / 2;
    }
    assert!(high, "[0, usize::MAX] yields values in the top half");
    assert_eq!(r.between(usize::MAX, usize::MAX), usize::MAX);
    assert_eq!(r.between(5, 0), 5, "lo when hi <= lo");
    for _ in 0..1000 {
        assert!(r.between(1, usize::MAX) >= 1);
        assert!(r.between(usize::MAX - 1, usize::MAX) >= usize::MAX - 1);
    }
}

#[test]
fn vm_call_decode_at_the_largest_and_smallest_page_counts() {
    for pages in [0usize, 1, usize::MAX - 4, usize::MAX - 1, usize::MAX] {
        let b = bytes(pages as u64, 4 * 4096);
        let mut s: &[u8] = &b;
        let mut n = 0;
        while let Some(_c) = VmCall::decode(&mut s, pages) {
            n += 1;
        }
        assert_eq!(n, 4096);
    }
    // Fewer than four bytes: None, the bytes left alone.
    let mut s: &[u8] = &[1, 2, 3];
    assert_eq!(VmCall::decode(&mut s, 10), None);
    assert_eq!(s.len(), 3);
}

fn extreme_configs() -> Vec<(&'static str, ArenaOpConfig)> {
    let mut out = vec![
        ("zero quantum", ArenaOpConfig::new(4096, 1 << 20, 0)),
        ("largest quantum", ArenaOpConfig::new(0, usize::MAX, usize::MAX)),
        ("window past the top", ArenaOpConfig::new(usize::MAX - 4095, usize::MAX, 4096)),
        ("empty window", ArenaOpConfig::new(usize::MAX, 0, 1)),
        ("zero everything", ArenaOpConfig::new(0, 0, 0)),
    ];
    let mut c = ArenaOpConfig::new(0, usize::MAX, 1);
    c.max_quanta = usize::MAX;
    out.push(("max_quanta usize::MAX, quantum 1", c));
    let mut c = ArenaOpConfig::new(0, usize::MAX, usize::MAX);
    c.max_quanta = 0;
    c.deferred = u32::MAX;
    out.push(("max_quanta 0, deferred u32::MAX", c));
    out
}

/// The configurations above only: no field at its largest that `sane()`
/// does not clamp. Holds the changelog's fix.
#[test]
fn arena_op_generators_survive_extreme_windows_and_quanta() {
    for (name, cfg) in extreme_configs() {
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut g = ArenaOpGen::new(11, cfg);
            for i in 0..20_000 {
                let _ = g.next_op(i % 7, 4);
            }
            let b = bytes(5, 12 * 5000);
            let mut s: &[u8] = &b;
            while ArenaOp::decode(&mut s, &cfg).is_some() {}
        }));
        assert!(r.is_ok(), "{name}: a generator panicked");
    }
}

/// Was a DEFECT (fixed: `sane()` clamps `max_quanta` to 1 ..= half the
/// address space in quanta). workload/src/arena_ops/mod.rs:183-187 says the
/// operations' configuration is made sane "so that no address or size an
/// operation computes overflows (the fields are public: any values may come
/// in)", and CHANGELOG.md (Unreleased, Fixed) says the arena-op generators
/// no longer panic "on the largest values". `sane()` clamps `quantum` and
/// `extent` but not `max_quanta`: with `max_quanta = usize::MAX` and a
/// quantum above 1, `r.between(9, max_quanta) * q` (next_op's large
/// allocations) and `r.between(1, max_quanta) * q` (random_constraints)
/// overflow, a panic in a debug build. Fix: clamp `max_quanta` in `sane()`
/// to `quanta()` (or `usize::MAX / quantum`), or saturate the products.
#[test]
fn arena_op_generators_survive_the_largest_max_quanta() {
    let mut cfg = ArenaOpConfig::new(0, 1 << 40, 4096);
    cfg.max_quanta = usize::MAX;
    let gen = catch_unwind(AssertUnwindSafe(|| {
        let mut g = ArenaOpGen::new(1, cfg);
        for _ in 0..20_000 {
            let _ = g.next_op(0, 1024);
        }
    }));
    let dec = catch_unwind(AssertUnwindSafe(|| {
        let b = bytes(9, 12 * 20_000);
        let mut s: &[u8] = &b;
        while ArenaOp::decode(&mut s, &cfg).is_some() {}
    }));
    assert!(
        gen.is_ok() && dec.is_ok(),
        "max_quanta = usize::MAX: next_op panicked: {}, decode panicked: {}",
        gen.is_err(),
        dec.is_err()
    );
}

/// Was a DEFECT (fixed: the small draws are capped at `max_quanta`, and the
/// large ones are `max_quanta` itself below 9). workload/src/arena_ops/mod.rs:148 says
/// `max_quanta` is "The largest ordinary allocation size, in quanta".
/// `decode` honours it (`a % max_quanta + 1` quanta), but `next_op` draws
/// nine in ten sizes from `r.between(1, 8)` quanta whatever `max_quanta`
/// is, and the rest from `r.between(9, max_quanta)`, which is 9 when
/// `max_quanta < 9` (`between` returns `lo` when `hi <= lo`): with
/// `max_quanta = 2` it asks for up to 9 quanta. Fix: draw
/// `r.between(1, 8.min(max_quanta))` and skip the large branch when
/// `max_quanta <= 8` (or document the field as the large branch's bound).
#[test]
fn generated_allocations_stay_within_max_quanta() {
    let q = 64;
    let mut cfg = ArenaOpConfig::new(1 << 20, 1 << 20, q);
    cfg.max_quanta = 2;
    let b = bytes(3, 12 * 5000);
    let mut s: &[u8] = &b;
    while let Some(op) = ArenaOp::decode(&mut s, &cfg) {
        if let ArenaOp::Alloc { size, .. } = op {
            assert!(size <= 2 * q, "decode: {size}");
        }
    }
    let mut g = ArenaOpGen::new(4, cfg);
    let mut largest = 0;
    for _ in 0..20_000 {
        if let ArenaOp::Alloc { size, .. } = g.next_op(0, 1024) {
            largest = largest.max(size);
        }
    }
    assert!(
        largest <= 2 * q,
        "next_op asked for {largest} bytes ({} quanta) with max_quanta 2",
        largest.div_ceil(q)
    );
}

/// Round 62b's observation: `VmArenaOp::decode` (`tracts + 2`) and
/// `ChunkOp::decode` (`window + 2`) overflowed at `usize::MAX`. Was a
/// DEFECT (fixed: saturating).
#[test]
fn vmarena_and_chunkmap_decoders_take_the_largest_counts() {
    use vmspace_workload::chunkmap_ops::ChunkOp;
    use vmspace_workload::vmarena_ops::VmArenaOp;
    let b = bytes(17, 4 * 4096);
    for n in [usize::MAX, usize::MAX - 1, usize::MAX - 2] {
        let mut s: &[u8] = &b;
        let mut k = 0;
        while VmArenaOp::decode(&mut s, n).is_some() {
            k += 1;
        }
        assert!(k > 0);
        let mut s: &[u8] = &b;
        k = 0;
        while ChunkOp::decode(&mut s, n, vmspace::Size(1 << 20)).is_some() {
            k += 1;
        }
        assert!(k > 0);
    }
}
