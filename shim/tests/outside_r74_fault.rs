//! Outside review r74: `FaultInjector::set_error` with `FaultShape::PartWay`
//! and `clear()`.
#![cfg(feature = "sim")]

use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, InjectedError, Op, PageOps, Protection, Range, ShimError, Size,
};

const PAGE: usize = 256;

/// A shortage or OS error injected on a protect/unmap under PartWay still
/// changes a prefix first (never all), and says it may have changed it.
#[test]
fn part_way_with_each_error_kind() {
    let mut buf = vec![0u8; 64 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let f = FaultInjector::new(&sim);
    let res = f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
    f.set_shape(FaultShape::PartWay);
    for error in [InjectedError::Shortage, InjectedError::Os(12)] {
        f.set_error(error);
        for unmap in [false, true] {
            // SAFETY: the simulator's own reservation, nothing reads it.
            unsafe { f.map(res) }.unwrap();
            f.fail_nth(1);
            let before = f.changed_part_way();
            // SAFETY: as above; mapped.
            let e = unsafe {
                if unmap {
                    f.unmap(res)
                } else {
                    f.protect(res, Protection::Read)
                }
            }
            .unwrap_err();
            assert!(e.may_have_changed(), "{e:?}");
            match error {
                InjectedError::Shortage => assert_eq!(e, ShimError::OutOfMemory(res)),
                _ => assert!(matches!(e, ShimError::Os { errno: 12, .. })),
            }
            assert_eq!(f.changed_part_way(), before + 1);
            let first = sim.page_state(res.base());
            let last = sim.page_state(Addr(res.base().0 + 7 * PAGE));
            assert_ne!(first, Some(PageState::Mapped(Protection::ReadWrite)));
            assert_eq!(last, Some(PageState::Mapped(Protection::ReadWrite)));
            // SAFETY: as above.
            unsafe { f.unmap(res) }.unwrap();
        }
    }
    f.clear();
    assert_eq!((f.error(), f.shape()), (InjectedError::Marker, FaultShape::Clean));
    f.only(&[Op::Map]);
    f.fail_nth(1);
    let one = Range::from_size(res.base(), Size(PAGE)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { f.map(one) }, Err(ShimError::Injected { op: Op::Map }));
    // SAFETY: as above.
    unsafe { f.release(res) }.unwrap();
}

/// `Os(0)` is accepted and returned as an OS error numbered 0 (no such
/// errno): the docs do not say what a zero or positive errno means.
#[test]
fn os_zero_is_taken_as_is() {
    let mut buf = vec![0u8; 16 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let f = FaultInjector::new(&sim);
    f.set_error(InjectedError::Os(0));
    f.fail_nth(1);
    assert_eq!(f.reserve(Size(PAGE), Size(PAGE)), Err(ShimError::Os { op: Op::Reserve, errno: 0 }));
}
