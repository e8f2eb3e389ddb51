//! Round 58 (outside reviewer): `SchedPin::with_slots` / `RseqPin::with_slots`
//! / `RseqPin::without_rseq` size a `Box<[SlotFlag]>` (64 bytes a slot) by
//! the caller's number with no bound and no error path. A huge count is a
//! "capacity overflow" panic (usize::MAX) or an allocation-failure abort
//! (2^32, 2^40) instead of an error or a clamp. Each case runs in a child
//! (this binary re-executed with `--exact`) under RLIMIT_AS = 2 GiB, and the
//! parent asserts the child exited 0. Was a DEFECT (fixed: at most
//! `MAX_SLOTS` slots): FAILED then.

use std::process::Command;

use vmspace::qcache::CpuPin;
use vmspace_user::{RseqPin, SchedPin};

const CHILD: &str = "OUTSIDE_R58_PINS_CHILD";

/// The most slots a sane pin should ever hold (CPU numbers fit a cpu_set_t;
/// the kernel's NR_CPUS is at most 8192).
const SANE: usize = 1 << 16;

fn cap_memory() {
    let lim = libc::rlimit { rlim_cur: 2 << 30, rlim_max: 2 << 30 };
    // SAFETY: plain syscall on our own process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
}

/// Run test `name` of this binary in a child with `CHILD=case`; its status.
fn child(name: &str, case: &str) -> std::process::ExitStatus {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .status()
        .unwrap()
}

fn slots_in_child(case: &str) {
    cap_memory();
    let n: usize = match case {
        "max" => usize::MAX,
        "2^40" => 1 << 40,
        "2^32" => 1 << 32,
        _ => unreachable!(),
    };
    for (what, slots) in [
        ("SchedPin::with_slots", SchedPin::with_slots(n).slots()),
        ("RseqPin::with_slots", RseqPin::with_slots(n).slots()),
        ("RseqPin::without_rseq", RseqPin::without_rseq(n).slots()),
    ] {
        assert!((1..=SANE).contains(&slots), "{what}({n}) kept {slots} slots");
    }
}

#[test]
fn huge_slot_counts_neither_panic_nor_abort_under_rlimit() {
    if let Ok(case) = std::env::var(CHILD) {
        return slots_in_child(&case);
    }
    let mut bad = Vec::new();
    for case in ["max", "2^40", "2^32"] {
        let st = child("huge_slot_counts_neither_panic_nor_abort_under_rlimit", case);
        if !st.success() {
            bad.push(format!("with_slots({case}): child {st:?}"));
        }
    }
    assert!(bad.is_empty(), "pin constructors die on a huge slot count: {bad:#?}");
}

/// PASSES today (sharp edge kept): zero slots is clamped to one.
#[test]
fn zero_slots_is_one() {
    assert_eq!(SchedPin::with_slots(0).slots(), 1);
    assert_eq!(RseqPin::without_rseq(0).slots(), 1);
    assert_eq!(RseqPin::with_slots(0).slots(), 1);
}
