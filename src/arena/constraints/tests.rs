//! Constraint validation and placement, against brute force over small
//! windows.

use super::*;

fn req(c: Constraints) -> Request {
    c.validate(16).unwrap()
}

#[test]
fn parts_round_trip() {
    let c = Constraints::new(Size(40))
        .align(Size(64))
        .phase(Size(16))
        .nocross(Size(4096))
        .min_addr(Addr(0x100))
        .exact(Addr(0x150))
        .policy(Policy::NextFit)
        .from_top(true);
    let p = c.parts();
    assert_eq!((p.size, p.align, p.max, p.exact), (Size(40), Size(64), None, Some(Addr(0x150))));
    assert_eq!(Constraints::from(p), c);
}

#[test]
fn validation() {
    let e = |c: Constraints| c.validate(16).unwrap_err();
    assert!(matches!(e(Constraints::new(Size(0))), ArenaError::InvalidArgument(_)));
    assert!(matches!(e(Constraints::new(Size(1)).align(Size(48))), ArenaError::InvalidArgument(_)));
    assert!(matches!(
        e(Constraints::new(Size(16)).align(Size(64)).phase(Size(8))),
        ArenaError::Misaligned { .. }
    ));
    assert!(matches!(
        e(Constraints::new(Size(16)).align(Size(64)).phase(Size(64))),
        ArenaError::InvalidArgument(_)
    ));
    assert!(matches!(
        e(Constraints::new(Size(80)).nocross(Size(64))),
        ArenaError::OverConstrained(_)
    ));
    assert!(matches!(
        e(Constraints::new(Size(32)).align(Size(64)).phase(Size(48)).nocross(Size(64))),
        ArenaError::OverConstrained(_)
    ));
    assert!(matches!(
        e(Constraints::new(Size(32)).min_addr(Addr(100)).max_addr(Addr(120))),
        ArenaError::OverConstrained(_)
    ));
    assert!(matches!(
        e(Constraints::new(Size(32)).align(Size(64)).exact(Addr(32))),
        ArenaError::OverConstrained(_)
    ));
    // Not a multiple of the quantum: a bad argument, like a phase.
    assert!(matches!(
        e(Constraints::new(Size(32)).exact(Addr(0x4008))),
        ArenaError::Misaligned { value: 0x4008, align: 16 }
    ));
    assert!(matches!(e(Constraints::new(Size(usize::MAX))), ArenaError::Overflow));
    let r = req(Constraints::new(Size(20)));
    assert_eq!((r.size, r.slack, r.constrained), (32, 12, false));
}

#[test]
fn placement() {
    let r = req(Constraints::new(Size(32)).align(Size(64)).phase(Size(16)));
    assert_eq!(r.place(0, 1000), Some(16));
    assert_eq!(r.place(20, 1000), Some(80));
    assert_eq!(r.place(20, 111), None);
    assert_eq!(r.place(20, 112), Some(80));
    let top = req(Constraints::new(Size(32)).align(Size(64)).phase(Size(16)).from_top(true));
    assert_eq!(top.place(0, 1000), Some(912));
    assert!(top.satisfied_by(top.place(0, 1000).unwrap()));
    let nc = req(Constraints::new(Size(48)).nocross(Size(64)));
    assert_eq!(nc.place(32, 1000), Some(64));
    let nct = req(Constraints::new(Size(48)).nocross(Size(64)).from_top(true));
    assert_eq!(nct.place(0, 150), Some(80));
    let w = req(Constraints::new(Size(16)).min_addr(Addr(100)).max_addr(Addr(200)));
    assert_eq!(w.place(0, 1000), Some(112));
    assert_eq!(w.place(190, 1000), None);
    let x = req(Constraints::new(Size(16)).exact(Addr(160)));
    assert_eq!(x.place(0, 1000), Some(160));
    assert_eq!(x.place(176, 1000), None);
}

/// A window that holds no placement is over-constrained at once (not
/// `NoSpace`, which a waiting caller would wait on for ever), and one
/// that holds a placement is not: checked against every start in small
/// windows. (Found from C by an outside reviewer: a nocross boundary
/// in the middle of a window just larger than the size, an alignment
/// with no multiple in the window, a window with no quantum-aligned
/// room.)
#[test]
fn windows_without_a_placement_are_over_constrained() {
    let over = |c: Constraints| matches!(c.validate(16), Err(ArenaError::OverConstrained(_)));
    let b = 0x10_0000;
    let c = Constraints::new(Size(0x20)).nocross(Size(0x100));
    assert!(over(c.min_addr(Addr(b + 0xf0)).max_addr(Addr(b + 0x110))));
    assert!(!over(c.min_addr(Addr(b + 0xf0)).max_addr(Addr(b + 0x120))));
    let c = Constraints::new(Size(0x10)).align(Size(0x1000));
    assert!(over(c.min_addr(Addr(b + 0x10)).max_addr(Addr(b + 0x800))));
    assert!(over(c.min_addr(Addr(b + 0x10)).max_addr(Addr(b + 0x800)).from_top(true)));
    assert!(!over(c.min_addr(Addr(b + 0x10)).max_addr(Addr(b + 0x1010))));
    assert!(over(Constraints::new(Size(0x10)).min_addr(Addr(b + 1)).max_addr(Addr(b + 31))));
    let top = 1usize << (usize::BITS - 1);
    let c = Constraints::new(Size(9)).nocross(Size(top));
    assert!(matches!(
        c.min_addr(Addr(top - 8)).max_addr(Addr(top + 8)).validate(1),
        Err(ArenaError::OverConstrained(_))
    ));
    assert!(c.min_addr(Addr(top - 8)).max_addr(Addr(top + 9)).validate(1).is_ok());
    // No window: only a phase that pushes the end past the top fails.
    let huge = Constraints::new(Size(usize::MAX - 15)).align(Size(32));
    assert!(huge.validate(16).is_ok());
    assert!(over(huge.phase(Size(16))));
    for align in [16usize, 64, 256] {
        for phase in (0..align).step_by(48) {
            for nocross in [0usize, 64, 256] {
                for size in [16usize, 48] {
                    let open = Constraints::new(Size(size))
                        .align(Size(align))
                        .phase(Size(phase))
                        .nocross(Size(nocross));
                    let Ok(any) = open.validate(16) else { continue };
                    for lo in (0..400).step_by(8) {
                        for hi in (lo + 1..480).step_by(8) {
                            let c = open.min_addr(Addr(lo)).max_addr(Addr(hi));
                            let fits = (lo.next_multiple_of(16)..hi)
                                .step_by(16)
                                .any(|t| t + size <= hi && any.satisfied_by(t));
                            assert_eq!(!over(c), fits, "{c:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn exhaustive_small_placements_satisfy() {
    for align in [16usize, 32, 64, 128] {
        for phase in (0..align).step_by(16) {
            for nocross in [0usize, 64, 128, 256] {
                for size in [16usize, 32, 48, 64] {
                    for top in [false, true] {
                        let c = Constraints::new(Size(size))
                            .align(Size(align))
                            .phase(Size(phase))
                            .nocross(Size(nocross))
                            .from_top(top);
                        let Ok(r) = c.validate(16) else { continue };
                        for s in (0..512).step_by(16) {
                            for e in (s..640).step_by(16) {
                                let got = r.place(s, e);
                                let mut fits = (s..e)
                                    .step_by(16)
                                    .filter(|&t| t + size <= e && r.satisfied_by(t));
                                let want = if top { fits.next_back() } else { fits.next() };
                                assert_eq!(got, want, "{c:?} {s} {e}");
                                if let Some(t) = got {
                                    assert!(r.satisfied_by(t) && t >= s && t + size <= e);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
