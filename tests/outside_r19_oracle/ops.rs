//! Operations as raw numbers, read against the state, and their strategy.

use super::*;

/// One operation, as raw numbers interpreted against the state.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    X {
        size: u16,
        align: u8,
        phase: u8,
        nocross: u8,
        min: Option<u16>,
        max: Option<u16>,
        exact: Option<u16>,
        policy: u8,
        top: bool,
        handle: bool,
    },
    Free {
        idx: u16,
        wrong: u8,
    },
    Part {
        idx: u16,
        off: u16,
        len: u16,
    },
    Resize {
        idx: u16,
        new: u16,
    },
    Defer {
        idx: u16,
    },
    Flush,
    Stale {
        idx: u16,
        forge: Option<u16>,
    },
    Extend {
        span: u8,
        up: bool,
        len: u16,
    },
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (
            (1u16..400, 0u8..64, any::<u8>(), 0u8..64),
            (proptest::option::weighted(0.3, 0u16..4400), proptest::option::weighted(0.3, 0u16..4400), proptest::option::weighted(0.1, 0u16..4400)),
            (0u8..4, any::<bool>(), proptest::bool::weighted(0.3)),
        )
            .prop_map(|((size, align, phase, nocross), (min, max, exact), (policy, top, handle))| Op::X {
                size, align, phase, nocross, min, max, exact, policy, top, handle
            }),
        3 => (any::<u16>(), 0u8..6).prop_map(|(idx, wrong)| Op::Free { idx, wrong }),
        1 => (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(idx, off, len)| Op::Part { idx, off, len }),
        1 => (any::<u16>(), 1u16..600).prop_map(|(idx, new)| Op::Resize { idx, new }),
        1 => any::<u16>().prop_map(|idx| Op::Defer { idx }),
        1 => Just(Op::Flush),
        1 => (any::<u16>(), proptest::option::of(0u16..200)).prop_map(|(idx, forge)| Op::Stale { idx, forge }),
        1 => (any::<u8>(), any::<bool>(), 1u16..300).prop_map(|(span, up, len)| Op::Extend { span, up, len }),
    ]
}

thread_local! {
    /// Every raw address, size and alignment is multiplied by this (a power
    /// of two): the same shapes with quanta up to 2^27.
    pub(crate) static SCALE: std::cell::Cell<usize> = const { std::cell::Cell::new(1) };
}

pub(crate) fn sc() -> usize {
    SCALE.with(|s| s.get())
}

/// Make `raw` valid constraints for quantum `q` (or `None` if nocross cannot
/// hold the size).
pub(crate) fn make_c(q: usize, base: usize, raw: &Op) -> Option<C> {
    let Op::X { size, align, phase, nocross, min, max, exact, policy, top, .. } = *raw else {
        unreachable!()
    };
    let size = size as usize * sc() - (size as usize % 2) * (sc() / 2);
    let high = base != 0;
    let align = match align {
        0 => 0,
        a if high && a >= 32 => 1usize << (a - 1),
        a => (1usize << ((a - 1) % 11)) * sc(),
    };
    let al = align.max(q);
    // Phases near the arena's addresses (which may be near 2^64).
    let phase = (base.wrapping_add(phase as usize * 37 * q) % al) / q * q;
    let r = up(size, q);
    let nocross = if nocross == 0 {
        0
    } else {
        let e = if high && nocross >= 32 { nocross as u32 } else { (nocross as u32 % 13).max(1) };
        let mut n = ((1usize << e) * if high { 1 } else { sc() }).max(q);
        while phase % n + r > n {
            n *= 2;
        }
        n
    };
    let exact = exact.and_then(|e| {
        let e = base.checked_add(e as usize * sc())?;
        // A legal exact address for align/phase.
        ((e / al) * al).checked_add(phase)?.checked_add(r).map(|_| (e / al) * al + phase)
    });
    let exact = exact.filter(|&e| nocross == 0 || e / nocross == (e + r - 1) / nocross);
    let policy = Policy::ALL[policy as usize % 4];
    Some(C {
        size,
        align,
        phase,
        nocross,
        min: min.map(|m| base.saturating_add(m as usize * sc())),
        max: max.map(|m| base.saturating_add(m as usize * sc())),
        exact,
        policy,
        top,
    })
}

/// Whether any address at all (in a universe far larger than the arena)
/// meets the constraints.
pub(crate) fn abstractly_possible(c: &C, q: usize) -> bool {
    (0..(1usize << 15) * sc()).step_by(q).any(|t| c.ok_at(t, q))
}
