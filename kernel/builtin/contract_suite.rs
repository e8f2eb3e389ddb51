// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_sparse_contract`: the sparse vmalloc backend itself
//! refuses what breaks the `PageOps` contract, and charges the pages it maps
//! to the caller's memory cgroup when made to (the device's backend).

#[kernel::macros::kunit_tests(vmspace_sparse_contract)]
mod tests {
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::{report, Outcome};
    use vmspace_shim::{PageOps, Protection, Range, ShimError, Size};

    use crate::sparse::SparseVmalloc;
    use crate::sys;

    static OPS: SparseVmalloc = SparseVmalloc::new();

    /// The backend itself refuses double maps, unmaps of unmapped pages,
    /// ranges outside its areas and protection of unmapped pages.
    #[test]
    fn contract_violations_refused() -> Outcome {
        report(contract_violations())
    }

    fn contract_violations() -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(8 * page.0), page).context("reserve")?;
        let first = Range::from_size(r.base(), page).context("first page")?;
        let second = Range::from_size(first.limit(), page).context("second page")?;
        let outside = Range::from_size(r.limit(), page).context("outside")?;
        let result = (|| -> Outcome {
            // SAFETY: `first` is in our live reservation and unmapped.
            unsafe { OPS.map(first) }.context("map")?;
            // The calls below break the contract on purpose; the backend
            // checks and refuses each before touching any page table.
            // SAFETY: `first` is in our reservation; mapped already (refused).
            let double = unsafe { OPS.map(first) };
            ensure(matches!(double, Err(ShimError::AlreadyMapped(_))), "double map not refused")?;
            // SAFETY: `r` is our reservation; mostly unmapped (refused).
            let whole = unsafe { OPS.unmap(r) };
            ensure(matches!(whole, Err(ShimError::NotMapped(_))), "unmap of unmapped pages not refused")?;
            // SAFETY: `outside` is in no reservation of ours (refused).
            let out = unsafe { OPS.map(outside) };
            ensure(matches!(out, Err(ShimError::NotReserved(_))), "map outside the area not refused")?;
            // SAFETY: `second` is in our reservation; unmapped (refused).
            let prot = unsafe { OPS.protect(second, Protection::Read) };
            ensure(matches!(prot, Err(ShimError::NotMapped(_))), "protect of an unmapped page not refused")?;
            // SAFETY: `first` is mapped and nothing uses it.
            unsafe { OPS.unmap(first) }.context("unmap")
        })();
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { OPS.release(r) }.context("release")?;
        result
    }

    /// Mapping, unmapping and releasing (with pages still mapped) gives
    /// every page back: 8 rounds of 16 MiB would leak 32768 pages; what may
    /// stay is page tables for the vmalloc area and per-CPU page lists.
    #[test]
    fn no_page_leak() -> Outcome {
        report(no_leak())
    }

    fn free_pages() -> usize {
        // SAFETY: reads a counter; no preconditions.
        unsafe { sys::vmspace_free_pages() }
    }

    fn no_leak() -> Outcome {
        let page = OPS.page_size();
        let before = free_pages();
        for _ in 0..8 {
            let r = OPS.reserve(Size(16 << 20), page).context("reserve")?;
            let half = Range::from_size(r.base(), Size(8 << 20)).context("half")?;
            // SAFETY: `r` is our live reservation, all unmapped.
            unsafe { OPS.map(r) }.context("map")?;
            // SAFETY: `half` is mapped and nothing uses it.
            unsafe { OPS.unmap(half) }.context("unmap half")?;
            // SAFETY: `r` is ours; nothing touches it after this.
            unsafe { OPS.release(r) }.context("release with half mapped")?;
        }
        let after = free_pages();
        kernel::pr_info!("no_page_leak: free pages {before} before, {after} after\n");
        ensure(after + 1024 >= before, "pages were not given back")
    }

    /// An accounted backend asks for every page it maps to be charged
    /// (`__GFP_ACCOUNT`, counted by the KUnit build's allocation hook), a
    /// plain one for none; the device's backends are the accounted kind.
    /// (Whether a charge lands is the memory cgroup's business: KUnit's
    /// task is in the root cgroup, which is not charged.)
    #[test]
    fn accounted_backend_charges_its_pages() -> Outcome {
        use vmspace_kdev::DevBackends;
        type Device = crate::device::Builtin;
        ensure(Device::vm().is_accounted(), "the device's VMs are not charged to the caller")?;
        ensure(Device::meta().is_accounted(), "the device's metadata is not charged to the caller")?;
        let charged = || -> isize {
            // SAFETY: reads a counter; no preconditions.
            unsafe { sys::vmspace_pages_accounted() as isize }
        };
        let map_count = |ops: &SparseVmalloc| -> Result<isize, vmspace_ktest::outcome::Failure> {
            let page = ops.page_size();
            let r = ops.reserve(Size(10 * page.0), page).context("reserve")?;
            let before = charged();
            // SAFETY: `r` is our live reservation, all unmapped.
            let mapped = unsafe { ops.map(r) };
            let after = charged();
            // SAFETY: `r` is ours; nothing touches it after this.
            unsafe { ops.release(r) }.context("release")?;
            mapped.context("map")?;
            Ok(after - before)
        };
        ensure(map_count(&SparseVmalloc::accounted())? == 10, "an accounted map did not charge its 10 pages")?;
        ensure(map_count(&OPS)? == 0, "a plain map charged pages")
    }
}
