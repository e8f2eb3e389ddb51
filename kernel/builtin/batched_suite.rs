// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_batched_unmaps`: the sparse vmalloc backend with
//! batched unmaps ([`BatchedSparse`](crate::batched::BatchedSparse)).
//!
//! - a deferred unmap clears the PTEs at once (read back from `init_mm`'s
//!   page tables) and holds the pages until one flush;
//! - the invariant, no address reused before its flush: the user-space
//!   model (`batched_ops`) drives a batched `VmSource` on it, and the
//!   backend, which flushes first whenever a `map` or `release` touches
//!   pending pages, counts no such forced flush; likewise for the span of
//!   an importing arena dropped while it held an unflushed range;
//! - map+unmap pairs of 1 and 16 pages through a `VmSource`, batched
//!   against unbatched: nanoseconds a pair and TLB flushes, printed for
//!   BENCHMARKS.md (no timing is asserted; the flush counts are).

#[kernel::macros::kunit_tests(vmspace_batched_unmaps)]
mod tests {
    use vmspace_ktest::batched_cases;
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::touch::verify_pages;
    use vmspace_ktest::{report, Failure, Outcome};
    use core::pin::Pin;
    use kernel::alloc::KBox;
    use vmspace_shim::{PageOps, Range, Size};

    use crate::batched::BatchedSparse;
    use crate::protect::{self, Access};
    use crate::sparse::SparseVmalloc;

    static META: SparseVmalloc = SparseVmalloc::new();

    /// A batched backend holding up to `capacity` pages.
    fn batch(capacity: usize) -> Result<Pin<KBox<BatchedSparse>>, Failure> {
        BatchedSparse::new(capacity).map_err(|_| Failure::new("BatchedSparse::new: out of memory"))
    }

    /// Reserve `pages` pages on a batched backend holding up to
    /// `capacity`, run `body` on the backend and the reservation, release
    /// it, and check that the release left nothing pending.
    fn with_reservation(
        capacity: usize,
        pages: usize,
        body: impl FnOnce(&BatchedSparse, Range, Size) -> Outcome,
    ) -> Outcome {
        let b = batch(capacity)?;
        let page = b.page_size();
        let r = b.reserve(Size(pages * page.0), page).context("reserve")?;
        let result = body(&b, r, page);
        // SAFETY: `r` is ours; nothing touches it after this.
        unsafe { b.release(r) }.context("release")?;
        ensure(b.unflushed_pages() == 0, "release left pages pending")?;
        result
    }

    fn none_mapped(range: Range, page: Size) -> bool {
        (range.base().0..range.limit().0).step_by(page.0).all(|a| protect::access(a) == Access::None)
    }

    /// A deferred unmap removes the PTEs at once and holds the pages until
    /// the flush; a map over pending pages flushes first (and is counted).
    #[test]
    fn deferred_unmap_holds_pages_until_the_flush() -> Outcome {
        report(deferred_unmap())
    }

    fn deferred_unmap() -> Outcome {
        with_reservation(64, 8, |ops, r, page| {
            let four = Range::from_size(r.base(), Size(4 * page.0)).context("range")?;
            // SAFETY: `four` is inside our live reservation, unmapped.
            unsafe { ops.map(four) }.context("map")?;
            // SAFETY: mapped; nothing touches it until mapped again.
            unsafe { ops.unmap_deferred(four) }.context("unmap_deferred")?;
            ensure(none_mapped(four, page), "a deferred unmap left a PTE")?;
            ensure(ops.unflushed_pages() == 4, "the batch does not hold the four pages")?;
            // SAFETY: as above: unmapped, inside the reservation.
            let again = unsafe { ops.unmap_deferred(four) };
            ensure(again.is_err(), "a second unmap of unmapped pages was accepted")?;
            ensure(ops.unflushed_pages() == 4, "a refused unmap changed the batch")?;
            ensure(ops.flush() == 4 && ops.flush() == 0, "the flush did not complete four pages once")?;
            // Pending again, then mapped over: the backend flushes first.
            // SAFETY: inside the reservation, unmapped and flushed.
            unsafe { ops.map(four) }.context("map again")?;
            // SAFETY: mapped; nothing touches it until mapped again.
            unsafe { ops.unmap_deferred(four) }.context("unmap_deferred again")?;
            // SAFETY: inside the reservation, unmapped (its flush pending).
            unsafe { ops.map(four) }.context("map over pending pages")?;
            // SAFETY: just mapped read-write, ours alone: fresh zeroed pages.
            unsafe { verify_pages(four, page, None) }?; // zeros
            let s = ops.stats();
            ensure(s.forced_flushes == 1 && s.flushes == 2, "the map over pending pages did not flush first")?;
            ensure(s.deferred_unmaps == 2 && s.deferred_pages == 8, "deferred unmaps miscounted")?;
            // Pending at the release: flushed before the area goes
            // (`with_reservation` checks).
            // SAFETY: mapped; nothing touches it after this.
            unsafe { ops.unmap_deferred(four) }.context("unmap_deferred before release")
        })
    }

    /// A full batch flushes before it takes more.
    #[test]
    fn a_full_batch_flushes_first() -> Outcome {
        report(full_batch())
    }

    fn full_batch() -> Outcome {
        with_reservation(8, 32, |ops, r, page| {
            // SAFETY: our reservation, all unmapped.
            unsafe { ops.map(r) }.context("map")?;
            for i in 0..4 {
                let base = r.base().0 + i * 3 * page.0;
                let three = Range::from_size(vmspace_shim::Addr(base), Size(3 * page.0)).context("range")?;
                // SAFETY: mapped; nothing touches it again.
                unsafe { ops.unmap_deferred(three) }.context("unmap_deferred")?;
            }
            let s = ops.stats();
            // 3 + 3 wait; the third range would make 9 > 8: flush, then 3 + 3.
            ensure(s.full_flushes == 1 && ops.unflushed_pages() == 6, "the full batch did not flush once")?;
            // Larger than a batch: unmapped at once.
            let big = Range::from_size(vmspace_shim::Addr(r.base().0 + 16 * page.0), Size(16 * page.0)).context("big")?;
            // SAFETY: mapped; nothing touches it again.
            unsafe { ops.unmap_deferred(big) }.context("unmap_deferred big")?;
            ensure(ops.stats().immediate_unmaps == 1, "a range larger than the batch was deferred")?;
            ensure(none_mapped(big, page), "the immediate unmap left a PTE")
        })
    }

    /// The model: nothing given back is imported again before its flush;
    /// the backend never had to force a flush.
    #[test]
    fn no_address_is_reused_before_its_flush() -> Outcome {
        report(no_reuse())
    }

    fn no_reuse() -> Outcome {
        for (seed, threshold) in [(11u64, 1usize), (12, 8), (13, 32), (14, 1 << 20)] {
            let b = batch(64)?;
            let stats = batched_cases::model(&*b, &META, seed, threshold)?;
            let s = b.stats();
            ensure(s.forced_flushes == 0, "the source mapped or released pending pages")?;
            // Every give-back deferred (the run's own and its final ones).
            ensure(s.deferred_unmaps as usize >= stats.give_backs && s.immediate_unmaps == 0, "a give-back was not deferred")?;
            ensure(b.unflushed_pages() == 0, "pages left pending")?;
        }
        // An importer dropped with an unflushed range: its span's pages
        // wait in the backend until the source's flush, which comes before
        // any of them is mapped again.
        for threshold in [0, 64] {
            let b = batch(64)?;
            batched_cases::dropped_importer(&*b, &META, threshold)?;
            let s = b.stats();
            ensure(s.forced_flushes == 0, "the source mapped pending pages of a dropped importer")?;
            ensure(s.deferred_unmaps >= 1 && b.unflushed_pages() == 0, "the dropped importer's span was not deferred")?;
        }
        Ok(())
    }

    /// Map+unmap pairs of 1 and 16 pages through a `VmSource`, unbatched
    /// (every unmap flushes) and batched (one flush per 256 pages). Prints
    /// the time a pair and the flushes; asserts the flush counts.
    #[test]
    fn batched_against_unbatched() -> Outcome {
        report(measure())
    }

    fn measure() -> Outcome {
        const THRESHOLD: usize = 256;
        for (pages, n) in [(1usize, 4096usize), (16, 1024)] {
            let (plain_ns, _) = batched_cases::pairs(&META, &META, pages, n, 0)?;
            let b = batch(THRESHOLD)?;
            let (batched_ns, source_flushes) = batched_cases::pairs(&*b, &META, pages, n, THRESHOLD)?;
            let s = b.stats();
            let most = (n * pages).div_ceil(THRESHOLD) as u64 + 1;
            ensure(s.forced_flushes == 0, "the source reused pending pages")?;
            ensure(s.flushes <= most && s.flushes == source_flushes, "more flushes than the threshold allows")?;
            kernel::pr_info!(
                "batched unmaps: {} x {}-page map+unmap pairs: unbatched {} ns/pair (a flush per unmap: {}); batched {} ns/pair, {} flushes ({:?})\n",
                n, pages, plain_ns, n, batched_ns, s.flushes, s
            );
        }
        Ok(())
    }
}
