//! Written by a reviewer outside the project (round 73). Checks the pins'
//! magazine operations against `CpuMags`' docs ("`false`, and nothing
//! changed, otherwise") and `CpuPin`'s contract ("overridden, each has
//! exactly the effect of the `CpuMags` method of the same name"), and the
//! slot-count bounds of `SchedPin` / `RseqPin`.

use vmspace::qcache::{CpuMags, CpuPin, MagSlots, Magazine, SlotFlag};
use vmspace_user::{RseqPin, SchedPin, MAX_SLOTS};

fn slots(n: usize) -> Vec<CpuMags> {
    vec![CpuMags::EMPTY; n]
}

fn mags(mem: &mut [CpuMags]) -> MagSlots {
    // SAFETY: `mem` holds initialized CpuMags, a CpuMags apart, used only
    // through the pin under test while borrowed.
    unsafe { MagSlots::new(mem.as_mut_ptr().cast(), core::mem::size_of::<CpuMags>(), mem.len()) }
}

fn prefilled() -> Magazine {
    let mut out = Magazine::EMPTY;
    for a in [0x1000, 0x2000, 0x3000] {
        assert!(out.push(a));
    }
    out
}

/// `CpuMags::spill` on magazines that are not both full: `false`, and
/// `out` untouched (the reference the pins must match).
#[test]
fn cpumags_spill_refused_leaves_out_as_it_was() {
    let mut m = CpuMags::EMPTY;
    let mut out = prefilled();
    assert!(!m.spill(&mut out));
    assert_eq!(out.rounds(), &[0x1000, 0x2000, 0x3000]);
}

/// The default magazine operations (`SchedPin`) match `CpuMags::spill`.
#[test]
fn schedpin_spill_refused_leaves_out_as_it_was() {
    let pin = SchedPin::with_slots(4);
    let mut mem = slots(pin.slots());
    let mut out = prefilled();
    // SAFETY: `mags` has `pin.slots()` slots, used only through `pin`.
    let spilled = unsafe { pin.spill(mags(&mut mem), &mut out) };
    assert!(!spilled);
    assert_eq!(out.rounds(), &[0x1000, 0x2000, 0x3000]);
}

/// `RseqPin`, with rseq and without: a refused spill must leave `out` as
/// `CpuMags::spill` does (the source's own comment says "and so does
/// this"). Round 73 found `RseqPin::spill` overwriting it with
/// `Magazine::EMPTY`: fixed.
#[test]
fn rseqpin_spill_refused_leaves_out_as_it_was() {
    let n = vmspace_user::possible_cpus();
    for (what, pin) in [("rseq", RseqPin::new()), ("fallback", RseqPin::without_rseq(n))] {
        let mut mem = slots(pin.slots());
        let mut out = prefilled();
        // SAFETY: `mags` has `pin.slots()` slots, used only through `pin`.
        let spilled = unsafe { pin.spill(mags(&mut mem), &mut out) };
        assert!(!spilled, "{what}");
        assert_eq!(
            out.rounds(),
            &[0x1000, 0x2000, 0x3000],
            "{what} (uses_rseq {}): a refused spill changed `out`",
            pin.uses_rseq()
        );
    }
}

/// "`slots` slots, at least one and at most MAX_SLOTS".
#[test]
fn slot_counts_are_clamped() {
    assert_eq!(SchedPin::with_slots(0).slots(), 1);
    assert_eq!(SchedPin::with_slots(usize::MAX).slots(), MAX_SLOTS);
    assert_eq!(SchedPin::with_slots(MAX_SLOTS + 1).slots(), MAX_SLOTS);
    assert_eq!(RseqPin::with_slots(0).slots(), 1);
    assert_eq!(RseqPin::without_rseq(0).slots(), 1);
    assert_eq!(RseqPin::without_rseq(usize::MAX).slots(), MAX_SLOTS);
    assert!(!RseqPin::without_rseq(3).uses_rseq());
}

/// `take_any` with the largest hint (what `sched_getcpu`'s -1 becomes),
/// raced by threads: every slot is handed out at most once until given
/// back, and `None` only when all are taken.
#[test]
fn take_any_races_never_hand_a_slot_out_twice() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let flags: Vec<SlotFlag> = (0..3).map(|_| SlotFlag::new()).collect();
    let inside: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|s| {
        for t in 0..4usize {
            let (flags, inside) = (&flags, &inside);
            s.spawn(move || {
                for k in 0..20_000usize {
                    let hint = if k % 2 == 0 { usize::MAX - t } else { k };
                    if let Some(i) = SlotFlag::take_any(flags, hint) {
                        assert!(i < 3);
                        assert_eq!(inside[i].fetch_add(1, Ordering::SeqCst), 0);
                        inside[i].fetch_sub(1, Ordering::SeqCst);
                        // SAFETY: taken just above.
                        unsafe { flags[i].release() };
                    }
                }
            });
        }
    });
    // All free again: three takes succeed, the fourth does not.
    let got: Vec<_> = (0..4).map(|_| SlotFlag::take_any(&flags, usize::MAX)).collect();
    assert_eq!(got[3], None);
    let mut taken: Vec<_> = got[..3].iter().map(|g| g.unwrap()).collect();
    taken.sort();
    assert_eq!(taken, [0, 1, 2]);
}
