//! Round 26 (outside reviewer): the shim's typed arithmetic, alignment
//! math, `Range`, `ShimError` and `check_*` helpers, against their docs,
//! at the extremes. Every function documented "never wraps or panics" is
//! called on a grid of extreme values and compared with a naive u128
//! reference.

use vmspace_shim::align::{self, PowerOfTwo};
use vmspace_shim::{
    check_page_range, check_reserve_args, Addr, Op, Overflow, Pages, Range, ShimError, Size,
};

const M: usize = usize::MAX;

fn grid() -> Vec<usize> {
    let mut v = vec![0, 1, 2, 3, 5, 63, 64, 65, 4095, 4096, 4097, 1 << 20, (1 << 21) + 7];
    v.extend([1 << 30, (1 << 30) - 1, (1 << 30) + 1, 1 << 62, (1 << 63) - 1, 1 << 63]);
    v.extend([(1 << 63) + 1, M - 4096, M - 4095, M - 4094, M - 1, M, M - (1 << 30) + 1]);
    v
}

fn aligns() -> Vec<usize> {
    let mut v: Vec<usize> = (0..usize::BITS).map(|s| 1usize << s).collect();
    v.extend([0, 3, 6, 4097, 12288, M, M - 1, (1 << 63) + 1]);
    v
}

fn pow2(x: usize) -> bool {
    x != 0 && x & (x - 1) == 0
}

#[test]
fn align_functions_match_a_u128_reference_and_never_panic() {
    for x in grid() {
        for a in aligns() {
            let p = pow2(a);
            assert_eq!(align::is_power_of_two(a), p);
            assert_eq!(align::is_aligned(x, a), p && x % a == 0, "is_aligned({x:#x},{a:#x})");
            assert_eq!(align::align_down(x, a), p.then(|| x - x % a), "align_down");
            let up = if p {
                let y = (x as u128).div_ceil(a as u128) * a as u128;
                usize::try_from(y).map_err(|_| Overflow)
            } else {
                Err(Overflow)
            };
            assert_eq!(align::align_up(x, a), up, "align_up({x:#x},{a:#x})");
            let r = if a == 0 {
                Err(Overflow)
            } else {
                usize::try_from((x as u128).div_ceil(a as u128) * a as u128).map_err(|_| Overflow)
            };
            assert_eq!(align::round_up(x, a), r, "round_up({x:#x},{a:#x})");
            // next_boundary: smallest multiple strictly greater.
            let nb = if p {
                usize::try_from((x as u128 / a as u128 + 1) * a as u128).map_err(|_| Overflow)
            } else {
                Err(Overflow)
            };
            assert_eq!(align::next_boundary(x, a), nb, "next_boundary({x:#x},{a:#x})");
            if let Some(po) = PowerOfTwo::new(a) {
                assert_eq!(po.align_up(x), up);
                assert_eq!(po.get(), a);
            } else {
                assert!(!p);
            }
            assert_eq!(Addr(x).align_up(Size(a)), up.map(Addr));
            assert_eq!(Size(x).align_up(Size(a)), up.map(Size));
            assert_eq!(Size(x).round_up(Size(a)), r.map(Size));
            assert_eq!(Addr(x).align_down(Size(a)), p.then(|| Addr(x - x % a)).ok_or(Overflow));
            assert_eq!(Addr(x).is_aligned(Size(a)), p && x % a == 0);
            // crosses_boundary
            for size in [0usize, 1, 2, 4096, a.wrapping_sub(1), a, M] {
                let want = if size == 0 || !p {
                    false
                } else {
                    let last = x as u128 + size as u128 - 1;
                    if last > M as u128 {
                        true
                    } else {
                        (x as u128 / a as u128) != last / a as u128
                    }
                };
                assert_eq!(
                    align::crosses_boundary(x, size, a),
                    want,
                    "crosses({x:#x},{size:#x},{a:#x})"
                );
            }
        }
    }
}

#[test]
fn phase_functions_match_brute_force_definitions() {
    for x in grid() {
        for a in aligns() {
            for phase in [0usize, 1, 4, a.wrapping_sub(1), a, a.wrapping_add(1), M] {
                let ok = pow2(a) && phase < a;
                let up = if !ok {
                    Err(Overflow)
                } else {
                    // smallest y >= x with y % a == phase
                    let (x, a, ph) = (x as u128, a as u128, phase as u128);
                    let y = if x <= ph { ph } else { (x - ph).div_ceil(a) * a + ph };
                    usize::try_from(y).map_err(|_| Overflow)
                };
                assert_eq!(
                    align::align_up_with_phase(x, a, phase),
                    up,
                    "up({x:#x},{a:#x},{phase:#x})"
                );
                let down = if !ok || x < phase { None } else { Some((x - phase) / a * a + phase) };
                assert_eq!(
                    align::align_down_with_phase(x, a, phase),
                    down,
                    "down({x:#x},{a:#x},{phase:#x})"
                );
            }
        }
    }
}

#[test]
fn logs_at_extremes() {
    for x in grid().into_iter().chain(aligns()) {
        let floor = (x != 0).then(|| 63 - x.leading_zeros());
        assert_eq!(align::log2_floor(x), floor, "{x:#x}");
        let ceil = (x != 0).then(|| (0..=64u32).find(|&k| (1u128 << k) >= x as u128).unwrap());
        assert_eq!(align::log2_ceil(x), ceil, "{x:#x}");
        assert_eq!(align::log2_exact(x), pow2(x).then(|| x.trailing_zeros()));
    }
}

#[test]
fn typed_arithmetic_is_checked_at_extremes() {
    for a in grid() {
        for b in grid() {
            let sum = a.checked_add(b).ok_or(Overflow);
            let diff = a.checked_sub(b).ok_or(Overflow);
            assert_eq!(Addr(a).checked_add(Size(b)), sum.map(Addr));
            assert_eq!(Addr(a).checked_sub(Size(b)), diff.map(Addr));
            assert_eq!(Addr(a).offset_from(Addr(b)), diff.map(Size));
            assert_eq!(Size(a).checked_add(Size(b)), sum.map(Size));
            assert_eq!(Size(a).checked_sub(Size(b)), diff.map(Size));
            assert_eq!(Size(a).checked_mul(b), a.checked_mul(b).ok_or(Overflow).map(Size));
            assert_eq!(Pages(a).to_size(Size(b)), a.checked_mul(b).ok_or(Overflow).map(Size));
            let pages = (b != 0 && a % b == 0).then(|| Pages(a / b));
            assert_eq!(Size(a).to_pages(Size(b)), pages);
            // Range constructors.
            assert_eq!(Range::new(Addr(a), Addr(b)).is_some(), a <= b);
            match Range::from_size(Addr(a), Size(b)) {
                Ok(r) => {
                    assert_eq!(r.base(), Addr(a));
                    assert_eq!(r.size(), Size(b));
                    assert_eq!(r.is_empty(), b == 0);
                    assert_eq!(r.pages(Size(4096)), Size(b).to_pages(Size(4096)));
                }
                Err(e) => {
                    assert_eq!(e, Overflow);
                    assert!(a.checked_add(b).is_none());
                }
            }
        }
    }
}

#[test]
fn range_relations_at_the_top_of_the_address_space() {
    // The highest page that a Range can describe ends at usize::MAX (the
    // exclusive limit cannot be 2^64).
    let top = Range::new(Addr(M - 4095), Addr(M)).unwrap();
    assert_eq!(top.size(), Size(4095));
    assert!(top.contains_addr(Addr(M - 1)));
    assert!(!top.contains_addr(Addr(M)));
    let all = Range::new(Addr(0), Addr(M)).unwrap();
    assert!(all.contains(&top) && all.overlaps(&top) && top.overlaps(&all));
    assert!(all.contains(&Range::empty(Addr(M))), "empty at the limit lies inside");
    assert!(!all.contains_addr(Addr(M)));
    assert_eq!(all.page_index(Addr(M), Size(4096)), Some(M / 4096));
    assert_eq!(all.page_index(Addr(M), Size(0)), None);
    assert_eq!(all.page_index(Addr(M), Size(1)), Some(M));
    assert!(!top.is_aligned(Size(4096)));
    assert!(!top.is_aligned(Size(0)));
    assert!(!Range::empty(Addr(0)).is_aligned(Size(3)));
    assert_eq!(Range::empty(Addr(5)).pages(Size(4096)), Some(Pages(0)));
    // Adjacent, touching ranges do not overlap.
    let a = Range::new(Addr(0x1000), Addr(0x2000)).unwrap();
    let b = Range::new(Addr(0x2000), Addr(0x3000)).unwrap();
    assert!(!a.overlaps(&b) && !b.overlaps(&a));
    assert!(!a.contains(&b));
    assert!(a.contains(&Range::empty(Addr(0x2000))));
    assert!(!a.contains(&Range::empty(Addr(0x2001))));
    assert_eq!(format!("{a}"), "[0x1000, 0x2000)");
    assert_eq!(format!("{a:?}"), "[0x1000, 0x2000)");
}

#[test]
fn size_display_uses_the_largest_unit_reached_with_truncated_decimals() {
    let cases: &[(usize, &str)] = &[
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1025, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (2047, "1.99 KiB"),
        ((1 << 20) - 1, "1023.99 KiB"),
        (1 << 20, "1 MiB"),
        ((1 << 30) + (1 << 20), "1.00 GiB"),
        (1 << 40, "1 TiB"),
        (1 << 50, "1 PiB"),
        (1 << 60, "1024 PiB"),
        (M, "16383.99 PiB"),
        (M - (1 << 50) + 1, "16383 PiB"),
    ];
    for &(n, s) in cases {
        assert_eq!(format!("{}", Size(n)), s, "{n:#x}");
    }
    assert_eq!(format!("{:?}", Size(4096)), "0x1000");
    assert_eq!(format!("{}", Addr(M)), "0xffffffffffffffff");
}

#[test]
fn reserve_and_range_checks_name_the_documented_errors() {
    let p = Size(4096);
    assert_eq!(
        check_reserve_args(Size(0), Size(4096), p),
        Err(ShimError::InvalidArgument("reservation size is zero"))
    );
    assert_eq!(
        check_reserve_args(Size(4097), Size(4096), p),
        Err(ShimError::Misaligned { value: 4097, align: 4096 })
    );
    assert!(matches!(
        check_reserve_args(Size(4096), Size(0), p),
        Err(ShimError::InvalidArgument(_))
    ));
    assert!(matches!(
        check_reserve_args(Size(4096), Size(12288), p),
        Err(ShimError::InvalidArgument(_))
    ));
    // One below the page size means the page size.
    for a in [1, 2, 64, 2048] {
        assert_eq!(check_reserve_args(Size(4096), Size(a), p), Ok(p));
    }
    assert_eq!(check_reserve_args(Size(4096), Size(1 << 63), p), Ok(Size(1 << 63)));
    assert_eq!(check_reserve_args(Size(M - 4095), Size(1 << 30), p), Ok(Size(1 << 30)));
    // Page ranges.
    assert!(matches!(
        check_page_range(Range::empty(Addr(0)), p),
        Err(ShimError::InvalidArgument(_))
    ));
    assert_eq!(
        check_page_range(Range::new(Addr(1), Addr(4096)).unwrap(), p),
        Err(ShimError::Misaligned { value: 1, align: 4096 })
    );
    assert_eq!(
        check_page_range(Range::new(Addr(4096), Addr(M)).unwrap(), p),
        Err(ShimError::Misaligned { value: M, align: 4096 })
    );
    assert_eq!(check_page_range(Range::new(Addr(0), Addr(M - 4095)).unwrap(), p), Ok(()));
    // A page size of 1 GiB.
    let g = Size(1 << 30);
    assert_eq!(check_reserve_args(Size(1 << 30), Size(1 << 21), g), Ok(g));
    assert_eq!(
        check_reserve_args(Size(1 << 21), Size(1 << 21), g),
        Err(ShimError::Misaligned { value: 1 << 21, align: 1 << 30 })
    );
}

#[test]
fn may_have_changed_splits_refusals_from_failures() {
    let r = Range::new(Addr(0), Addr(4096)).unwrap();
    let refusals = [
        ShimError::Overflow,
        ShimError::Misaligned { value: 1, align: 2 },
        ShimError::InvalidArgument("x"),
        ShimError::NotReserved(r),
        ShimError::AlreadyMapped(r),
        ShimError::NotMapped(r),
        ShimError::Unflushed(r),
        ShimError::OutOfAddressSpace { size: 1 },
    ];
    for e in refusals {
        assert!(!e.may_have_changed(), "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    for op in Op::ALL {
        for e in [ShimError::Os { op, errno: 12 }, ShimError::Injected { op }] {
            assert!(e.may_have_changed(), "{e:?}");
            assert!(e.to_string().contains(op.name()), "{e}");
        }
    }
    assert!(ShimError::OutOfMemory(r).may_have_changed());
    assert_eq!(ShimError::from(Overflow), ShimError::Overflow);
    // Op bits are distinct and in discriminant order.
    for (i, op) in Op::ALL.iter().enumerate() {
        assert_eq!(*op as usize, i);
        assert_eq!(op.bit(), 1 << i);
        assert_eq!(op.to_string(), op.name());
    }
    // Display of the size in OutOfAddressSpace uses Size's units.
    assert_eq!(
        ShimError::OutOfAddressSpace { size: 1 << 40 }.to_string(),
        "no room to reserve 1 TiB of address space"
    );
    let _: &dyn std::error::Error = &ShimError::Overflow;
    let _: &dyn std::error::Error = &Overflow;
}
