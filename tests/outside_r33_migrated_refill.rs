//! Outside review, round 33: a per-CPU retry (the rewritten
//! `CpuCaches::alloc_missed` retry, through `alloc_retrying`) whose refill
//! lands on another slot, one with no room, after the thread "migrated":
//! no object is lost or handed out twice.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:28-31 (`CpuCaches`): "a miss gets a magazine from
//!   the depot or the slabs under the lock, then installs it
//!   ([`CpuPin::install`]) in whichever slot the caller is on by then (or
//!   gives it back when that slot has no room)".
//! - src/sync/percpu.rs:220-224 (`alloc_retrying`): the loop is given "a
//!   function that tries the whole allocation again (this CPU's magazines
//!   first)".
//! - src/qcache/pin.rs:106-109: each magazine operation acts on "one slot
//!   below `mags.slots()`": here a scripted pin says which, per operation
//!   (the thread's CPU as each operation sees it).
//!
//! Deterministic: one thread, `NoWait`, and the loop is the test's code.

use std::cell::Cell;
use std::collections::HashSet;

use vmspace::arena::ArenaError;
use vmspace::qcache::ROUNDS;
use vmspace::sync::CpuCaches;
use vmspace::{Addr, Size};

mod pins;
mod retry_loop;
use pins::{Op, Placed, Setup, Slices};
use retry_loop::retrying;

const Q: usize = 16;
const SPAN: usize = 4096;

thread_local! {
    /// The slot this thread's pops, pushes (and spills), and installs
    /// act on.
    static POP: Cell<usize> = const { Cell::new(0) };
    static PUSH: Cell<usize> = const { Cell::new(0) };
    static INSTALL: Cell<usize> = const { Cell::new(0) };
}

/// The script of a two-slot pin (`pins::Placed`): which slot an operation
/// acts on is the thread's (`POP`, `PUSH`, `INSTALL`); every operation is
/// placed.
fn scripted(op: Op) -> Option<usize> {
    let slot = match op {
        Op::Pop => &POP,
        Op::Push | Op::Spill => &PUSH,
        Op::Install => &INSTALL,
    };
    Some(slot.with(Cell::get))
}

#[test]
fn a_retry_refilled_onto_a_full_slot_loses_and_doubles_nothing() {
    let mut slices = Slices::new(Setup::new("r33", Q, SPAN));
    let (s, mags) = slices.shared();
    let cpu = CpuCaches::new(&s, Placed::<2>::new(scripted), mags).unwrap();
    let take_all = |live: &mut Vec<Addr>| loop {
        match cpu.alloc(Size(Q)) {
            Ok(x) => live.push(x),
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
    };
    // Every object, on slot 0.
    let mut live = Vec::new();
    take_all(&mut live);
    let total = live.len();
    assert!(total > 2 * ROUNDS + 8, "{total}");
    // Slot 1's two magazines filled exactly (nothing to the depot).
    PUSH.with(|p| p.set(1));
    for x in live.drain(..2 * ROUNDS) {
        cpu.free(x, Size(Q)).unwrap();
    }
    PUSH.with(|p| p.set(0));
    // Five objects back to their slabs, during the wait; the retry's pop
    // is on slot 0 (empty), its refill installed on slot 1 (full).
    let back: Vec<Addr> = live.drain(..5).collect();
    let r = retrying(&cpu, Size(Q), |first, again| {
        assert!(matches!(first, Err(ArenaError::NoSpace { .. })), "{first:?}");
        for &x in &back {
            s.free(x, Size(Q)).unwrap();
        }
        INSTALL.with(|i| i.set(1));
        let r = again();
        INSTALL.with(|i| i.set(0));
        r
    });
    let got = r.expect("a cached size").expect("served from the slabs on the retry");
    assert!(back.contains(&got), "{got:?} is one of the objects given back: {back:?}");
    live.push(got);
    // The path taken: the rest of the refilled magazine was refused by
    // slot 1 (full) and given back, to the slabs or the depot.
    let st = s.qcache_stats();
    assert_eq!(st.objects_in_slabs + st.depot_magazines * ROUNDS, back.len() - 1, "{st:?}");
    // Everything else, on slot 1 (its magazines first) then slot 0: each
    // object exactly once, none missing.
    POP.with(|p| p.set(1));
    take_all(&mut live);
    POP.with(|p| p.set(0));
    take_all(&mut live);
    let distinct: HashSet<Addr> = live.iter().copied().collect();
    assert_eq!(distinct.len(), live.len(), "an object handed out twice");
    assert_eq!(live.len(), total, "objects lost (or made up)");
    for x in live {
        cpu.free(x, Size(Q)).unwrap();
    }
    drop(cpu);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    s.check().unwrap();
}
