// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_sparse_protect`: the sparse vmalloc backend's page
//! protection, shown on the kernel page tables themselves.
//!
//! A fault is not provoked on purpose: UML retries every kernel fault in
//! the vmalloc range after syncing its host mappings, so a kernel read of a
//! page with no PTE never returns there (not even through
//! `copy_from_kernel_nofault`). Instead each case walks `init_mm`'s page
//! tables (`protect::access`): a page protected to no access has no PTE (so
//! any access faults), a read-only one has a PTE without the write bit; and
//! the page itself is read through a temporary mapping of its own while
//! unmapped, to show it kept its contents.

#[kernel::macros::kunit_tests(vmspace_sparse_protect)]
mod tests {
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::touch::{stamp_pages, verify_pages};
    use vmspace_ktest::{report, Outcome};
    use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

    use crate::protect::{self, Access};
    use crate::sparse::SparseVmalloc;

    static OPS: SparseVmalloc = SparseVmalloc::new();
    const SALT: u64 = 0x9_7072_6f74;

    /// Each page of `range` has `want` access in the page tables.
    fn all(range: Range, page: Size, want: Access) -> bool {
        (range.base().0..range.limit().0).step_by(page.0).all(|a| protect::access(a) == want)
    }

    /// Reserve 8 pages, map and stamp them all, run `body` on the
    /// reservation, release it.
    fn with_stamped(body: impl FnOnce(Range, Size) -> Outcome) -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(8 * page.0), page).context("reserve")?;
        // SAFETY: `r` is our live reservation, all unmapped.
        let result = unsafe { OPS.map(r) }.context("map").and_then(|()| {
            // SAFETY: `r` was just mapped read-write and is ours alone.
            unsafe { stamp_pages(r, page, SALT) };
            body(r, page)
        });
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { OPS.release(r) }.context("release")?;
        result
    }

    /// No access removes the PTEs and keeps the pages with their contents;
    /// read-write maps the same pages back.
    #[test]
    fn no_access_then_back() -> Outcome {
        report(no_access())
    }

    fn no_access() -> Outcome {
        with_stamped(|r, page| {
            let mid = Range::from_size(Addr(r.base().0 + 2 * page.0), Size(4 * page.0)).context("mid")?;
            ensure(all(r, page, Access::ReadWrite), "mapped pages are not read-write")?;
            // SAFETY: `mid` is mapped and not accessed until unprotected.
            unsafe { OPS.protect(mid, Protection::None) }.context("protect none")?;
            ensure(all(mid, page, Access::None), "a page protected to no access still has a PTE")?;
            ensure(protect::access(r.base().0) == Access::ReadWrite, "a page outside the range changed")?;
            let a = mid.base().0 + page.0;
            let first = Range::from_size(r.base(), page).context("first")?;
            // SAFETY: the first page is outside `mid`: still mapped read-write.
            unsafe { verify_pages(first, page, Some(SALT)) }?;
            ensure(protect::stashed_word(a) != 0, "a page protected to no access lost its contents")?;
            // Protecting again changes nothing and fails nothing.
            // SAFETY: as above.
            unsafe { OPS.protect(mid, Protection::None) }.context("protect none twice")?;
            // SAFETY: `mid` is mapped (protected); from now on read and written.
            unsafe { OPS.protect(mid, Protection::ReadWrite) }.context("unprotect")?;
            ensure(all(r, page, Access::ReadWrite), "unprotected pages are not read-write")?;
            ensure(!protect::stashed(a), "an unprotected page is still stashed")?;
            // SAFETY: all of `r` is mapped read-write again and ours alone.
            unsafe { verify_pages(r, page, Some(SALT)) }?;
            Ok(())
        })
    }

    /// Read-only clears the write bit and leaves the pages readable; read-write
    /// sets it again.
    #[test]
    fn read_only_then_back() -> Outcome {
        report(read_only())
    }

    fn read_only() -> Outcome {
        with_stamped(|r, page| {
            // SAFETY: `r` is mapped; only read while read-only.
            unsafe { OPS.protect(r, Protection::Read) }.context("protect read")?;
            ensure(all(r, page, Access::Read), "a read-only page has a writable PTE")?;
            // SAFETY: `r` is mapped readable and ours alone.
            unsafe { verify_pages(r, page, Some(SALT)) }?;
            // From no access straight to read-only maps the pages back read-only.
            // SAFETY: as above; not accessed until readable again.
            unsafe { OPS.protect(r, Protection::None) }.context("protect none")?;
            // SAFETY: as above.
            unsafe { OPS.protect(r, Protection::Read) }.context("none to read")?;
            ensure(all(r, page, Access::Read), "none to read-only is not read-only")?;
            // SAFETY: `r` is mapped; read and written from now on.
            unsafe { OPS.protect(r, Protection::ReadWrite) }.context("unprotect")?;
            ensure(all(r, page, Access::ReadWrite), "unprotected pages are not read-write")?;
            // SAFETY: `r` is mapped read-write and ours alone.
            unsafe {
                verify_pages(r, page, Some(SALT))?;
                stamp_pages(r, page, SALT + 1);
                verify_pages(r, page, Some(SALT + 1))?;
            }
            Ok(())
        })
    }

    /// Unmapping and releasing protected pages frees them: nothing stays in
    /// the stash, and an unmapped page maps again reading zero.
    #[test]
    fn unmap_and_release_protected() -> Outcome {
        report(unmap_protected())
    }

    fn unmap_protected() -> Outcome {
        let mut kept = 0;
        with_stamped(|r, page| {
            let head = Range::from_size(r.base(), Size(4 * page.0)).context("head")?;
            let tail = Range::new(head.limit(), r.limit()).ok_or(vmspace_ktest::Failure::new("tail"))?;
            // SAFETY: all mapped; not accessed until unmapped or released.
            unsafe {
                OPS.protect(head, Protection::None).context("protect head")?;
                OPS.protect(tail, Protection::Read).context("protect tail")?;
            }
            // SAFETY: `head` is mapped (protected) and not accessed any more.
            unsafe { OPS.unmap(head) }.context("unmap protected")?;
            ensure(!protect::stashed(head.base().0), "an unmapped page stayed stashed")?;
            // SAFETY: `head` is unmapped; mapped again fresh.
            unsafe { OPS.map(head) }.context("map again")?;
            // SAFETY: just mapped read-write, ours alone.
            unsafe { verify_pages(head, page, None) }?;
            // SAFETY: `head` is mapped; released with the rest, never accessed.
            unsafe { OPS.protect(head, Protection::None) }.context("protect head again")?;
            kept = head.base().0;
            Ok(())
        })?;
        ensure(!protect::stashed(kept), "release left a stashed page behind")
    }

    /// Protection of pages that are not mapped, or not in an area of ours,
    /// is refused without changing anything.
    #[test]
    fn bad_ranges_refused() -> Outcome {
        report(bad_ranges())
    }

    fn bad_ranges() -> Outcome {
        let page = OPS.page_size();
        let r = OPS.reserve(Size(4 * page.0), page).context("reserve")?;
        let first = Range::from_size(r.base(), page).context("first")?;
        let result = (|| -> Outcome {
            // SAFETY: `first` is in our reservation and unmapped (refused).
            let e = unsafe { OPS.protect(first, Protection::None) };
            ensure(e.is_err(), "protect of an unmapped page succeeded")?;
            // SAFETY: `first` is unmapped; mapped now.
            unsafe { OPS.map(first) }.context("map")?;
            // SAFETY: the range reaches past `first` into unmapped pages (refused).
            let e = unsafe { OPS.protect(r, Protection::Read) };
            ensure(e.is_err(), "protect of a partly mapped range succeeded")?;
            ensure(protect::access(first.base().0) == Access::ReadWrite, "a refused protect changed a page")?;
            let outside = Range::from_size(r.limit(), page).context("outside")?;
            // SAFETY: not in our reservation (refused).
            let e = unsafe { OPS.protect(outside, Protection::Read) };
            ensure(e.is_err(), "protect outside the area succeeded")?;
            Ok(())
        })();
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { OPS.release(r) }.context("release")?;
        result
    }
}
