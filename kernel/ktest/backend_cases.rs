// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on a page backend itself, below the VM: what every backend must do.

use core::sync::atomic::{AtomicBool, Ordering};

use kernel::time::{Delta, Instant, Monotonic};
use vmspace_kernel::{num_online_cpus, sleep_ms};
use vmspace_shim::{PageOps, Range, ShimError, Size};

use crate::outcome::{ensure, Context, Outcome};
use crate::threads::run_threads;
use crate::touch::{stamp_pages, verify_pages, zero_stamp_verify};

/// `n` pages of `ops`.
fn pages<P: PageOps>(ops: &P, n: usize) -> Size {
    Size(n * ops.page_size().0)
}

/// The sub-range of pages `[first, first + n)` of `r`.
fn sub<P: PageOps>(ops: &P, r: Range, first: usize, n: usize) -> Result<Range, crate::Failure> {
    let base = r.base().checked_add(pages(ops, first)).context("sub-range base")?;
    Range::from_size(base, pages(ops, n)).context("sub-range size")
}

/// Reserve and release: the range has the size asked and is page-aligned.
pub fn reserve_release<P: PageOps>(ops: &P) -> Outcome {
    let r = ops.reserve(pages(ops, 16), ops.page_size()).context("reserve 16 pages")?;
    ensure(r.size() == pages(ops, 16), "reservation has the wrong size")?;
    ensure(r.is_aligned(ops.page_size()), "reservation is not page-aligned")?;
    // SAFETY: `r` was just reserved on `ops` and nothing refers into it.
    unsafe { ops.release(r) }.context("release")
}

/// A reservation honours an alignment larger than the page size.
pub fn reserve_aligned<P: PageOps>(ops: &P, align: Size) -> Outcome {
    let r = ops.reserve(pages(ops, 4), align).context("reserve with alignment")?;
    let aligned = r.base().is_aligned(align);
    // SAFETY: `r` was just reserved on `ops` and nothing refers into it.
    unsafe { ops.release(r) }.context("release")?;
    ensure(aligned, "reservation base does not have the alignment asked for")
}

/// Bad reservation arguments are errors, not panics.
pub fn reserve_bad_arguments<P: PageOps>(ops: &P) -> Outcome {
    let page = ops.page_size();
    ensure(
        matches!(ops.reserve(Size(0), page), Err(ShimError::InvalidArgument(_))),
        "a zero-size reservation was not refused as an invalid argument",
    )?;
    ensure(
        matches!(ops.reserve(Size(page.0 + 1), page), Err(ShimError::Misaligned { .. })),
        "a reservation of a size that is not a page multiple was not refused",
    )?;
    ensure(
        matches!(ops.reserve(page, Size(3 * page.0)), Err(ShimError::InvalidArgument(_))),
        "a reservation with an alignment that is not a power of two was not refused",
    )
}

/// A reservation larger than any address space is refused.
pub fn reserve_too_large<P: PageOps>(ops: &P) -> Outcome {
    let huge = Size(usize::MAX & !(ops.page_size().0 - 1));
    ensure(ops.reserve(huge, ops.page_size()).is_err(), "a reservation of all the address space succeeded")
}

/// Map part of a reservation, write and read every page, unmap it, map it
/// again and see zeros.
pub fn map_touch_unmap<P: PageOps>(ops: &P) -> Outcome {
    let page = ops.page_size();
    let r = ops.reserve(pages(ops, 32), page).context("reserve")?;
    let result = (|| -> Outcome {
        let m = sub(ops, r, 4, 16)?;
        for round in 0..3u64 {
            // SAFETY: `m` lies in our live reservation `r` and is unmapped.
            unsafe { ops.map(m) }.context("map")?;
            // SAFETY: `m` was just mapped read-write and only we use it.
            unsafe { zero_stamp_verify(m, page, round) }?;
            // SAFETY: `m` is mapped and nothing touches it until mapped again.
            unsafe { ops.unmap(m) }.context("unmap")?;
        }
        Ok(())
    })();
    // SAFETY: `r` is ours and nothing refers into it any more.
    unsafe { ops.release(r) }.context("release")?;
    result
}

/// Releasing a reservation with pages still mapped gives everything back.
pub fn release_with_mapped<P: PageOps>(ops: &P) -> Outcome {
    let r = ops.reserve(pages(ops, 64), ops.page_size()).context("reserve")?;
    for first in [0, 10, 40] {
        let m = sub(ops, r, first, 5)?;
        // SAFETY: `m` lies in `r`, and the three ranges are disjoint.
        unsafe { ops.map(m) }.context("map")?;
    }
    // SAFETY: `r` is ours; nothing will touch it again.
    unsafe { ops.release(r) }.context("release with mapped pages")
}

/// Many reservations at once do not overlap: a stamp written in each is
/// still there after all the others are written.
pub fn many_reservations<P: PageOps>(ops: &P) -> Outcome {
    const N: usize = 24;
    let page = ops.page_size();
    let mut rs: [Option<Range>; N] = [None; N];
    let mut result = Ok(());
    for (i, slot) in rs.iter_mut().enumerate() {
        match ops.reserve(pages(ops, 1 + i % 5), page) {
            Ok(r) => *slot = Some(r),
            Err(e) => {
                result = Err(e).context("reserve");
                break;
            }
        }
    }
    if result.is_ok() {
        result = (|| -> Outcome {
            for (i, r) in rs.iter().flatten().enumerate() {
                // SAFETY: each `r` is a live reservation of ours, unmapped.
                unsafe { ops.map(*r) }.context("map")?;
                // SAFETY: just mapped, ours alone.
                unsafe { stamp_pages(*r, page, i as u64) };
            }
            for (i, r) in rs.iter().flatten().enumerate() {
                // SAFETY: mapped above and still ours alone.
                unsafe { verify_pages(*r, page, Some(i as u64)) }?;
            }
            Ok(())
        })();
    }
    for r in rs.iter().flatten() {
        // SAFETY: each `r` is ours; nothing touches it after this.
        let released = unsafe { ops.release(*r) }.context("release");
        result = result.and(released);
    }
    result
}

/// A thread that waits for another through `relax` lets it run, even when
/// the waiters hold every CPU: one waiter per online CPU spins on a flag
/// that a thread set going after them sets once it runs. A waiter gives up
/// after 10 s (the case fails instead of hanging). On a preemptible UML
/// kernel, which preempts only where preemption is enabled again, a relax
/// of `cond_resched()` alone let the waiters spin for ever: the chunk map's
/// racing threads hung in `make kunit-debug`.
pub fn relax_lets_others_run<P: PageOps + Sync>(ops: &P) -> Outcome {
    let waiters = num_online_cpus().clamp(1, 15);
    let set = AtomicBool::new(false);
    let ok = run_threads(waiters + 1, |t| {
        if t == waiters {
            // Started last, and asleep while the waiters take the CPUs.
            sleep_ms(50);
            set.store(true, Ordering::Release);
            return true;
        }
        let start = Instant::<Monotonic>::now();
        while !set.load(Ordering::Acquire) {
            if start.elapsed() > Delta::from_secs(10) {
                return false;
            }
            ops.relax();
        }
        true
    });
    ensure(ok, "a waiter gave up after 10 s: relax() did not let the awaited thread run")
}
