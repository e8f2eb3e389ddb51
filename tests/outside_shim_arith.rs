//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the shim's checked arithmetic (`align`, `Addr`, `Size`,
//! `Pages`, `Range`) against 128-bit references at and near the largest
//! values, and the simulated backend given ranges at the ends of the
//! address space.

use vmspace_shim::align::{
    align_down, align_down_with_phase, align_up, align_up_with_phase, crosses_boundary, is_aligned,
    is_power_of_two, log2_ceil, log2_exact, log2_floor, next_boundary, round_up, PowerOfTwo,
};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Overflow, PageOps, Pages, Protection, Range, ShimError, Size};

const MAX: u128 = usize::MAX as u128;

fn values() -> Vec<usize> {
    let mut v = vec![0, 1, 2, 3, 7, 8, 9, 255, 256, 4095, 4096, 4097, 12345];
    for s in [12u32, 20, 30, 47, 48, 62, 63] {
        let p = 1usize << s;
        v.extend([p - 1, p, p + 1, p.wrapping_mul(3)]);
    }
    for d in 0..20 {
        v.push(usize::MAX - d);
        v.push(usize::MAX - 4096 * d);
        v.push((usize::MAX - 4095).wrapping_sub(4096 * d) + 5);
    }
    v
}

fn aligns() -> Vec<usize> {
    let mut a: Vec<usize> = (0..usize::BITS).map(|s| 1usize << s).collect();
    a.extend([0, 3, 6, 12, 4095, usize::MAX]);
    a
}

fn fit(x: u128) -> Result<usize, Overflow> {
    if x <= MAX {
        Ok(x as usize)
    } else {
        Err(Overflow)
    }
}

#[test]
fn align_functions_match_128_bit_references() {
    for x in values() {
        for a in aligns() {
            let pow = a != 0 && a.count_ones() == 1;
            assert_eq!(is_power_of_two(a), pow);
            let (xx, aa) = (x as u128, a as u128);
            assert_eq!(is_aligned(x, a), pow && x % a == 0, "is_aligned({x:#x}, {a:#x})");
            assert_eq!(align_down(x, a), pow.then(|| x - x % a), "align_down({x:#x}, {a:#x})");
            let up = if pow { fit(xx.div_ceil(aa) * aa) } else { Err(Overflow) };
            assert_eq!(align_up(x, a), up, "align_up({x:#x}, {a:#x})");
            if let Some(p) = PowerOfTwo::new(a) {
                assert_eq!(p.align_up(x), up);
            } else {
                assert!(!pow);
            }
            let q = if a == 0 { Err(Overflow) } else { fit(xx.div_ceil(aa) * aa) };
            assert_eq!(round_up(x, a), q, "round_up({x:#x}, {a:#x})");
            let nb = if pow { fit((xx / aa + 1) * aa) } else { Err(Overflow) };
            assert_eq!(next_boundary(x, a), nb, "next_boundary({x:#x}, {a:#x})");
            for size in [0usize, 1, 2, 4095, 4096, 4097, usize::MAX / 2, usize::MAX] {
                let ss = size as u128;
                let want = if size == 0 || !pow {
                    false
                } else if xx + ss - 1 > MAX {
                    true
                } else {
                    xx / aa != (xx + ss - 1) / aa
                };
                assert_eq!(
                    crosses_boundary(x, size, a),
                    want,
                    "crosses({x:#x}, {size:#x}, {a:#x})"
                );
            }
            if pow {
                for phase in [0, 1, a / 2, a - 1, a, a + 1] {
                    let pp = phase as u128;
                    let upw = if phase >= a {
                        Err(Overflow)
                    } else {
                        let base = xx - xx % aa;
                        fit(if xx % aa <= pp { base + pp } else { base + aa + pp })
                    };
                    assert_eq!(
                        align_up_with_phase(x, a, phase),
                        upw,
                        "up_phase({x:#x},{a:#x},{phase:#x})"
                    );
                    let downw = if phase >= a {
                        None
                    } else {
                        let base = xx - xx % aa;
                        if xx % aa >= pp {
                            Some((base + pp) as usize)
                        } else if base >= aa {
                            Some((base - aa + pp) as usize)
                        } else {
                            None
                        }
                    };
                    assert_eq!(
                        align_down_with_phase(x, a, phase),
                        downw,
                        "down_phase({x:#x},{a:#x},{phase:#x})"
                    );
                }
            }
        }
        assert_eq!(log2_exact(x), (x != 0 && x.count_ones() == 1).then(|| x.trailing_zeros()));
        assert_eq!(log2_floor(x), (x != 0).then(|| 63 - x.leading_zeros()));
        let ceil = (0..=64u32).find(|&k| (1u128 << k) >= x as u128);
        assert_eq!(log2_ceil(x), if x == 0 { None } else { ceil }, "log2_ceil({x:#x})");
    }
}

#[test]
fn typed_values_match_references() {
    for x in values() {
        for y in values() {
            let (xx, yy) = (x as u128, y as u128);
            assert_eq!(Addr(x).checked_add(Size(y)), fit(xx + yy).map(Addr));
            assert_eq!(Addr(x).checked_sub(Size(y)), x.checked_sub(y).map(Addr).ok_or(Overflow));
            assert_eq!(Addr(x).offset_from(Addr(y)), x.checked_sub(y).map(Size).ok_or(Overflow));
            assert_eq!(Size(x).checked_add(Size(y)), fit(xx + yy).map(Size));
            assert_eq!(Size(x).checked_sub(Size(y)), x.checked_sub(y).map(Size).ok_or(Overflow));
            assert_eq!(Size(x).checked_mul(y), fit(xx * yy).map(Size));
            let tp = if y != 0 && x % y == 0 { Some(Pages(x / y)) } else { None };
            assert_eq!(Size(x).to_pages(Size(y)), tp);
            assert_eq!(Pages(x).to_size(Size(y)), fit(xx * yy).map(Size));
            // Ranges.
            let r = Range::new(Addr(x), Addr(y));
            assert_eq!(r.is_some(), x <= y);
            if let Some(r) = r {
                assert_eq!(r.size(), Size(y - x));
                assert_eq!(r.is_empty(), x == y);
                for a in [x, y, x.wrapping_add(1), y.wrapping_sub(1), 0, usize::MAX] {
                    assert_eq!(r.contains_addr(Addr(a)), x <= a && a < y);
                    for page in [0usize, 1, 4096, 1 << 63] {
                        let want = (a >= x && a <= y && page != 0).then(|| (a - x) / page.max(1));
                        assert_eq!(r.page_index(Addr(a), Size(page)), want);
                    }
                }
            }
            assert_eq!(Range::from_size(Addr(x), Size(y)).is_ok(), xx + yy <= MAX);
        }
    }
}

#[test]
fn range_relations_match_a_set_reference() {
    let pts = [0usize, 1, 5, 8, 9, usize::MAX - 1, usize::MAX];
    let mut ranges = vec![];
    for &a in &pts {
        for &b in &pts {
            if let Some(r) = Range::new(Addr(a), Addr(b)) {
                ranges.push(r);
            }
        }
    }
    for r in &ranges {
        for o in &ranges {
            let (rb, rl, ob, ol) = (r.base().0, r.limit().0, o.base().0, o.limit().0);
            let share = rb.max(ob) < rl.min(ol);
            assert_eq!(r.overlaps(o), share, "{r:?} {o:?}");
            let inside = if ob == ol { rb <= ob && ob <= rl } else { rb <= ob && ol <= rl };
            assert_eq!(r.contains(o), inside, "{r:?} contains {o:?}");
        }
    }
}

#[test]
fn size_display_matches_its_documented_format() {
    let units = [("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    let mut vs = values();
    vs.extend([1536, 1 << 20 | 1 << 10, 3 << 19, (1 << 30) - 1, 1 << 60, 5 << 50]);
    for n in vs {
        let want = units
            .iter()
            .find(|(_, s)| (n as u128) >= 1u128 << s)
            .map(|(name, s)| {
                let u = 1u128 << s;
                let nn = n as u128;
                if nn % u == 0 {
                    format!("{} {name}", nn / u)
                } else {
                    format!("{}.{:02} {name}", nn / u, (nn % u) * 100 / u)
                }
            })
            .unwrap_or(format!("{n} B"));
        assert_eq!(format!("{}", Size(n)), want, "{n:#x}");
    }
}

/// The simulator given ranges at both ends of the address space and of
/// its region: refused (never a panic, never a change).
#[test]
fn sim_refuses_ranges_at_the_ends_of_the_address_space() {
    const PAGE: usize = 4096;
    let mut buf = vec![0u8; 64 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let r = sim.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
    let region = sim.region();
    let top = usize::MAX & !(PAGE - 1);
    let bad = [
        Range::new(Addr(0), Addr(PAGE)).unwrap(),
        Range::new(Addr(top - PAGE), Addr(top)).unwrap(),
        Range::new(r.base(), Addr(top)).unwrap(),
        Range::new(Addr(0), r.limit()).unwrap(),
        Range::new(Addr(PAGE), Addr(top)).unwrap(),
        Range::new(region.base(), region.limit()).unwrap(),
        Range::new(region.limit(), Addr(region.limit().0 + PAGE)).unwrap(),
        Range::new(Addr(region.base().0 - PAGE), region.base()).unwrap(),
        Range::new(r.base(), Addr(r.limit().0 + PAGE)).unwrap(),
    ];
    let before = sim.stats();
    for x in bad {
        // SAFETY: the sim checks every contract and refuses these.
        unsafe {
            assert!(matches!(sim.map(x), Err(ShimError::NotReserved(_))), "map {x:?}");
            assert!(matches!(sim.unmap(x), Err(ShimError::NotReserved(_))), "unmap {x:?}");
            assert!(
                matches!(sim.protect(x, Protection::Read), Err(ShimError::NotReserved(_))),
                "protect {x:?}"
            );
            assert!(matches!(sim.release(x), Err(ShimError::NotReserved(_))), "release {x:?}");
            assert!(matches!(sim.unmap_deferred(x), Err(ShimError::NotReserved(_))), "{x:?}");
        }
        assert!(sim.page_state(x.base()).is_none() || x.base() >= region.base());
    }
    let after = sim.stats();
    assert_eq!(
        (after.reservations, after.mapped_pages),
        (before.reservations, before.mapped_pages)
    );
    assert_eq!(after.refused.iter().sum::<u64>() - before.refused.iter().sum::<u64>(), 9 * 5);
}
