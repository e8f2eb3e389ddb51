use vmspace_shim::align::*;
use vmspace_shim::{Addr, Overflow, Pages, Range, Size};

const TOP: usize = usize::MAX;

#[test]
fn alignment_math_at_the_extremes() {
    assert_eq!(align_up(TOP, 1), Ok(TOP));
    assert_eq!(align_up(TOP, 2), Err(Overflow));
    assert_eq!(align_up(1 << 63, 1 << 63), Ok(1 << 63));
    assert_eq!(align_up((1 << 63) + 1, 1 << 63), Err(Overflow));
    assert_eq!(align_up(1, 0), Err(Overflow));
    assert_eq!(align_down(TOP, 1 << 63), Some(1 << 63));
    assert_eq!(align_down(TOP, 0), None);
    assert_eq!(round_up(TOP, 3), Ok(TOP));
    assert_eq!(round_up(TOP, TOP), Ok(TOP));
    assert_eq!(round_up(1, TOP), Ok(TOP));
    assert_eq!(round_up(TOP - 1, 2), Ok(TOP - 1));
    assert_eq!(round_up(TOP, 2), Err(Overflow));
    assert_eq!(round_up(5, 0), Err(Overflow));
    assert_eq!(align_up_with_phase(TOP, 1 << 63, (1 << 63) - 1), Ok(TOP));
    assert_eq!(align_up_with_phase(0, 1 << 63, (1 << 63) - 1), Ok((1 << 63) - 1));
    assert_eq!(align_up_with_phase(1 << 63, 1 << 63, 1), Err(Overflow).or(Ok((1 << 63) + 1)));
    assert_eq!(align_up_with_phase(TOP, 1 << 63, 0), Err(Overflow));
    assert_eq!(align_up_with_phase(0, 1 << 63, 1 << 63), Err(Overflow));
    assert_eq!(align_down_with_phase(TOP, 1 << 63, (1 << 63) - 1), Some(TOP));
    assert_eq!(align_down_with_phase(0, 1 << 63, 1), None);
    assert_eq!(align_down_with_phase(TOP - 1, 1 << 63, (1 << 63) - 1), Some((1 << 63) - 1));
    assert_eq!(next_boundary(TOP, 1 << 63), Err(Overflow));
    assert_eq!(next_boundary(0, 1 << 63), Ok(1 << 63));
    assert_eq!(next_boundary((1 << 63) - 1, 1 << 63), Ok(1 << 63));
    assert!(!crosses_boundary(0, 1 << 63, 1 << 63));
    assert!(crosses_boundary(1, 1 << 63, 1 << 63));
    assert!(!crosses_boundary(1 << 63, TOP - (1 << 63), 1 << 63));
    assert!(crosses_boundary(TOP, 2, 1 << 63), "wraps: can never be placed");
    assert!(!crosses_boundary(TOP, 1, 1 << 63));
    assert_eq!(log2_ceil(TOP), Some(64));
    assert_eq!(log2_ceil(1 << 63), Some(63));
    assert_eq!(log2_ceil((1 << 63) + 1), Some(64));
    assert_eq!(log2_floor(TOP), Some(63));
    assert_eq!(log2_exact(TOP), None);
    assert_eq!(log2_ceil(0), None);
    assert_eq!(log2_ceil(1), Some(0));
    assert_eq!(PowerOfTwo::new(1 << 63).map(|p| p.align_up(TOP)), Some(Err(Overflow)));
    assert_eq!(PowerOfTwo::new(1 << 63).map(|p| p.align_up(1)), Some(Ok(1 << 63)));
}

/// DEFECT. "Whether the two ranges share at least one address"
/// (shim/src/range.rs, `Range::overlaps`): an empty range holds no
/// address, so it overlaps nothing, even inside another range.
#[test]
fn an_empty_range_overlaps_nothing() {
    let r = Range::new(Addr(0), Addr(TOP)).unwrap();
    for a in [0usize, 5, TOP - 1, TOP] {
        let e = Range::empty(Addr(a));
        assert!(!r.overlaps(&e), "[0, MAX) and the empty range at {a:#x}");
        assert!(!e.overlaps(&r), "the empty range at {a:#x} and [0, MAX)");
        assert!(!e.overlaps(&e));
    }
}

#[test]
fn typed_values_at_the_extremes() {
    assert_eq!(format!("{}", Size(TOP)), "16383.99 PiB");
    assert_eq!(format!("{}", Size(1 << 63)), "8192 PiB");
    assert_eq!(format!("{}", Size(1)), "1 B");
    assert_eq!(Size(TOP).round_up(Size(TOP)), Ok(Size(TOP)));
    assert_eq!(Size(TOP).align_up(Size(1 << 63)), Err(Overflow));
    assert_eq!(Size(TOP).to_pages(Size(1)), Some(Pages(TOP)));
    assert_eq!(Size(TOP).to_pages(Size(TOP)), Some(Pages(1)));
    assert_eq!(Pages(TOP).to_size(Size(1)), Ok(Size(TOP)));
    assert_eq!(Pages(2).to_size(Size(1 << 63)), Err(Overflow));
    assert_eq!(Addr(TOP).align_down(Size(1 << 63)), Ok(Addr(1 << 63)));
    assert_eq!(Addr(TOP).align_down(Size(3)), Err(Overflow));
    assert_eq!(Addr(0).checked_sub(Size(1)), Err(Overflow));
    assert_eq!(Addr(0).offset_from(Addr(TOP)), Err(Overflow));
    assert_eq!(Addr(TOP).offset_from(Addr(0)), Ok(Size(TOP)));
    let r = Range::new(Addr(0), Addr(TOP)).unwrap();
    assert_eq!(r.size(), Size(TOP));
    assert_eq!(r.pages(Size(1)), Some(Pages(TOP)));
    assert_eq!(r.page_index(Addr(TOP), Size(1)), Some(TOP));
    assert_eq!(r.page_index(Addr(TOP), Size(0)), None);
    assert!(!r.contains_addr(Addr(TOP)));
    assert!(r.contains(&Range::empty(Addr(TOP))));
    assert_eq!(Range::from_size(Addr(TOP), Size(0)), Ok(Range::empty(Addr(TOP))));
    assert_eq!(Range::from_size(Addr(1), Size(TOP)), Err(Overflow));
}
