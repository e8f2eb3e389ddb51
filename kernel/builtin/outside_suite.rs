// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_outside_builtin`: an outside reviewer's adversarial
//! cases on the built-in backends (`SparseVmalloc`, `BatchedSparse`):
//! another subsystem's vmalloc area handed to the backend, reservations at
//! the extremes and in churn (pages and address space given back), VMs
//! dropped with protected and pending pages, protection against batched
//! unmaps, and batched sources on four kthreads sharing one batch.

#[kernel::macros::kunit_tests(vmspace_outside_builtin)]
mod tests {
    use core::sync::atomic::{AtomicU32, Ordering};

    use kernel::alloc::VVec;
    use kernel::prelude::*;
    use vmspace::arena::Source;
    use vmspace::vm::Vm;
    use vmspace_ktest::batched_cases;
    use vmspace_ktest::outcome::{ensure, Context};
    use vmspace_ktest::threads::run_threads;
    use vmspace_ktest::touch::{stamp_pages, verify_pages};
    use vmspace_ktest::{report, Failure, Outcome};
    use vmspace_shim::{Addr, PageOps, Protection, Range, ShimError, Size};
    use vmspace_workload::Rng;

    use crate::batched::BatchedSparse;
    use crate::protect;
    use crate::sparse::SparseVmalloc;
    use crate::sys;

    static OPS: SparseVmalloc = SparseVmalloc::new();

    fn free_pages() -> usize {
        // SAFETY: reads a counter; no preconditions.
        unsafe { sys::vmspace_free_pages() }
    }

    fn range(base: usize, size: usize) -> Result<Range, Failure> {
        Range::from_size(Addr(base), Size(size)).context("range")
    }

    fn page() -> usize {
        OPS.page_size().0
    }

    /// `area_of`: "The checks below catch a caller's mistake about which
    /// area (not ours, too small)". A live vmalloc buffer of someone else
    /// handed to every call must be refused and left as it was (a release
    /// accepted here would free another subsystem's area).
    #[test]
    fn foreign_vmalloc_area_refused() -> Outcome {
        report(foreign_area())
    }

    fn foreign_area() -> Outcome {
        let n = 8 * page();
        let mut buf = VVec::<u8>::with_capacity(n, GFP_KERNEL).map_err(|_| Failure::new("VVec"))?;
        buf.resize(n, 0xAB, GFP_KERNEL).map_err(|_| Failure::new("VVec::resize"))?;
        let r = range(buf.as_ptr() as usize, 4 * page())?;
        let b = BatchedSparse::new(16).map_err(|_| Failure::new("BatchedSparse::new"))?;
        // SAFETY (all five calls): `r` is in a live vmalloc area that is not
        // the backend's; the backend's checks must refuse it before touching
        // any page table, which is what this case checks.
        let results = unsafe {
            [
                OPS.map(r),
                OPS.unmap(r),
                OPS.protect(r, Protection::None),
                b.unmap_deferred(r),
                OPS.release(r),
            ]
        };
        for res in results {
            ensure(
                matches!(res, Err(ShimError::NotReserved(_))),
                "a foreign vmalloc range was not refused",
            )?;
        }
        ensure(b.unflushed_pages() == 0, "a refused deferred unmap changed the batch")?;
        ensure(buf.iter().all(|&x| x == 0xAB), "a foreign buffer changed")
    }

    /// `reserve`: impossible sizes and alignments are errors; 64 rounds of
    /// a 256 MiB reservation aligned to 256 MiB, first and last pages
    /// mapped, give back every page and all address space.
    #[test]
    fn reserve_extremes_and_churn() -> Outcome {
        report(reserve_churn())
    }

    fn reserve_churn() -> Outcome {
        let p = page();
        let refused = [
            (0, p),
            (usize::MAX & !(p - 1), p),
            (p, 1usize << 63),
            (p, 3 * p),
            (p, 0),
            (1usize << 62, p),
            (1usize << 62, 1usize << 62),
            (p, usize::MAX & !(p - 1)),
        ];
        for (size, align) in refused {
            if let Ok(r) = OPS.reserve(Size(size), Size(align)) {
                // SAFETY: just reserved, nothing mapped.
                let _ = unsafe { OPS.release(r) };
                return Err(Failure::new("an impossible reservation was made"));
            }
        }
        // Below the page: the trait says `align` must be "no smaller than
        // the page size"; the backend takes it as the page.
        if let Ok(r) = OPS.reserve(Size(p), Size(p / 2)) {
            pr_info!("reserve_extremes_and_churn: align of half a page accepted\n");
            // SAFETY: just reserved, nothing mapped.
            unsafe { OPS.release(r) }.context("release")?;
        }
        let before = free_pages();
        for _ in 0..64 {
            let r =
                OPS.reserve(Size(256 << 20), Size(256 << 20)).context("reserve 256 MiB aligned")?;
            let aligned = r.base().0 % (256 << 20) == 0 && r.size() == Size(256 << 20);
            let ends = [range(r.base().0, p)?, range(r.limit().0 - p, p)?];
            let result = (|| -> Outcome {
                ensure(aligned, "a reservation not aligned as asked")?;
                for e in ends {
                    // SAFETY: in our live reservation, unmapped.
                    unsafe { OPS.map(e) }.context("map an end page")?;
                    // SAFETY: just mapped read-write, ours alone.
                    unsafe { stamp_pages(e, Size(p), 3) };
                }
                Ok(())
            })();
            // SAFETY: `r` is ours; nothing touches it after this.
            unsafe { OPS.release(r) }.context("release")?;
            result?;
        }
        let after = free_pages();
        pr_info!("reserve_extremes_and_churn: free pages {before} before, {after} after\n");
        ensure(after + 1024 >= before, "pages were not given back")
    }

    /// VMs dropped with pages mapped, protected to no access ("unmapping or
    /// releasing frees them with the rest"), read-only, and pending in a
    /// batch ("a `map` or `release` that touches a pending page flushes
    /// first and counts a forced flush"): nothing leaks, nothing is left
    /// stashed or pending.
    #[test]
    fn vm_churn_no_leak() -> Outcome {
        report(vm_churn())
    }

    fn vm_churn() -> Outcome {
        let b = BatchedSparse::new(64).map_err(|_| Failure::new("BatchedSparse::new"))?;
        let before = free_pages();
        let mut rng = Rng::new(0x1EA4);
        for round in 0..48 {
            let forced = b.stats().forced_flushes;
            let (touched, pending) = if round % 2 == 1 {
                let vm = Vm::reserve(&*b, Size(2048 * page()), OPS.page_size())
                    .context("reserve batched")?;
                churn_round(vm, &mut rng, || b.unflushed_pages())?
            } else {
                let vm =
                    Vm::reserve(&OPS, Size(2048 * page()), OPS.page_size()).context("reserve")?;
                churn_round(vm, &mut rng, || 0)?
            };
            // The VM is gone: its release freed the stash and the batch.
            ensure(
                touched.iter().all(|&a| !protect::stashed(a)),
                "a released page stayed stashed",
            )?;
            ensure(b.unflushed_pages() == 0, "a released VM left pages pending")?;
            if pending > 0 {
                ensure(
                    b.stats().forced_flushes == forced + 1,
                    "a release over pending pages did not force a flush",
                )?;
            }
        }
        let after = free_pages();
        pr_info!("vm_churn_no_leak: free pages {before} before, {after} after\n");
        ensure(after + 1024 >= before, "pages were not given back")
    }

    /// Map 32 ranges of `vm`, protect or unmap some deferred, and drop it.
    /// Returns the ranges' bases and what `pending` said before the drop.
    fn churn_round<P: PageOps>(
        mut vm: Vm<P>,
        rng: &mut Rng,
        pending: impl Fn() -> usize,
    ) -> Result<([usize; 32], usize), Failure> {
        let p = page();
        let base = vm.base().0;
        let mut touched = [0usize; 32];
        for (i, t) in touched.iter_mut().enumerate() {
            let r = range(base + i * 64 * p, (1 + rng.below(16)) * p)?;
            vm.map(r).context("map")?;
            *t = r.base().0;
            match rng.below(4) {
                0 => vm.protect(r, Protection::None).context("protect none")?,
                1 => vm.protect(r, Protection::Read).context("protect read")?,
                2 => vm.unmap_deferred(r).context("unmap_deferred")?,
                _ => {}
            }
        }
        vm.check().context("check")?;
        let n = pending();
        drop(vm);
        Ok((touched, n))
    }

    /// The README: "A reservation costs address space only; a 1 GiB
    /// reservation with 64 MiB mapped uses 64 MiB of memory (plus the VM's
    /// bit table)" (not under KASAN_VMALLOC, which it says populates the
    /// shadow). Page tables for the mapping are allowed for (128 pages).
    #[test]
    fn reservation_costs_what_is_mapped() -> Outcome {
        report(reservation_cost())
    }

    fn reservation_cost() -> Outcome {
        if cfg!(CONFIG_KASAN_VMALLOC) {
            return Ok(());
        }
        let p = page();
        let before = free_pages();
        let mut vm = Vm::reserve(&OPS, Size(1 << 30), Size(p)).context("reserve 1 GiB")?;
        let reserved = before.saturating_sub(free_pages());
        let r = range(vm.base().0 + (256 << 20), 64 << 20)?;
        vm.map(r).context("map 64 MiB")?;
        let mapped = before.saturating_sub(free_pages());
        let meta = vm.metadata_mapped().0 / p;
        drop(vm);
        let after = before.saturating_sub(free_pages());
        pr_info!("reservation_costs_what_is_mapped: reserved {reserved}, mapped {mapped} pages (metadata {meta}), {after} after release\n");
        ensure(reserved <= 64, "an empty 1 GiB reservation cost memory")?;
        ensure(
            mapped <= (64 << 20) / p + meta + 128,
            "64 MiB mapped cost more than 64 MiB and the bit table",
        )?;
        ensure(after <= 64, "the release did not give the memory back")
    }

    /// `VmSource::set_flush_threshold`: "flush once `pages` pages wait (at
    /// least 1; if that many wait already, now)"; an overflowing threshold
    /// is an error that changes nothing; with a threshold never reached,
    /// "when an import finds no room" the source flushes, and the pages
    /// come back as zeros with no forced flush.
    #[test]
    fn flush_threshold_extremes() -> Outcome {
        report(threshold_extremes())
    }

    fn threshold_extremes() -> Outcome {
        let p = page();
        let b = BatchedSparse::new(1024).map_err(|_| Failure::new("BatchedSparse::new"))?;
        let mut s = batched_cases::source(&*b, &OPS, 0)?;
        ensure(
            s.set_flush_threshold(usize::MAX).is_err(),
            "an overflowing threshold was accepted",
        )?;
        ensure(s.flush_threshold() == 0, "a refused threshold changed the source")?;
        s.set_flush_threshold(usize::MAX / p).context("largest threshold")?;
        let chunk = Size(8 * p);
        let mut all = KVec::new();
        while let Ok(r) = s.import(chunk, Size(p)) {
            all.push(r, GFP_KERNEL).map_err(|_| Failure::new("KVec::push"))?;
        }
        let n = all.len();
        ensure(n * 8 == batched_cases::VM_PAGES, "the source did not hand out its whole VM")?;
        for r in all.iter() {
            s.release(*r).context("release")?;
        }
        ensure(
            s.space().sizes().unflushed == Size(n * chunk.0),
            "give-backs were flushed below the threshold",
        )?;
        ensure(b.unflushed_pages() == n * 8, "the backend does not hold every give-back")?;
        let r = s.import(chunk, Size(p)).context("import with everything unflushed")?;
        ensure(
            s.space().sizes().unflushed == Size(0),
            "the import that found no room did not flush",
        )?;
        // SAFETY: just imported: mapped read-write, ours alone.
        unsafe { verify_pages(r, Size(p), None) }?;
        s.release(r).context("release again")?;
        s.set_flush_threshold(1).context("threshold 1")?;
        ensure(
            s.space().sizes().unflushed == Size(0),
            "a threshold already reached did not flush at once",
        )?;
        s.check().context("check")?;
        ensure(b.stats().forced_flushes == 0, "the source mapped pending pages")
    }

    /// Protection on four kthreads at once, each on a VM of its own (the
    /// stash is one xarray for all): every change is seen in the page
    /// tables (`protect::access`), contents survive no access and
    /// read-only, and the release leaves nothing stashed.
    #[test]
    fn protect_on_kthreads() -> Outcome {
        report(protect_threads())
    }

    fn protect_threads() -> Outcome {
        let p = page();
        let ok = run_threads(4, |t| {
            let body = || -> Outcome {
                let mut vm = Vm::reserve(&OPS, Size(32 * p), Size(p)).context("reserve")?;
                let base = vm.base().0;
                vm.map(vm.range()).context("map")?;
                // SAFETY: mapped read-write, ours alone.
                unsafe { stamp_pages(vm.range(), Size(p), 40 + t as u64) };
                let mut rng = Rng::new(0x9807 + t as u64);
                for _ in 0..300 {
                    let first = rng.below(32);
                    let r = range(base + first * p, (1 + rng.below(32 - first)) * p)?;
                    let (prot, want) = match rng.below(3) {
                        0 => (Protection::None, protect::Access::None),
                        1 => (Protection::Read, protect::Access::Read),
                        _ => (Protection::ReadWrite, protect::Access::ReadWrite),
                    };
                    vm.protect(r, prot).context("protect")?;
                    let mut a = r.base().0;
                    while a < r.limit().0 {
                        ensure(
                            protect::access(a) == want,
                            "the page tables do not show the protection",
                        )?;
                        if want == protect::Access::None {
                            ensure(
                                protect::stashed_word(a) != 0,
                                "a page protected to no access lost its contents",
                            )?;
                        }
                        a += p;
                    }
                    if want != protect::Access::None {
                        // SAFETY: mapped and readable (just checked), ours.
                        unsafe { verify_pages(r, Size(p), Some(40 + t as u64)) }?;
                    }
                }
                vm.check().context("check")?;
                drop(vm);
                ensure(
                    (0..32).all(|i| !protect::stashed(base + i * p)),
                    "a released page stayed stashed",
                )
            };
            match body() {
                Ok(()) => true,
                Err(f) => {
                    pr_err!("protect_on_kthreads: thread {t}: {f}\n");
                    false
                }
            }
        });
        ensure(ok, "a thread failed (see the log)")
    }

    /// Protection against batched unmaps: read-only pages are deferred,
    /// pages protected to no access unmapped at once; the backend refuses
    /// to protect or unmap pending pages; contents survive no access and
    /// read-only; a flushed range maps again as zeros with no forced flush.
    #[test]
    fn batched_protect_interplay() -> Outcome {
        report(protect_interplay())
    }

    fn protect_interplay() -> Outcome {
        let p = page();
        // "A backend that holds up to `capacity` (at least 1)": no batch
        // of usize::MAX pages can be allocated; an error, not a panic.
        ensure(BatchedSparse::new(usize::MAX).is_err(), "a batch of usize::MAX pages was made")?;
        let one = BatchedSparse::new(0).map_err(|_| Failure::new("BatchedSparse::new(0)"))?;
        ensure(one.capacity() == 1, "a batch of capacity 0 does not hold one page")?;
        let b = BatchedSparse::new(64).map_err(|_| Failure::new("BatchedSparse::new"))?;
        {
            let mut vm = Vm::reserve(&*b, Size(16 * p), Size(p)).context("reserve")?;
            let base = vm.base().0;
            let r = |i: usize, n: usize| range(base + i * p, n * p);
            vm.map(r(0, 16)?).context("map")?;
            // SAFETY: mapped read-write, ours alone.
            unsafe { stamp_pages(r(0, 16)?, Size(p), 5) };
            vm.protect(r(0, 2)?, Protection::Read).context("protect read")?;
            vm.unmap_deferred(r(0, 4)?).context("unmap_deferred with read-only pages")?;
            ensure(b.unflushed_pages() == 4, "read-only pages were not deferred")?;
            vm.protect(r(4, 2)?, Protection::None).context("protect none")?;
            vm.unmap_deferred(r(4, 4)?).context("unmap_deferred with stashed pages")?;
            ensure(
                b.stats().immediate_unmaps == 1 && b.unflushed_pages() == 4,
                "stashed pages were deferred",
            )?;
            ensure(
                (4..6).all(|i| !protect::stashed(base + i * p)),
                "unmapped pages stayed stashed",
            )?;
            // SAFETY (both): `r(0, 4)` is in our live reservation, pending;
            // the backend must refuse both and change nothing.
            let (prot, unmap) =
                unsafe { (b.protect(r(0, 4)?, Protection::Read), b.unmap(r(0, 4)?)) };
            ensure(prot.is_err() && unmap.is_err(), "pending pages were protected or unmapped")?;
            ensure(b.unflushed_pages() == 4, "a refused call changed the batch")?;
            vm.protect(r(8, 8)?, Protection::None).context("protect none 8")?;
            ensure(
                protect::stashed_word(base + 8 * p) != 0,
                "a page protected to no access lost its contents",
            )?;
            vm.protect(r(8, 8)?, Protection::Read).context("protect read 8")?;
            // SAFETY: mapped, readable, ours alone (read only).
            unsafe { verify_pages(r(8, 8)?, Size(p), Some(5)) }?;
            vm.protect(r(8, 8)?, Protection::ReadWrite).context("protect read-write 8")?;
            ensure(vm.flush() == 4, "the flush did not complete the four pending pages")?;
            vm.map(r(0, 8)?).context("map again")?;
            // SAFETY: just mapped read-write, ours alone.
            unsafe { verify_pages(r(0, 8)?, Size(p), None) }?;
            ensure(b.stats().forced_flushes == 0, "a flushed range forced a flush")?;
            vm.check().context("check")?;
        }
        ensure(b.unflushed_pages() == 0, "pages left pending")
    }

    /// Four kthreads, each with a batched `VmSource` (threshold 8 pages) on
    /// one shared `BatchedSparse` holding at most 16 pages, so the batch
    /// fills and flushes under them. "Until its flush an address must not
    /// be mapped again": the backend counts no forced flush, every import
    /// reads zero, and every live import keeps its stamps.
    #[test]
    fn batched_sources_on_kthreads() -> Outcome {
        report(sources_on_kthreads())
    }

    fn sources_on_kthreads() -> Outcome {
        let p = page();
        let b = BatchedSparse::new(16).map_err(|_| Failure::new("BatchedSparse::new"))?;
        let bad = AtomicU32::new(0);
        let ok = run_threads(4, |t| {
            let body = || -> Outcome {
                let mut s = batched_cases::source(&*b, &OPS, 8)?;
                let mut rng = Rng::new(0xBA7C + t as u64);
                let mut live = [Range::empty(Addr(0)); 16];
                for step in 0..600 {
                    let i = rng.below(live.len());
                    if !live[i].is_empty() {
                        // SAFETY: a live import of ours, mapped read-write.
                        unsafe { verify_pages(live[i], Size(p), Some(t as u64)) }?;
                        s.release(live[i]).context("release")?;
                        live[i] = Range::empty(Addr(0));
                    } else {
                        let r =
                            s.import(Size((1 + rng.below(6)) * p), Size(p)).context("import")?;
                        // SAFETY: just imported: mapped read-write, ours alone.
                        unsafe { verify_pages(r, Size(p), None) }?;
                        // SAFETY: as above.
                        unsafe { stamp_pages(r, Size(p), t as u64) };
                        live[i] = r;
                    }
                    if step % 100 == 0 {
                        s.check().context("source check")?;
                    }
                }
                for r in live.iter().filter(|r| !r.is_empty()) {
                    s.release(*r).context("final release")?;
                }
                s.flush();
                s.check().context("final source check")?;
                ensure(s.space().sizes().unflushed == Size(0), "unflushed after the flush")
            };
            match body() {
                Ok(()) => true,
                Err(f) => {
                    bad.fetch_add(1, Ordering::Relaxed);
                    pr_err!("batched_sources_on_kthreads: thread {t}: {f}\n");
                    false
                }
            }
        });
        let st = b.stats();
        pr_info!("batched_sources_on_kthreads: {:?}\n", st);
        ensure(ok, "a thread failed (see the log)")?;
        ensure(st.forced_flushes == 0, "an address was mapped again before its flush")?;
        ensure(b.unflushed_pages() == 0, "pages left pending")
    }
}
