//! Round 58 (outside reviewer): `vmspace-workload`'s public generators and
//! decoders on the largest values their parameters take. They are the
//! harness of the fuzzers, benches and the `vmspace` demo, so a panic here
//! is low severity, but each is a public function of a workspace crate
//! whose docs put no bound on the argument. Each case is caught with
//! `catch_unwind` and the test lists every one that panicked.
//!
//! Was a DEFECT (fixed: checked `between`, saturating `VmCall::decode`, and
//! `ArenaOpConfig::sane` for the decoders and the generator). FAILED then:
//! * `Rng::between(0, usize::MAX)`: `hi - lo + 1` overflows (rng.rs,
//!   `between`). Fix: `match (hi - lo).checked_add(1) { Some(n) => lo +
//!   self.below(n), None => self.next_u64() as usize }`.
//! * `VmCall::decode(bytes, usize::MAX)`: `% (pages + 4)` overflows
//!   (vm_calls.rs, `decode`). Fix: `pages.saturating_add(4)`.
//! * `ArenaOp::decode` / `ArenaOpGen::next_op` with `quantum: 0`:
//!   `extent / quantum` divides by zero (arena_ops/mod.rs, `quanta`), and
//!   `% cfg.quanta()`-style remainders too; with `extent: usize::MAX`,
//!   `cfg.base + ...` / `cfg.extent + 1` overflow (`random_constraints`,
//!   `decode`). Fix: `quanta()` as `extent.checked_div(quantum)` (0 quantum
//!   refused or treated as 1) and saturating address arithmetic (the ops
//!   are meant to include bad ones; they should be representable, not
//!   panic). A window at the very top (base usize::MAX - 0xffff) PASSES.

use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace_workload::arena_ops::{ArenaOp, ArenaOpConfig, ArenaOpGen};
use vmspace_workload::vm_calls::VmCall;
use vmspace_workload::vm_ops::{PageSetModel, VmOpGen};
use vmspace_workload::{Churn, Rng};

fn probe(bad: &mut Vec<String>, what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        bad.push(format!("{what}: {msg}"));
    }
}

#[test]
fn workload_generators_take_extreme_arguments() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut bad = Vec::new();
    probe(&mut bad, "Rng::between(0, usize::MAX)", || {
        let mut r = Rng::new(1);
        for _ in 0..4 {
            r.between(0, usize::MAX);
        }
    });
    probe(&mut bad, "Rng::between(usize::MAX, usize::MAX)", || {
        assert_eq!(Rng::new(1).between(usize::MAX, usize::MAX), usize::MAX);
    });
    probe(&mut bad, "VmCall::decode(.., usize::MAX)", || {
        let data = [0xffu8; 64];
        let mut b = &data[..];
        while VmCall::decode(&mut b, usize::MAX).is_some() {}
    });
    probe(&mut bad, "VmOpGen::new(.., usize::MAX, usize::MAX).next_op", || {
        let mut g = VmOpGen::new(3, usize::MAX, usize::MAX);
        let m = PageSetModel::<4>::new(usize::MAX);
        for _ in 0..2000 {
            g.next_op();
            g.next_op_for(&m);
        }
    });
    probe(&mut bad, "VmOpGen::new(.., 0, 0).next_op", || {
        let mut g = VmOpGen::new(3, 0, 0);
        for _ in 0..2000 {
            g.next_op();
        }
    });
    probe(&mut bad, "Churn::new(usize::MAX).step", || {
        let mut c = Churn::new(usize::MAX);
        for _ in 0..100 {
            c.initial();
            c.step();
        }
    });
    for (name, cfg) in [
        ("quantum 0", ArenaOpConfig::new(0x1000, 0x1000, 0)),
        ("window at the top", ArenaOpConfig::new(usize::MAX - 0xffff, 0xffff, 1 << 12)),
        ("extent usize::MAX", ArenaOpConfig::new(0, usize::MAX, 1)),
    ] {
        probe(&mut bad, &format!("ArenaOp::decode ({name})"), || {
            let mut data = Vec::new();
            let mut r = Rng::new(9);
            for _ in 0..12 * 512 {
                data.push(r.next_u64() as u8);
            }
            let mut b = &data[..];
            while ArenaOp::decode(&mut b, &cfg).is_some() {}
        });
        probe(&mut bad, &format!("ArenaOpGen::next_op ({name})"), || {
            let mut g = ArenaOpGen::new(5, cfg);
            for i in 0..2000 {
                g.next_op(i % 7, 8);
            }
        });
    }
    let _ = std::panic::take_hook();
    assert!(bad.is_empty(), "panics:\n{}", bad.join("\n"));
}
