//! Round 26 (outside reviewer): `SimBackend`, `Placed` and `FaultInjector`
//! against their documentation: making a simulator (page sizes up
//! to 1 GiB, the buffer, the region after the table at every offset),
//! `Placed` buffers, `reserve`'s argument checks and alignment extremes.

mod outside_r26_shim_sim_common;

use vmspace_shim::sim::{at_offsets, PageState, Placed, SimBackend, OFFSETS, PLACEMENT};
use vmspace_shim::{Addr, PageOps, Protection, ShimError, Size};

use outside_r26_shim_sim_common::{r, PAGE};

#[test]
fn new_checks_the_page_size_and_the_buffer() {
    let mut buf = vec![0u8; 64 * 1024];
    for bad in [0usize, 1, 2, 32, 63, 65, 96, 3 << 10, usize::MAX, (1 << 63) + 1] {
        assert!(
            matches!(SimBackend::new(&mut buf, bad), Err(ShimError::InvalidArgument(_))),
            "page size {bad}"
        );
    }
    // Too small for one page after the table.
    for len in [0usize, 1, 63, 64, 100] {
        let mut small = vec![0u8; len];
        assert!(SimBackend::new(&mut small, 64).is_err(), "len {len}");
    }
    let mut empty: [u8; 0] = [];
    assert!(matches!(SimBackend::new(&mut empty, 64), Err(ShimError::InvalidArgument(_))));
    // Page size 64, the smallest allowed.
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let reg = sim.region();
    assert!(reg.is_aligned(Size(64)) && !reg.is_empty());
    assert_eq!(sim.name(), "sim");
    assert_eq!(sim.page_size(), Size(64));
}

#[test]
fn region_lies_inside_the_buffer_after_the_table_at_every_offset() {
    for page in [64usize, 256, 4096] {
        at_offsets(OFFSETS.len(), 64 * 4096 + 123, |off, p| {
            let bytes = p.bytes();
            let (lo, hi) = (bytes.as_ptr() as usize, bytes.as_ptr() as usize + bytes.len());
            assert_eq!(lo % PLACEMENT, off);
            let sim = SimBackend::new(bytes, page).unwrap();
            let reg = sim.region();
            assert!(reg.base().0 >= lo && reg.limit().0 <= hi, "page {page} off {off}");
            assert!(reg.is_aligned(Size(page)));
            let n = reg.size().0 / page;
            // The table (one byte a page) fits before the region.
            assert!(reg.base().0 - lo >= n, "page {page} off {off}: table does not fit");
            // Everything is free.
            for i in 0..n {
                assert_eq!(sim.page_state(Addr(reg.base().0 + i * page)), Some(PageState::Free));
            }
            assert_eq!(sim.page_state(reg.limit()), None);
            assert_eq!(sim.page_state(Addr(reg.base().0.wrapping_sub(1))), None);
            assert_eq!(sim.page_state(Addr(usize::MAX)), None);
            // The whole region can be reserved at once, and no more.
            let all = sim.reserve(reg.size(), Size(page)).unwrap();
            assert_eq!(all, reg);
            assert!(matches!(
                sim.reserve(Size(page), Size(page)),
                Err(ShimError::OutOfAddressSpace { size }) if size == page
            ));
            // SAFETY: ours, untouched.
            unsafe { sim.release(all) }.unwrap();
        });
    }
}

#[test]
fn placed_buffers() {
    let mut p = Placed::new(0, 0);
    assert_eq!(p.bytes().len(), 0);
    let mut p = Placed::new(1000, 3);
    assert_eq!(p.bytes().as_ptr() as usize % PLACEMENT, 3);
    p.bytes()[999] = 7;
    assert!(p.fresh().iter().all(|&b| b == 0));
    let mut n = 0;
    at_offsets(100, 10, |_, _| n += 1);
    assert_eq!(n, OFFSETS.len());
}

#[test]
fn reserve_argument_errors_and_alignment_extremes() {
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    assert!(matches!(sim.reserve(Size(0), Size(PAGE)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(sim.reserve(Size(PAGE + 1), Size(PAGE)), Err(ShimError::Misaligned { .. })));
    assert!(matches!(sim.reserve(Size(PAGE), Size(3 * PAGE)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(sim.reserve(Size(PAGE), Size(0)), Err(ShimError::InvalidArgument(_))));
    for big in [1usize << 40, 1 << 62, 1 << 63] {
        assert!(
            matches!(sim.reserve(Size(PAGE), Size(big)), Err(ShimError::OutOfAddressSpace { .. })),
            "align {big:#x}"
        );
    }
    let huge = usize::MAX & !(PAGE - 1);
    assert_eq!(
        sim.reserve(Size(huge), Size(PAGE)),
        Err(ShimError::OutOfAddressSpace { size: huge })
    );
    assert_eq!(
        sim.reserve(Size(huge), Size(1 << 63)),
        Err(ShimError::OutOfAddressSpace { size: huge })
    );
    // Alignment below the page: the page.
    let a = sim.reserve(Size(PAGE), Size(1)).unwrap();
    assert!(a.base().is_aligned(Size(PAGE)));
    // Every power-of-two alignment the region can hold is honoured, and no
    // two live reservations overlap.
    let mut live = vec![a];
    for shift in 8..=16 {
        let al = 1usize << shift;
        if let Ok(x) = sim.reserve(Size(3 * PAGE), Size(al)) {
            assert!(x.base().is_aligned(Size(al)), "{x:?} not aligned to {al:#x}");
            assert!(sim.region().contains(&x));
            for y in &live {
                assert!(!x.overlaps(y), "{x:?} overlaps {y:?}");
            }
            live.push(x);
        }
    }
    let st = sim.stats();
    assert_eq!(st.reservations, live.len());
    assert_eq!(st.reserved_pages, 1 + 3 * (live.len() - 1));
    assert_eq!(st.mapped_pages, 0);
    for x in live {
        // SAFETY: ours.
        unsafe { sim.release(x) }.unwrap();
    }
    assert_eq!(sim.stats().reservations, 0);
}

#[test]
fn gigabyte_pages() {
    // 1 GiB pages: a 3 GiB buffer (untouched: calloc's pages stay virtual).
    const G: usize = 1 << 30;
    let mut buf = vec![0u8; 3 * G + 4096];
    let sim = SimBackend::new(&mut buf, G).unwrap();
    assert_eq!(sim.page_size(), Size(G));
    let reg = sim.region();
    assert!(reg.is_aligned(Size(G)) && reg.size().0 >= G, "{reg:?}");
    assert!(matches!(sim.reserve(Size(G / 2), Size(G)), Err(ShimError::Misaligned { .. })));
    let x = sim.reserve(Size(G), Size(4096)).unwrap();
    assert!(x.is_aligned(Size(G)));
    assert_eq!(sim.page_state(x.base()), Some(PageState::Reserved));
    assert_eq!(sim.page_state(Addr(x.limit().0 - 1)), Some(PageState::Reserved));
    // A sub-page range is misaligned for every operation.
    let half = r(x.base().0, G / 2);
    // SAFETY: refused before anything happens (the simulator checks).
    unsafe {
        assert!(matches!(sim.map(half), Err(ShimError::Misaligned { .. })));
        assert!(matches!(sim.unmap(half), Err(ShimError::Misaligned { .. })));
        assert!(matches!(sim.protect(half, Protection::Read), Err(ShimError::Misaligned { .. })));
        assert!(matches!(sim.release(half), Err(ShimError::Misaligned { .. })));
    }
}
