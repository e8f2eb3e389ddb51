// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_sparse_backend`: the sparse vmalloc backend on its own.

#[kernel::macros::kunit_tests(vmspace_sparse_backend)]
mod tests {
    use vmspace_ktest::backend_cases as cases;
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::{report, Outcome};
    use vmspace_shim::{PageOps, Protection, Range, ShimError, Size};

    use crate::sparse::SparseVmalloc;

    static OPS: SparseVmalloc = SparseVmalloc::new();

    #[test]
    fn reserve_release() -> Outcome {
        report("reserve_release", cases::reserve_release(&OPS))
    }

    #[test]
    fn reserve_aligned_2m() -> Outcome {
        report("reserve_aligned_2m", cases::reserve_aligned(&OPS, Size(2 << 20)))
    }

    #[test]
    fn reserve_aligned_64k() -> Outcome {
        report("reserve_aligned_64k", cases::reserve_aligned(&OPS, Size(64 << 10)))
    }

    #[test]
    fn reserve_bad_arguments() -> Outcome {
        report("reserve_bad_arguments", cases::reserve_bad_arguments(&OPS))
    }

    #[test]
    fn reserve_too_large() -> Outcome {
        report("reserve_too_large", cases::reserve_too_large(&OPS))
    }

    #[test]
    fn map_touch_unmap() -> Outcome {
        report("map_touch_unmap", cases::map_touch_unmap(&OPS))
    }

    #[test]
    fn release_with_mapped() -> Outcome {
        report("release_with_mapped", cases::release_with_mapped(&OPS))
    }

    #[test]
    fn many_reservations() -> Outcome {
        report("many_reservations", cases::many_reservations(&OPS))
    }

    /// The backend itself refuses double maps, unmaps of unmapped pages,
    /// ranges outside its areas and protection changes it cannot make.
    #[test]
    fn contract_violations_refused() -> Outcome {
        report("contract_violations_refused", contract_violations())
    }

    fn contract_violations() -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(8 * page.0), page).context("reserve")?;
        let first = Range::from_size(r.base(), page).context("first page")?;
        let outside = Range::from_size(r.limit(), page).context("outside")?;
        let result = (|| -> Outcome {
            // SAFETY: `first` is in our live reservation and unmapped.
            unsafe { OPS.map(first) }.context("map")?;
            // SAFETY (all below): each call breaks a contract on purpose; the
            // backend checks and refuses before touching any page table.
            let double = unsafe { OPS.map(first) };
            ensure(matches!(double, Err(ShimError::AlreadyMapped(_))), "double map not refused")?;
            let whole = unsafe { OPS.unmap(r) };
            ensure(matches!(whole, Err(ShimError::NotMapped(_))), "unmap of unmapped pages not refused")?;
            let out = unsafe { OPS.map(outside) };
            ensure(matches!(out, Err(ShimError::NotReserved(_))), "map outside the area not refused")?;
            let prot = unsafe { OPS.protect(first, Protection::Read) };
            ensure(matches!(prot, Err(ShimError::Os { .. })), "protect did not report that it is unsupported")?;
            // SAFETY: `first` is mapped and nothing uses it.
            unsafe { OPS.unmap(first) }.context("unmap")
        })();
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { OPS.release(r) }.context("release")?;
        result
    }
}
