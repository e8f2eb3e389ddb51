//! The benchmarks' churn workload as a trace: what `vmspace trace` writes
//! and the replay tests read.

use vmspace_workload::Churn;

/// The most live allocations a churn trace asks for.
pub const CHURN_MAX_LIVE: usize = 1 << 31;

/// Where a churn trace's span starts.
const CHURN_BASE: usize = 0x10_0000;

/// The span a churn trace of `live` allocations adds, in units: 2^31, or
/// for more than 2^23 live allocations the power of two that holds them
/// all at the largest size (255 units; 47 on average), so that no
/// allocation fails for want of room however they fall. `None` when that
/// span is not a `usize` (at most 2^63: from 1 MiB it fits). That holds for
/// a replay at a quantum up to 256 (255 rounds up to 256); `replay
/// --quantum Q` above that rounds every allocation up to `Q`, and `live`
/// of them need `live * Q`.
pub fn churn_span(live: usize) -> Option<usize> {
    Some(live.checked_mul(256)?.checked_next_power_of_two()?.max(1 << 31))
}

/// The benchmarks' churn workload (`vmspace_workload::Churn`) as a trace:
/// one span at 1 MiB ([`churn_span`] units), `live` allocations (at most
/// [`CHURN_MAX_LIVE`]), then `steps` steps of freeing one and allocating
/// another in its place. Fails, writing nothing, when `live` is out of range
/// or its table of live IDs (8 bytes each) cannot be allocated.
pub fn churn(live: usize, steps: usize, out: &mut dyn FnMut(&str)) -> Result<(), String> {
    if !(1..=CHURN_MAX_LIVE).contains(&live) {
        return Err(format!("live allocations must be 1 to {CHURN_MAX_LIVE}, not {live}"));
    }
    let span = churn_span(live).ok_or_else(|| {
        format!("{live} live allocations need a span larger than the address space")
    })?;
    let mut slot_ids = Vec::new();
    slot_ids
        .try_reserve_exact(live)
        .map_err(|_| format!("no memory for the IDs of {live} live allocations"))?;
    let mut c = Churn::new(live);
    out(&format!(
        "# churn: {} live allocations, {steps} steps (vmspace_workload::Churn)\nadd {CHURN_BASE:#x} {span:#x}\n",
        c.live()
    ));
    let mut buf = String::new();
    while let Some(size) = c.initial() {
        let id = slot_ids.len();
        buf.push_str(&format!("alloc s{id} {size}\n"));
        slot_ids.push(id);
        if buf.len() > 1 << 16 {
            out(&buf);
            buf.clear();
        }
    }
    for next in (slot_ids.len()..).take(steps) {
        let (slot, size) = c.step();
        buf.push_str(&format!("free s{}\nalloc s{next} {size}\n", slot_ids[slot]));
        slot_ids[slot] = next;
        if buf.len() > 1 << 16 {
            out(&buf);
            buf.clear();
        }
    }
    out(&buf);
    Ok(())
}

/// [`churn`] as one string.
pub fn churn_text(live: usize, steps: usize) -> Result<String, String> {
    let mut s = String::new();
    churn(live, steps, &mut |t| s.push_str(t))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{parse, TraceOp};

    /// The span is 2^31 units (the traces of every benchmark size, as
    /// before) until the live allocations at their largest size would not
    /// fit; then it holds them all (above about 45 million live the 2^31
    /// units ran out on average sizes, and the replay's allocations failed).
    #[test]
    fn the_churn_span_holds_every_live_allocation_at_its_largest() {
        assert_eq!(churn_span(1), Some(1 << 31));
        assert_eq!(churn_span(1 << 23), Some(1 << 31));
        assert_eq!(churn_span((1 << 23) + 1), Some(1 << 32));
        assert_eq!(churn_span(45_000_000), Some(1 << 34));
        for live in [1, 1000, 1 << 23, (1 << 23) + 1, 45_000_000, CHURN_MAX_LIVE] {
            let span = churn_span(live).unwrap();
            assert!(span >= live * 255 && span.is_power_of_two(), "{live}");
        }
        assert_eq!(churn_span(usize::MAX / 256 + 1), None);
        assert_eq!(churn_span((usize::MAX >> 9) + 1), Some(1 << 63));
        assert_eq!(churn_span((usize::MAX >> 9) + 2), None, "past 2^63");
        let head = churn_text(10, 0).unwrap();
        assert!(head.contains("\nadd 0x100000 0x80000000\n"), "{head}");
    }

    #[test]
    fn churn_trace_parses_and_frees_only_live_ids() {
        assert!(churn_text(0, 1).is_err());
        assert!(churn_text(CHURN_MAX_LIVE + 1, 1).is_err());
        let ops = parse(&churn_text(10, 50).unwrap()).unwrap().ops;
        assert_eq!(ops.len(), 1 + 10 + 2 * 50);
        let mut live = std::collections::HashSet::new();
        for (_, op) in ops {
            match op {
                TraceOp::Alloc { id, .. } => assert!(live.insert(id)),
                TraceOp::Free { id } => assert!(live.remove(&id)),
                _ => {}
            }
        }
        assert_eq!(live.len(), 10);
    }
}
