//! Written by a reviewer outside the project, from the documented contracts
//! of `/dev/vmspace` (the `vmspace-abi` crate's docs of `SpanArgs` and
//! `AllocArgs`, the core's `Constraints`), to break them: spans and
//! allocations at the top of what `u64` holds, and every constraint at its
//! edges, for every policy, from the bottom and the top, by address and by
//! handle. Skipped (returning early) when `VMSPACE_DEVICE` is not set.

#![allow(
    clippy::result_large_err,
    reason = "the helpers return the device's error record whole: it is what the tests inspect"
)]

use std::os::fd::RawFd;

use nix::errno::Errno;
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::*;
use vmspace_user::kdev::device_for_tests;

mod outside_kdev_common;
use outside_kdev_common::*;

fn free(fd: RawFd, id: u32, addr: u64, size: u64) -> Result<(), (Errno, WireError)> {
    let mut a = FreeArgs { id, addr, a: size, ..FreeArgs::ZERO };
    raw(fd, cmd::ARENA_FREE, &mut a).map_err(|e| (e, a.err))
}

/// Spans and allocations at the top of the address space: a span ending at
/// 2^64 cannot be represented and is an `ARENA_OVERFLOW`; the highest
/// representable span works, with `ALLOC_TOP`, `ALLOC_MAX` = `u64::MAX` and
/// an exact address in its last quantum.
#[test]
fn spans_and_allocations_at_the_top_of_the_address_space() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let id = create(fd, arena_args(16, 512)).unwrap();
    let overflow = (Errno::EINVAL, [ARENA_OVERFLOW, 0, 0, 0]);
    assert_eq!(refusal(span(fd, id, u64::MAX - 15, 16, false)), overflow);
    assert_eq!(refusal(span(fd, id, 0u64.wrapping_sub(1 << 20), 1 << 20, false)), overflow);
    assert_eq!(refusal(span(fd, id, 1 << 63, 1 << 63, false)), overflow);
    let top = 0u64.wrapping_sub(2 << 20); // [2^64 - 2 MiB, 2^64 - 1 MiB)
    span(fd, id, top, 1 << 20, false).unwrap();
    assert_eq!(refusal(span(fd, id, top + (1 << 20), 1 << 20, true)), overflow);
    let end = top + (1 << 20);
    let held =
        |flags| AllocArgs { id, flags: ALLOC_CONSTRAINED | flags, size: 16, ..AllocArgs::ZERO };
    for policy in [POLICY_INSTANT_FIT, POLICY_BEST_FIT, POLICY_FIRST_FIT, POLICY_NEXT_FIT] {
        let a = AllocArgs { policy, max: u64::MAX, ..held(ALLOC_TOP | ALLOC_MAX) };
        let (at, _) = alloc(fd, a).unwrap();
        assert_eq!(at, end - 16, "policy {policy}");
        free(fd, id, at, 16).unwrap();
    }
    let (at, _) = alloc(fd, AllocArgs { exact: end - 16, ..held(ALLOC_EXACT) }).unwrap();
    assert_eq!(at, end - 16);
    // Exact past the span, and exact whose end overflows.
    let e = alloc(fd, AllocArgs { exact: end, ..held(ALLOC_EXACT) });
    assert_eq!(refusal(e), (Errno::ENOSPC, [ARENA_NO_SPACE, 0, 0, 0]));
    let e = alloc(fd, AllocArgs { exact: u64::MAX - 15, size: 32, ..held(ALLOC_EXACT) });
    assert_eq!(refusal(e), overflow);
    // Sizes that cannot be rounded up, or that no span holds.
    let e = alloc(fd, AllocArgs { id, size: u64::MAX, ..AllocArgs::ZERO });
    assert_eq!(refusal(e), overflow);
    let e = alloc(fd, AllocArgs { id, size: 2 << 20, ..AllocArgs::ZERO });
    assert_eq!(refusal(e), (Errno::ENOSPC, [ARENA_NO_SPACE, 0, 0, 0]));
    free(fd, id, end - 16, 16).unwrap();
    check_arena(fd, id).unwrap();
}

/// Every constraint at its edges (abi `AllocArgs`, core `Constraints`):
/// results honour align, phase, nocross and the window for every policy,
/// from the bottom and the top, by address and by handle; impossible
/// combinations are refused with the documented record.
#[test]
fn constraints_at_their_edges() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let id = create(fd, arena_args(16, 2048)).unwrap();
    let base = 1u64 << 62;
    span(fd, id, base - (4 << 20), 8 << 20, false).unwrap();
    let c = |size| AllocArgs { id, flags: ALLOC_CONSTRAINED, size, ..AllocArgs::ZERO };
    let policies =
        [POLICY_INSTANT_FIT, POLICY_BEST_FIT, POLICY_FIRST_FIT, POLICY_NEXT_FIT, POLICY_DEFAULT];
    let mut live = Vec::new();
    for (i, &policy) in policies.iter().enumerate() {
        for top in [0, ALLOC_TOP] {
            for held in [0, ALLOC_HELD] {
                let a = AllocArgs {
                    flags: ALLOC_CONSTRAINED | top | held,
                    policy,
                    align: 1 << 16,
                    phase: (1 << 16) - 32,
                    nocross: 1 << 16,
                    ..c(32)
                };
                let (at, tag) = alloc(fd, a).unwrap_or_else(|e| panic!("{a:?}: {e:?}"));
                assert_eq!(at % (1 << 16), (1 << 16) - 32, "{a:?}");
                assert_eq!(at / (1 << 16), (at + 31) / (1 << 16), "crosses: {a:?}");
                assert_eq!(tag != 0, held != 0);
                live.push((at, tag));
                // The window: [min, max) exactly the size, at an odd place.
                let lo = base
                    + ((i as u64 + 1) << 16)
                    + if top != 0 { 4096 } else { 0 }
                    + if held != 0 { 8192 } else { 0 };
                let w = AllocArgs {
                    flags: ALLOC_CONSTRAINED | ALLOC_MIN | ALLOC_MAX | top | held,
                    policy,
                    min: lo,
                    max: lo + 48,
                    ..c(48)
                };
                let (at, tag) = alloc(fd, w).unwrap_or_else(|e| panic!("{w:?}: {e:?}"));
                assert_eq!(at, lo, "{w:?}");
                live.push((at, tag));
            }
        }
    }
    // The highest alignment there is: 2^62 is in the span, at its middle.
    let (at, _) = alloc(fd, AllocArgs { align: 1 << 62, ..c(16) }).unwrap();
    assert_eq!(at, base);
    free(fd, id, at, 16).unwrap();
    let none = alloc(fd, AllocArgs { align: 1 << 63, ..c(16) });
    assert_eq!(refusal(none), (Errno::ENOSPC, [ARENA_NO_SPACE, 0, 0, 0]));
    // Refusals, each with its record.
    let inval = [ARENA_INVALID_ARGUMENT, 0, 0, 0];
    let over = [ARENA_OVER_CONSTRAINED, 0, 0, 0];
    let cases: [(AllocArgs, u16); 10] = [
        (AllocArgs { align: 64, phase: 64, ..c(16) }, ARENA_INVALID_ARGUMENT),
        (AllocArgs { align: 48, ..c(16) }, ARENA_INVALID_ARGUMENT),
        (AllocArgs { nocross: 48, ..c(16) }, ARENA_INVALID_ARGUMENT),
        (AllocArgs { nocross: 32, size: 48, ..c(0) }, ARENA_OVER_CONSTRAINED),
        (AllocArgs { nocross: 64, align: 128, phase: 48, ..c(32) }, ARENA_OVER_CONSTRAINED),
        (
            AllocArgs {
                flags: ALLOC_CONSTRAINED | ALLOC_MIN | ALLOC_MAX,
                min: base + 64,
                max: base,
                ..c(16)
            },
            ARENA_OVER_CONSTRAINED,
        ),
        (
            AllocArgs {
                flags: ALLOC_CONSTRAINED | ALLOC_MIN | ALLOC_MAX,
                min: base,
                max: base + 32,
                ..c(48)
            },
            ARENA_OVER_CONSTRAINED,
        ),
        (
            AllocArgs {
                flags: ALLOC_CONSTRAINED | ALLOC_MIN | ALLOC_MAX,
                min: base,
                max: base,
                ..c(16)
            },
            ARENA_OVER_CONSTRAINED,
        ),
        (
            AllocArgs {
                flags: ALLOC_CONSTRAINED | ALLOC_EXACT,
                exact: base + 16,
                align: 64,
                ..c(16)
            },
            ARENA_OVER_CONSTRAINED,
        ),
        (
            AllocArgs {
                flags: ALLOC_CONSTRAINED | ALLOC_EXACT,
                exact: base + 48,
                nocross: 64,
                ..c(32)
            },
            ARENA_OVER_CONSTRAINED,
        ),
    ];
    for (a, code) in cases {
        let (e, chain) = refusal(alloc(fd, a));
        let want = if code == ARENA_INVALID_ARGUMENT { inval } else { over };
        assert_eq!((e, chain), (Errno::EINVAL, want), "{a:?}");
    }
    // Misaligned values: the record names the value and the quantum.
    for a in [
        AllocArgs { phase: 8, align: 64, ..c(16) },
        AllocArgs { nocross: 8, ..c(8) },
        AllocArgs { flags: ALLOC_CONSTRAINED | ALLOC_EXACT, exact: base + 8, ..c(16) },
    ] {
        let e = alloc(fd, a).unwrap_err();
        assert_eq!((e.0, e.1.chain), (Errno::EINVAL, [ARENA_MISALIGNED, 0, 0, 0]), "{a:?}");
        assert_eq!((e.1.a, e.1.b), (if a.exact != 0 { base + 8 } else { 8 }, 16), "{a:?}");
    }
    // Flags without ALLOC_CONSTRAINED, values without their flag.
    for a in [
        AllocArgs { id, flags: ALLOC_TOP, size: 16, ..AllocArgs::ZERO },
        AllocArgs { id, flags: ALLOC_MIN, size: 16, ..AllocArgs::ZERO },
        AllocArgs { min: base, ..c(16) },
        AllocArgs { exact: base, ..c(16) },
        AllocArgs { policy: 4, ..c(16) },
    ] {
        assert_eq!(refusal(alloc(fd, a)), (Errno::EINVAL, BAD_FIELD), "{a:?}");
    }
    // Everything made is still there, and frees exactly once.
    for (at, tag) in live {
        let mut f = if tag != 0 {
            FreeArgs { id, addr: at, tag, ..FreeArgs::ZERO }
        } else {
            FreeArgs { id, addr: at, a: 0, ..FreeArgs::ZERO }
        };
        if tag == 0 {
            let mut l = LookupArgs { id, addr: at, ..LookupArgs::ZERO };
            raw(fd, cmd::ARENA_LOOKUP, &mut l).unwrap();
            assert_eq!(l.found, 1);
            f.a = l.requested;
        }
        let c = if tag != 0 { cmd::ARENA_FREE_HANDLE } else { cmd::ARENA_FREE };
        let mut again = f;
        raw(fd, c, &mut f).unwrap();
        assert_eq!(raw(fd, c, &mut again), Err(Errno::EINVAL));
    }
    check_arena(fd, id).unwrap();
    let mut s = ArenaStatsArgs { id, ..ArenaStatsArgs::ZERO };
    raw(fd, cmd::ARENA_STATS, &mut s).unwrap();
    assert_eq!((s.allocated, s.live), (0, 0));
}
