// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_sparse_faults`: the sparse vmalloc backend's own
//! failure paths, reached through the C fault hooks of KUnit builds
//! (`vmspace_fail_page_alloc_in`, `vmspace_fail_sparse_map_in` in
//! `vmalloc_sparse.c`): a page allocation failing at each position of a
//! map of three batches, and `vm_area_map_pages` failing part way in each
//! batch, and the same failure in each batch of `protect`'s mapping back of
//! pages protected to no access. The shim's `FaultInjector` fails a call
//! before the backend acts,
//! so it never reaches these. Each failed map must leave the range with no
//! PTE and give back every page it took (the `PageOps` contract: a failed
//! call changes nothing): the hooks also count the backend's pages out, so
//! one page kept is seen.

#[kernel::macros::kunit_tests(vmspace_sparse_faults)]
mod tests {
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::{report, Outcome};
    use vmspace_shim::{Addr, PageOps, Protection, Range, ShimError, Size};

    use crate::protect::{self, Access};
    use crate::sparse::SparseVmalloc;
    use crate::sys;

    static OPS: SparseVmalloc = SparseVmalloc::new();
    /// Pages in the mapped range: two whole batches of the backend's map loop
    /// (64 pages a batch) and part of a third.
    const PAGES: usize = 150;
    /// Rounds of every failure.
    const ROUNDS: usize = 16;

    /// The backend's pages not given back (counted by the hooks).
    fn pages_out() -> isize {
        // SAFETY: reads a counter; no preconditions.
        unsafe { sys::vmspace_pages_outstanding() as isize }
    }

    fn none_mapped(r: Range, page: Size) -> bool {
        (r.base().0..r.limit().0).step_by(page.0).all(|a| protect::access(a) == Access::None)
    }

    /// Map `r` with the hook `arm(n)` set, then clear it: the map's result.
    fn map_with(r: Range, arm: unsafe extern "C" fn(i32), n: i32) -> Result<(), ShimError> {
        // SAFETY: sets a counter the next allocations or maps read.
        unsafe { arm(n) };
        // SAFETY: `r` is our live reservation, all unmapped.
        let got = unsafe { OPS.map(r) };
        // SAFETY: as above.
        unsafe { arm(0) };
        got
    }

    /// Fail the map of `r` at each of `positions` with `arm`, `ROUNDS`
    /// times: each of the first `failing` refused with `want`, nothing
    /// left mapped; the positions after them are past the map's last call,
    /// and it maps (then unmapped). No page of the backend's kept.
    fn fail_at_each(
        arm: unsafe extern "C" fn(i32),
        positions: &[i32],
        failing: usize,
        want: fn(&ShimError) -> bool,
    ) -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(PAGES * page.0), page).context("reserve")?;
        let before = pages_out();
        let mut failed = 0;
        let result = (|| {
            for _ in 0..ROUNDS {
                for &n in positions {
                    match map_with(r, arm, n) {
                        Err(e) if want(&e) => {
                            failed += 1;
                            ensure(none_mapped(r, page), "a failed map left pages mapped")?;
                        }
                        Err(_) => return ensure(false, "a failed map answered another error"),
                        Ok(()) => {
                            // SAFETY: just mapped; nothing uses it.
                            unsafe { OPS.unmap(r) }.context("unmap")?;
                        }
                    }
                }
            }
            Ok(())
        })();
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { OPS.release(r) }.context("release")?;
        result?;
        let after = pages_out();
        kernel::pr_info!("sparse faults: {failed} failed maps; backend pages out {before} before, {after} after\n");
        ensure(failed == ROUNDS * failing, "an injected failure was not reached")?;
        ensure(after == before, "a failed map did not give its pages back")
    }

    /// A page allocation failing at the first, inside the first batch, at
    /// the seams of the three batches, inside the third, and at the last
    /// page; past the last, the map succeeds.
    #[test]
    fn page_allocation_failing_at_each_position() -> Outcome {
        let positions = [1, 2, 40, 64, 65, 66, 129, 140, PAGES as i32, PAGES as i32 + 1];
        report(fail_at_each(sys::vmspace_fail_page_alloc_in, &positions, 9, |e| {
            matches!(e, ShimError::OutOfMemory(_))
        }))
    }

    /// `vm_area_map_pages` failing part way (half its batch mapped) in the
    /// first, second and third batch.
    #[test]
    fn map_pages_failing_part_way_in_each_batch() -> Outcome {
        report(fail_at_each(sys::vmspace_fail_sparse_map_in, &[1, 2, 3, 4], 3, |e| {
            matches!(e, ShimError::Os { errno, .. } if *errno == kernel::error::code::ENOMEM.to_errno())
        }))
    }

    /// The word each page of the protect case holds at its start.
    fn word_for(addr: usize) -> u64 {
        (addr as u64) ^ 0x5a5a_0000_0000_5a5a
    }

    /// Pages `[from, to)` of `r`.
    fn pages(r: Range, page: Size, from: usize, to: usize) -> Range {
        Range::from_size(Addr(r.base().0 + from * page.0), Size((to - from) * page.0))
            .unwrap_or(Range::empty(r.base()))
    }

    /// The protect case's layout: pages `[0, 70)` and `[74, 140)` of `r`
    /// protected to no access (stashed), `[70, 74)` and `[140, PAGES)`
    /// left read-write, so `protect`'s mapping back takes four maps (64, 6,
    /// 64 and 2 pages) and its undo must skip the pages it never stashed.
    fn is_hidden(i: usize) -> bool {
        !(70..74).contains(&i) && i < 140
    }

    /// Every page of `r` as the layout says: hidden pages without a PTE,
    /// stashed with their word; the others read-write, their word in place.
    fn as_laid_out(r: Range, page: Size) -> bool {
        (0..PAGES).all(|i| {
            let a = r.base().0 + i * page.0;
            match is_hidden(i) {
                true => protect::access(a) == Access::None && protect::stashed_word(a) == word_for(a),
                // SAFETY: a mapped read-write page of our reservation.
                false => {
                    protect::access(a) == Access::ReadWrite
                        && unsafe { (a as *const u64).read_volatile() } == word_for(a)
                }
            }
        })
    }

    /// Hide the layout's pages of `r` (all mapped read-write).
    fn hide(r: Range, page: Size) -> Result<(), ShimError> {
        for (from, to) in [(0, 70), (74, 140)] {
            // SAFETY: mapped pages of our reservation; nothing reads them.
            unsafe { OPS.protect(pages(r, page, from, to), Protection::None) }?;
        }
        Ok(())
    }

    /// `vm_area_map_pages` failing part way (half its batch mapped) in
    /// each of the four maps of `protect`'s mapping back: refused with
    /// `ENOMEM` and nothing changed (the pages mapped back are taken away
    /// again, the ones never hidden stay mapped read-write, every word
    /// kept); past the last map, the range is read-only with its words.
    #[test]
    fn protect_mapping_back_failing_part_way_in_each_batch() -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(PAGES * page.0), page).context("reserve")?;
        let before = pages_out();
        let mut failed = 0;
        let result = (|| {
            // SAFETY: `r` is our live reservation, all unmapped.
            unsafe { OPS.map(r) }.context("map")?;
            for i in 0..PAGES {
                let a = r.base().0 + i * page.0;
                // SAFETY: a mapped read-write page of ours.
                unsafe { (a as *mut u64).write_volatile(word_for(a)) };
            }
            for _ in 0..ROUNDS {
                for n in 1..=5 {
                    hide(r, page).context("protect none")?;
                    ensure(as_laid_out(r, page), "the layout was not made")?;
                    // SAFETY: sets a counter the next maps read.
                    unsafe { sys::vmspace_fail_sparse_map_in(n) };
                    // SAFETY: mapped pages of ours; nothing writes them.
                    let got = unsafe { OPS.protect(r, Protection::Read) };
                    // SAFETY: as above.
                    unsafe { sys::vmspace_fail_sparse_map_in(0) };
                    match got {
                        Err(ShimError::OutOfMemory(_)) if n <= 4 => {
                            failed += 1;
                            ensure(as_laid_out(r, page), "a failed protect changed the range")?;
                        }
                        Err(_) => return ensure(false, "protect answered another error"),
                        Ok(()) => {
                            ensure(n == 5, "protect did not reach an injected failure")?;
                            let read_only = (0..PAGES).all(|i| {
                                let a = r.base().0 + i * page.0;
                                // SAFETY: a mapped read-only page of ours.
                                protect::access(a) == Access::Read
                                    && unsafe { (a as *const u64).read_volatile() } == word_for(a)
                            });
                            ensure(read_only, "protect left a page not read-only or lost a word")?;
                        }
                    }
                    // SAFETY: as above.
                    unsafe { OPS.protect(r, Protection::ReadWrite) }.context("protect read-write")?;
                }
            }
            Ok(())
        })();
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { OPS.release(r) }.context("release")?;
        result?;
        let after = pages_out();
        kernel::pr_info!("sparse faults: {failed} failed protects; backend pages out {before} before, {after} after\n");
        ensure(failed == ROUNDS * 4, "an injected failure was not reached")?;
        ensure(after == before, "a failed protect lost or kept pages")
    }
}
