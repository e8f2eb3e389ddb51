// SPDX-License-Identifier: MIT OR Apache-2.0

//! Batched give-backs and the freed-but-not-flushed state, on any backend:
//! a batched [`VmSource`] driven by the user-space model
//! (`vmspace_workload::batched_ops`), and map+unmap pairs timed batched and
//! unbatched. On a backend that defers its flushes (the built-in
//! `BatchedSparse`) the unmaps really wait for one TLB flush; on the others
//! (`unmap_deferred`'s default unmaps at once) the arena's unflushed state
//! is exercised all the same.

use kernel::time::{Instant, Monotonic};
use vmspace::arena::{Arena, PageStore, Policy, SegmentKinds, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::{PageOps, Range, Size};
use vmspace_workload::batched_ops::{self, RunStats};

use crate::outcome::{ensure, Context, Outcome};

/// Pages in a batched source's VM.
pub const VM_PAGES: usize = 512;

/// A [`VmSource`] of [`VM_PAGES`] pages of `vm_ops`, its inner arena on
/// `meta`, batched at `threshold` pages (0: unbatched).
pub fn source<P: PageOps, Q: PageOps + Clone>(
    vm_ops: P,
    meta: Q,
    threshold: usize,
) -> Result<VmSource<P, PageStore<Q>>, crate::Failure> {
    let page = vm_ops.page_size();
    let vm = Vm::reserve(vm_ops, Size(VM_PAGES * page.0), page).context("Vm::reserve")?;
    let tags = PageStore::new(meta.clone(), Size(64 * page.0)).context("PageStore")?;
    let hash = PageStore::new(meta, Size(4 * page.0)).context("PageStore")?;
    let mut s = VmSource::new(vm, tags, hash).context("VmSource::new")?;
    s.set_flush_threshold(threshold).context("set_flush_threshold")?;
    Ok(s)
}

/// The model sequence for `seed` on a source batched at `threshold`:
/// nothing given back is imported again before its flush, and the inner
/// arena's walk, sizes and `check()` agree with the model after every step.
pub fn model<P: PageOps, Q: PageOps + Clone>(
    vm_ops: P,
    meta: Q,
    seed: u64,
    threshold: usize,
) -> Result<RunStats, crate::Failure> {
    let mut s = source(vm_ops, meta, threshold)?;
    let stats = batched_ops::run(&mut s, seed, 400).context("batched model")?;
    ensure(stats.imports > 20 && stats.give_backs > 20, "the sequence did too little")?;
    ensure(s.space().sizes().unflushed == Size(0), "something is still unflushed")?;
    Ok(stats)
}

/// [`model`] for several seeds and thresholds.
pub fn models<P: PageOps + Copy, Q: PageOps + Clone>(vm_ops: P, meta: Q) -> Outcome {
    for (seed, threshold) in [(1u64, 1usize), (2, 16), (3, 64), (4, 1 << 20)] {
        model(vm_ops, meta.clone(), seed, threshold)?;
    }
    Ok(())
}

/// An arena importing from a source batched at `threshold` (0: unbatched)
/// is dropped while its span holds a range freed deferred: the source
/// unmaps the span at once and hands none of it out before its own flush;
/// the import that finds no room flushes and takes it, so every page of the
/// VM is imported in the end (nothing lost). `check()` after every step.
pub fn dropped_importer<P: PageOps, Q: PageOps + Clone>(
    vm_ops: P,
    meta: Q,
    threshold: usize,
) -> Outcome {
    let page = vm_ops.page_size();
    let mut s = source(vm_ops, meta.clone(), threshold)?;
    let span = {
        let tags = PageStore::new(meta.clone(), Size(16 * page.0)).context("PageStore")?;
        let hash = PageStore::new(meta, Size(page.0)).context("PageStore")?;
        let mut child = Arena::new("importer", page, tags, hash, &mut s).context("Arena::new")?;
        let size = Size(4 * page.0);
        let x = child.alloc(size, Policy::InstantFit).context("alloc")?;
        // SAFETY: `x` was just allocated from a span the source mapped
        // read-write for this arena alone.
        unsafe { (x.0 as *mut u64).write_volatile(1) };
        child.free_deferred(x, size).context("free_deferred")?;
        let mut spans = child.walk(SegmentKinds::SPANS).map(|g| g.range);
        let span = spans.next();
        ensure(spans.next().is_none(), "the importer holds more than one span")?;
        span.ok_or(crate::Failure::new("the importer holds no span"))?
    };
    s.check().context("check after the drop")?;
    ensure(s.vm().mapped() == Size(0), "the dropped importer's span is still mapped")?;
    let pages = span.size().0 / page.0;
    let waiting = s.space().sizes().unflushed;
    ensure(waiting == span.size() || (threshold == 1 && waiting == Size(0)), "the span is not held unflushed")?;
    let mut n = 0;
    while let Ok(r) = s.import(page, page) {
        ensure(n >= VM_PAGES - pages || !r.overlaps(&span) || waiting == Size(0), "a page of the span was reissued before the flush")?;
        n += 1;
        s.check().context("check while importing")?;
    }
    ensure(n == VM_PAGES, "the VM's pages were not all imported in the end")?;
    // Every page was imported on its own: give each back.
    let base = s.vm().base().0;
    for i in 0..VM_PAGES {
        let r = Range::from_size(vmspace_shim::Addr(base + i * page.0), page).context("range")?;
        s.release(r).context("give back")?;
    }
    s.flush();
    s.check().context("check at the end")?;
    ensure(s.space().sizes().allocated == Size(0) && s.vm().mapped() == Size(0), "pages left imported")
}

/// `pairs` imports and give-backs of `pages` pages each on a source batched
/// at `threshold` (0: unbatched). Returns nanoseconds a pair and the flushes
/// the source made (unbatched: none of its own; the backend flushes every
/// unmap).
pub fn pairs<P: PageOps, Q: PageOps + Clone>(
    vm_ops: P,
    meta: Q,
    pages: usize,
    pairs: usize,
    threshold: usize,
) -> Result<(u64, u64), crate::Failure> {
    let page = vm_ops.page_size();
    let mut s = source(vm_ops, meta, threshold)?;
    let size = Size(pages * page.0);
    let start = Instant::<Monotonic>::now();
    for _ in 0..pairs {
        let r = s.import(size, page).context("import")?;
        // SAFETY: `r` was just imported: mapped read-write, ours alone.
        unsafe { (r.base().0 as *mut u64).write_volatile(1) };
        s.release(r).context("give back")?;
    }
    s.flush();
    let ns = start.elapsed().as_nanos().max(0) as u64;
    s.check().context("check")?;
    Ok((ns / pairs.max(1) as u64, s.space().counters().flushes))
}

/// The cases of [`models`] as a suite:
/// `batched_suite!(suite, path::TO_VM_OPS, path::TO_META)`.
#[macro_export]
macro_rules! batched_suite {
    ($suite:ident, $ops:path, $meta:path) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod $suite {
            use $crate::batched_cases as cases;
            use $crate::{report, Outcome};

            #[test]
            fn batched_give_backs_match_the_model() -> Outcome {
                report(cases::models(&$ops, &$meta))
            }

            #[test]
            fn a_dropped_importers_unflushed_span_waits_for_the_flush() -> Outcome {
                report((|| {
                    for threshold in [0, 1, 64] {
                        cases::dropped_importer(&$ops, &$meta, threshold)?;
                    }
                    Ok(())
                })())
            }
        }
    };
}
