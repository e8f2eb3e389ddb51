//! Round 26 (outside reviewer): `MmapBackend` against the real kernel, seen
//! through `procfs` (what `/proc/self/maps` says is mapped, with which
//! protection, and what is resident): the documented errors at the
//! extremes, reservations that commit nothing, the VMA-count and
//! `resident_in` claims, refusals that change nothing.
//! This binary's tests run one at a time (`serial`): VMA counts
//! and residency see every mapping of the process, and `mmap` may place
//! two tests' reservations side by side.
#![allow(clippy::needless_range_loop)] // models index several arrays by page

mod outside_r26_mmap_common;

use vmspace_shim::{PageOps, Protection, Range, ShimError, Size};
use vmspace_user::procfs::{resident_in, vma_count, vmas_in};
use vmspace_user::{MmapBackend, UnmapStrategy};

use outside_r26_mmap_common::{r, serial};

#[test]
fn reserve_is_aligned_inaccessible_and_commits_nothing() {
    let _serial = serial();
    for strat in [UnmapStrategy::Decommit, UnmapStrategy::Replace] {
        let be = MmapBackend::with_strategy(strat);
        assert_eq!(be.strategy(), strat);
        let p = be.page_size().0;
        for &(size, align) in &[
            (p, 1usize),
            (p, p),
            (3 * p, 1 << 16),
            (5 * p, 1 << 21),
            (1 << 21, 1 << 21),
            (p, 1 << 30),
            (1 << 30, 1 << 30),
            (1 << 40, 1 << 21),
        ] {
            let x = be.reserve(Size(size), Size(align)).unwrap();
            assert_eq!(x.size(), Size(size));
            assert!(x.base().is_aligned(Size(align.max(p))), "{strat:?} {x:?} align {align:#x}");
            let vmas = vmas_in(x).unwrap();
            assert!(!vmas.is_empty());
            for v in &vmas {
                assert_eq!(v.perms, "---p", "{strat:?} {x:?}: {vmas:?}");
            }
            // Covered entirely.
            assert!(
                vmas[0].range.base() <= x.base() && vmas.last().unwrap().range.limit() >= x.limit()
            );
            assert!(vmas.windows(2).all(|w| w[0].range.limit() == w[1].range.base()));
            assert_eq!(resident_in(x).unwrap(), Size(0), "{strat:?} {x:?} commits memory");
            // SAFETY: ours, untouched.
            unsafe { be.release(x) }.unwrap();
            assert!(vmas_in(x).unwrap().is_empty(), "{strat:?} release left {:?}", vmas_in(x));
        }
    }
}

#[test]
fn reserve_errors_at_the_extremes() {
    let _serial = serial();
    let be = MmapBackend::new();
    let p = be.page_size().0;
    assert!(matches!(be.reserve(Size(0), Size(p)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(be.reserve(Size(p + 1), Size(p)), Err(ShimError::Misaligned { .. })));
    assert!(matches!(be.reserve(Size(p), Size(0)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(be.reserve(Size(p), Size(3 * p)), Err(ShimError::InvalidArgument(_))));
    let before = vma_count().unwrap();
    let huge = usize::MAX & !(p - 1);
    for (size, align) in [
        (huge, p),
        (huge, 2 * p),
        (huge, 1 << 63),
        (p, 1 << 63),
        (p, 1 << 62),
        (1 << 62, p),
        (1 << 63, 1 << 63),
    ] {
        assert_eq!(
            be.reserve(Size(size), Size(align)),
            Err(ShimError::OutOfAddressSpace { size }),
            "size {size:#x} align {align:#x}"
        );
    }
    // Under AddressSanitizer (`make asan` sets `VMSPACE_ASAN`) its allocator
    // maps memory of its own meanwhile (a CI run once saw more than two new
    // mappings there): the count is measured without it only.
    if std::env::var_os("VMSPACE_ASAN").is_none() {
        assert!(vma_count().unwrap() <= before + 2, "failed reserves left mappings");
    }
}

/// mmap.rs / README: with `Decommit`, "VMAs stay exactly one a run and one
/// a gap (2 x runs + 1 when no run touches either end of the reservation)".
#[test]
fn decommit_vmas_are_exactly_runs_plus_gaps() {
    let _serial = serial();
    const N: usize = 256;
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let x = be.reserve(Size(N * p), Size(p)).unwrap();
    let mut mapped = [false; N];
    let mut seed = 99u64;
    for step in 0..3000 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let i = (seed >> 33) as usize % N;
        let pr = r(x.base().0 + i * p, p);
        // SAFETY: one page of our reservation, in the state each call asks.
        unsafe {
            if mapped[i] {
                be.unmap(pr).unwrap();
            } else {
                be.map(pr).unwrap();
                // Touch it while isolated (the case Replace cannot merge).
                pr.base().as_ptr::<u8>().write(1);
            }
        }
        mapped[i] = !mapped[i];
        // Runs and gaps of the model.
        let pieces = 1 + mapped.windows(2).filter(|w| w[0] != w[1]).count();
        // VMAs wholly inside the reservation, plus the ones at the ends.
        let vmas = vmas_in(x).unwrap();
        assert_eq!(
            vmas.len(),
            pieces,
            "step {step}: {} VMAs for {pieces} runs and gaps",
            vmas.len()
        );
    }
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
}

/// procfs.rs: `resident_in` is "exact for ranges that are whole VMAs, such
/// as a reservation". Two reservations side by side (mmap places them so)
/// whose mapped runs meet at the boundary share one VMA, so a reservation
/// is not whole VMAs: the neighbour's resident page is counted.
#[test]
fn resident_in_a_reservation_counts_only_its_own_pages() {
    let _serial = serial();
    let mut wrong = Vec::new();
    for strat in [UnmapStrategy::Decommit, UnmapStrategy::Replace] {
        let be = MmapBackend::with_strategy(strat);
        let p = be.page_size().0;
        let mut held = Vec::new();
        let mut pair = None;
        for _ in 0..16 {
            let x = be.reserve(Size(4 * p), Size(p)).unwrap();
            if let Some(&prev) = held.last() {
                let prev: Range = prev;
                if x.limit() == prev.base() {
                    pair = Some((x, prev));
                    held.push(x);
                    break;
                }
            }
            held.push(x);
        }
        let (low, high) = pair.expect("no two adjacent reservations");
        // SAFETY: pages of our reservations, mapped before written.
        unsafe {
            let first_of_high = r(high.base().0, p);
            be.map(first_of_high).unwrap();
            std::ptr::write_bytes(high.base().as_ptr::<u8>(), 7, p);
            let last_of_low = r(low.limit().0 - p, p);
            be.map(last_of_low).unwrap();
        }
        let vmas = vmas_in(low).unwrap();
        let res = resident_in(low).unwrap();
        for x in held {
            // SAFETY: ours.
            unsafe { be.release(x) }.unwrap();
        }
        if res != Size(0) {
            wrong.push(format!(
                "{strat:?}: nothing of {low:?} was touched, resident_in says {res:?}; VMAs {vmas:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A map of a range part of which is not mapped at all is `NotReserved` (a
/// refusal: nothing changed); the same for ranges at address 0 and at the
/// top of the address space.
#[test]
fn map_outside_reservations_is_a_refusal_that_changes_nothing() {
    let _serial = serial();
    let be = MmapBackend::new();
    let p = be.page_size().0;
    let x = be.reserve(Size(8 * p), Size(p)).unwrap();
    // Make a hole in the middle of our own reservation (pages 4..6).
    // SAFETY: our own reservation's pages, unused.
    assert_eq!(unsafe { libc::munmap((x.base().0 + 4 * p) as *mut _, 2 * p) }, 0);
    let before = vmas_in(x).unwrap();
    for range in [
        r(x.base().0 + 2 * p, 4 * p), // mapped then hole
        r(x.base().0 + 4 * p, 4 * p), // hole then mapped
        r(x.base().0, 8 * p),         // across
    ] {
        // SAFETY: the range is ours or a hole we made; nothing else.
        let e = unsafe { be.map(range) }.unwrap_err();
        assert_eq!(e, ShimError::NotReserved(range), "{range:?}");
        assert!(!e.may_have_changed());
        assert_eq!(vmas_in(x).unwrap(), before, "a refused map of {range:?} changed the VMAs");
    }
    // Address 0 and the top of the (64-bit) address space are never ours.
    for range in [r(0, p), r(usize::MAX - 2 * p + 1, p), r(1 << 47, p)] {
        // SAFETY: nothing is mapped there (mmap_min_addr, kernel space).
        let e = unsafe { be.map(range) }.unwrap_err();
        assert_eq!(e, ShimError::NotReserved(range), "{range:?}");
    }
    // Empty and misaligned ranges: argument errors for every call.
    let empty = Range::empty(x.base());
    let mis = r(x.base().0 + 1, p);
    // SAFETY: refused before any system call.
    unsafe {
        for res in
            [be.map(empty), be.unmap(empty), be.protect(empty, Protection::Read), be.release(empty)]
        {
            assert!(matches!(res, Err(ShimError::InvalidArgument(_))), "{res:?}");
        }
        for res in [be.map(mis), be.unmap(mis), be.protect(mis, Protection::Read), be.release(mis)]
        {
            assert_eq!(res, Err(ShimError::Misaligned { value: x.base().0 + 1, align: p }));
        }
        be.release(x).unwrap();
    }
}

/// Unmap frees the memory (both strategies) and the next map reads zero;
/// protect keeps contents.
#[test]
fn unmap_frees_memory_and_protect_keeps_contents() {
    let _serial = serial();
    for strat in [UnmapStrategy::Decommit, UnmapStrategy::Replace] {
        let be = MmapBackend::with_strategy(strat);
        let p = be.page_size().0;
        let x = be.reserve(Size(64 * p), Size(p)).unwrap();
        // SAFETY: our reservation, mapped before touched, readable when read.
        unsafe {
            be.map(x).unwrap();
            std::ptr::write_bytes(x.base().as_ptr::<u8>(), 0x5a, 64 * p);
            assert_eq!(resident_in(x).unwrap(), Size(64 * p), "{strat:?}");
            be.protect(x, Protection::None).unwrap();
            be.protect(x, Protection::Read).unwrap();
            assert_eq!(*x.base().as_ptr::<u8>().add(63 * p), 0x5a);
            assert_eq!(resident_in(x).unwrap(), Size(64 * p));
            be.unmap(x).unwrap();
            assert_eq!(resident_in(x).unwrap(), Size(0), "{strat:?}: unmap kept memory");
            be.map(x).unwrap();
            assert!((0..64).all(|i| *x.base().as_ptr::<u8>().add(i * p) == 0));
            be.release(x).unwrap();
        }
    }
}
