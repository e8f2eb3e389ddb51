//! Outside review r62c: `ArenaOpConfig::max_quanta` at its extremes bounds
//! every generated and decoded size (allocations, resizes, constrained
//! allocations) and overflows nothing.

use vmspace_workload::arena_ops::{ArenaOp, ArenaOpConfig, ArenaOpGen};

fn size_of(op: &ArenaOp) -> Option<usize> {
    match op {
        ArenaOp::Alloc { size, .. } | ArenaOp::Resize { size, .. } => Some(*size),
        ArenaOp::XAlloc { constraints, .. } => Some(constraints.size().0),
        _ => None,
    }
}

#[test]
fn sizes_stay_within_max_quanta() {
    for q in [1usize, 16, 4096, 1 << 27] {
        for max in [0usize, 1, 2, 8, 9, 10, 64, usize::MAX / 2, usize::MAX] {
            let mut cfg = ArenaOpConfig::new(1 << 20, 1 << 20, q);
            cfg.max_quanta = max;
            let bound = max.clamp(1, (usize::MAX >> 1) / q) * q;
            let mut g = ArenaOpGen::new(max as u64 ^ q as u64, cfg);
            let mut kinds = [0usize; 3];
            for i in 0..3000 {
                let op = g.next_op(i % 40, 1 << 20);
                match op {
                    ArenaOp::Alloc { .. } => kinds[0] += 1,
                    ArenaOp::Resize { .. } => kinds[1] += 1,
                    ArenaOp::XAlloc { .. } => kinds[2] += 1,
                    _ => {}
                }
                if let Some(s) = size_of(&op) {
                    assert!(s <= bound, "q {q} max {max}: {op:?}");
                }
            }
            assert!(kinds.iter().all(|&k| k > 0), "{kinds:?}");
            let bytes: Vec<u8> = (0..12 * 512).map(|i| (i * 37 + 11) as u8).collect();
            let mut b = &bytes[..];
            while let Some(op) = ArenaOp::decode(&mut b, &cfg) {
                if let Some(s) = size_of(&op) {
                    assert!(s <= bound, "decode q {q} max {max}: {op:?}");
                }
            }
        }
    }
}
