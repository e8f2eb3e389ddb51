// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_sparse_faults`: the sparse vmalloc backend's own
//! failure paths, reached through the C fault hooks of KUnit builds
//! (`vmspace_fail_page_alloc_in`, `vmspace_fail_sparse_map_in` in
//! `vmalloc_sparse.c`): a page allocation failing at each position of a
//! map of two batches, and `vm_area_map_pages` failing part way in either
//! batch. The shim's `FaultInjector` fails a call before the backend acts,
//! so it never reaches these. Each failed map must leave the range with no
//! PTE and give back every page it took (the `PageOps` contract: a failed
//! call changes nothing), which rounds of failures would show as a leak.

#[kernel::macros::kunit_tests(vmspace_sparse_faults)]
mod tests {
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::{report, Outcome};
    use vmspace_shim::{PageOps, Range, ShimError, Size};

    use crate::protect::{self, Access};
    use crate::sparse::SparseVmalloc;
    use crate::sys;

    static OPS: SparseVmalloc = SparseVmalloc::new();
    /// Pages in the mapped range: two batches of the backend's map loop
    /// (64 pages a batch) and part of a third.
    const PAGES: usize = 150;
    /// Rounds of every failure: a page leaked at each would pass 1024.
    const ROUNDS: usize = 16;

    fn free_pages() -> usize {
        // SAFETY: reads a counter; no preconditions.
        unsafe { sys::vmspace_free_pages() }
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
    /// times: each refused with `want`, nothing left mapped; a position
    /// past the last call maps (then unmapped). No page leaked in all.
    fn fail_at_each(
        arm: unsafe extern "C" fn(i32),
        positions: &[i32],
        want: fn(&ShimError) -> bool,
    ) -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(PAGES * page.0), page).context("reserve")?;
        let before = free_pages();
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
        let after = free_pages();
        kernel::pr_info!("sparse faults: {failed} failed maps; free pages {before} before, {after} after\n");
        ensure(failed > 0, "no injected failure was reached")?;
        ensure(after + 1024 >= before, "a failed map did not give its pages back")
    }

    /// A page allocation failing at the first, inside the first batch, at
    /// the seam of two batches, inside the third, and at the last page;
    /// past the last, the map succeeds.
    #[test]
    fn page_allocation_failing_at_each_position() -> Outcome {
        let positions = [1, 2, 40, 64, 65, 66, 129, 140, PAGES as i32, PAGES as i32 + 1];
        report(fail_at_each(sys::vmspace_fail_page_alloc_in, &positions, |e| {
            matches!(e, ShimError::OutOfMemory(_))
        }))
    }

    /// `vm_area_map_pages` failing part way (half its batch mapped) in the
    /// first, second and third batch.
    #[test]
    fn map_pages_failing_part_way_in_each_batch() -> Outcome {
        report(fail_at_each(sys::vmspace_fail_sparse_map_in, &[1, 2, 3, 4], |e| {
            matches!(e, ShimError::Os { errno, .. } if *errno == kernel::error::code::ENOMEM.to_errno())
        }))
    }
}
