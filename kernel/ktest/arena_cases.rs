// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on the core's vmem-style [`Arena`], its metadata stores on a kernel
//! page backend, and imports from a [`Vm`] on a kernel page backend.
//!
//! The seeded sequences are the core's own (`vmspace_workload::arena_ops`),
//! driven against its reference model with `check()` after every step. The
//! model is sized for the kernel stack (64 live allocations, 16 spans).

use core::cell::RefCell;

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy, SegmentKinds};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_workload::arena_ops::{self, ArenaDriver, ArenaOpConfig, ArenaOpGen};
use vmspace_shim::{Addr, FaultInjector, Op, PageOps, Size};

use crate::outcome::{ensure, Context, Outcome};
use crate::touch::{stamp_pages, verify_pages};

/// Live allocations the model tracks.
const N: usize = 64;
/// Spans the model tracks.
const M: usize = 16;

fn cfg(quantum: usize) -> ArenaOpConfig {
    ArenaOpConfig::new(1 << 40, 2048 * quantum, quantum)
}

/// A seeded sequence of adds, extends, allocations under every policy with
/// random constraints, frees, deferred frees, flushes and bad frees, against
/// the model; then drained (a checked flush and a checked free of
/// everything left), after which the arena holds no allocation.
pub fn workload<P: PageOps + Clone>(meta: P, quantum: usize, seed: u64, steps: usize) -> Outcome {
    let mut a = Arena::on_pages("kunit", Size(quantum), meta, 4096, NoSource).context("Arena::on_pages")?;
    let mut driver = ArenaDriver::<N, M>::new();
    driver.run(&mut a, &mut ArenaOpGen::new(seed, cfg(quantum)), steps).context("arena workload")?;
    let stats = driver.stats();
    ensure(stats.succeeded > steps / 4, "too few operations succeeded")?;
    ensure(stats.rejected > 0, "no bad operation was generated")?;
    driver.drain(&mut a).context("drain")?;
    a.check().context("final check")
}

/// The same with the arena's own seeded fault injection (vmem's mtbf): every
/// injected failure leaves the arena as it was.
pub fn mtbf<P: PageOps + Clone>(meta: P, seed: u64, steps: usize) -> Outcome {
    let mut a = Arena::on_pages("mtbf", Size(16), meta, 4096, NoSource).context("Arena::on_pages")?;
    a.set_mtbf(seed, 8);
    let stats = arena_ops::run::<_, _, N, M>(&mut a, cfg(16), seed, steps).context("arena workload with mtbf")?;
    ensure(stats.resource_failures > 0, "no injected failure reached the arena")?;
    a.check().context("final check")
}

/// The tag store's page source fails at its `n`th map, for each `n` up to
/// `positions`: the arena is made or refused cleanly, and every operation
/// either completes or leaves the arena unchanged.
pub fn tag_store_faults<P: PageOps + Clone>(meta: P, seed: u64, positions: u64) -> Outcome {
    let mut reached = 0;
    for n in 1..=positions {
        let inj = FaultInjector::new(meta.clone());
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        match Arena::on_pages("faulty", Size(16), &inj, 4096, NoSource).map_err(ArenaError::from) {
            Ok(mut a) => {
                arena_ops::run::<_, _, N, M>(&mut a, cfg(16), seed, 200).context("workload with a failing map")?;
                a.check().context("check")?;
            }
            Err(ArenaError::Backing(_)) => {}
            Err(e) => return Err(e).context("Arena::on_pages failed with the wrong error"),
        }
        reached += inj.injected();
    }
    ensure(reached > 0, "no injected fault was reached")
}

/// Allocate and free under every policy: addresses lie in the span, no two
/// overlap, everything comes back.
pub fn policies<P: PageOps + Clone>(meta: P) -> Outcome {
    for policy in Policy::ALL {
        let mut a = Arena::on_pages("policy", Size(16), meta.clone(), 1024, NoSource).context("Arena::on_pages")?;
        let base = 0x10_0000;
        a.add(Addr(base), Size(1 << 20)).context("add")?;
        let mut got = [(0usize, 0usize); 32];
        for (i, slot) in got.iter_mut().enumerate() {
            let size = 16 * (1 + (i * 7) % 13);
            let at = a.alloc(Size(size), policy).context("alloc")?;
            ensure(at.0 >= base && at.0 + size <= base + (1 << 20), "allocation outside the span")?;
            *slot = (at.0, size);
        }
        for (i, x) in got.iter().enumerate() {
            for y in &got[i + 1..] {
                ensure(x.0 + x.1 <= y.0 || y.0 + y.1 <= x.0, "two allocations overlap")?;
            }
        }
        a.check().context("check")?;
        for (at, size) in got {
            a.free(Addr(at), Size(size)).context("free")?;
        }
        ensure(a.sizes().allocated == Size(0), "allocated size not zero after freeing everything")?;
        ensure(a.walk(SegmentKinds::FREE).count() == 1, "free space did not coalesce")?;
        a.check().context("check")?;
    }
    Ok(())
}

/// Constrained allocations honour align, phase, nocross, the address window,
/// an exact address and allocation from the top.
pub fn constraints<P: PageOps + Clone>(meta: P) -> Outcome {
    let mut a = Arena::on_pages("constraints", Size(16), meta, 1024, NoSource).context("Arena::on_pages")?;
    let (base, size) = (0x4_0000usize, 0x10_0000usize);
    a.add(Addr(base), Size(size)).context("add")?;
    let x = a.xalloc(&Constraints::new(Size(0x300)).align(Size(0x1000)).phase(Size(0x100))).context("align+phase")?;
    ensure(x.0 % 0x1000 == 0x100, "align and phase not honoured")?;
    let y = a.xalloc(&Constraints::new(Size(0x800)).nocross(Size(0x1000)).policy(Policy::BestFit)).context("nocross")?;
    ensure(y.0 / 0x1000 == (y.0 + 0x800 - 1) / 0x1000, "allocation crosses the boundary")?;
    let lo = Addr(base + 0x8_0000);
    let hi = Addr(base + 0x9_0000);
    let z = a.xalloc(&Constraints::new(Size(0x400)).min_addr(lo).max_addr(hi)).context("window")?;
    ensure(z >= lo && z.0 + 0x400 <= hi.0, "allocation outside the window")?;
    let exact = Addr(base + 0xC_0000);
    let e = a.xalloc(&Constraints::new(Size(0x100)).exact(exact)).context("exact")?;
    ensure(e == exact, "exact address not honoured")?;
    ensure(a.xalloc(&Constraints::new(Size(0x100)).exact(exact)).is_err(), "exact address given twice")?;
    let t = a.xalloc(&Constraints::new(Size(0x100)).policy(Policy::FirstFit).from_top(true)).context("top")?;
    ensure(t.0 == base + size - 0x100, "allocation from the top not at the top")?;
    let bad = Constraints::new(Size(0x100)).min_addr(hi).max_addr(lo);
    ensure(a.xalloc(&bad).is_err(), "an empty window was satisfied")?;
    a.check().context("check")?;
    for (at, n) in [(x, 0x300), (y, 0x800), (z, 0x400), (e, 0x100), (t, 0x100)] {
        a.xfree(at, Size(n)).context("xfree")?;
    }
    a.check().context("check")
}

/// Bad frees are refused and change nothing.
pub fn bad_frees<P: PageOps + Clone>(meta: P) -> Outcome {
    let mut a = Arena::on_pages("bad-free", Size(8), meta, 1024, NoSource).context("Arena::on_pages")?;
    a.add(Addr(0x1000), Size(0x1000)).context("add")?;
    let x = a.alloc(Size(64), Policy::InstantFit).context("alloc")?;
    let before = a.sizes();
    ensure(a.free(x, Size(72)).is_err(), "free with the wrong size accepted")?;
    ensure(a.free(Addr(x.0 + 8), Size(56)).is_err(), "free inside an allocation accepted")?;
    ensure(a.free(Addr(0x9000), Size(64)).is_err(), "free outside every span accepted")?;
    ensure(a.sizes() == before, "a refused free changed the sizes")?;
    a.free(x, Size(64)).context("free")?;
    ensure(a.free(x, Size(64)).is_err(), "double free accepted")?;
    ensure(a.counters().bad_frees >= 4, "bad frees not counted")?;
    a.check().context("check")
}

/// A VM goes into a [`VmSource`], the source into arenas whose stores fail
/// at their `n`th map, for each `n` up to `positions` (each refusal gives
/// the source back, its VM whole), and out again: an arena made gives its
/// source back once its allocation is freed (`into_source`), and the
/// source its VM (`into_vm`), the same reservation, unmapped.
pub fn source_round_trip<P: PageOps + Clone, Q: PageOps + Clone>(vm_ops: P, meta: Q, positions: u64) -> Outcome {
    let page = vm_ops.page_size().0;
    let vm = Vm::reserve(vm_ops, Size(64 * page), Size(page)).context("Vm::reserve")?;
    let range = vm.range();
    let tags = PageStore::new(meta.clone(), Size(16 * page)).context("PageStore")?;
    let hash = PageStore::new(meta.clone(), Size(page)).context("PageStore")?;
    let mut source = VmSource::new(vm, tags, hash).context("VmSource::new")?;
    let (mut refused, mut made) = (0, 0);
    for n in 1..=positions {
        let inj = FaultInjector::new(meta.clone());
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        source = match Arena::on_pages("round-trip", Size(64), &inj, 1024, source) {
            Ok(mut a) => {
                inj.clear();
                made += 1;
                let x = a.alloc(Size(8 * page), Policy::InstantFit).context("alloc")?;
                ensure(a.source().vm().is_mapped(x), "the import is not mapped")?;
                let Err(refused) = a.into_source() else {
                    return ensure(false, "into_source gave the source back with an allocation live");
                };
                ensure(
                    refused.error() == ArenaError::InUse { what: "allocations live", size: Size(8 * page) },
                    "into_source refused for another reason",
                )?;
                let mut a = refused.into_inner();
                a.free(x, Size(8 * page)).context("free")?;
                match a.into_source() {
                    Ok(s) => s,
                    Err(_) => return ensure(false, "into_source kept the source with nothing allocated"),
                }
            }
            Err(r) => {
                ensure(matches!(r.error(), ArenaError::Backing(_)), "refused with the wrong error")?;
                refused += 1;
                r.into_inner()
            }
        };
        ensure(source.vm().range() == range, "the source came back with another VM")?;
        ensure(source.vm().mapped() == Size(0), "the source came back with pages mapped")?;
        source.check().context("VM source check")?;
    }
    ensure(refused > 0 && made > 0, "neither a refusal nor an arena made")?;
    match source.into_vm() {
        Ok(vm) => ensure(vm.range() == range && vm.mapped() == Size(0), "the VM came back changed"),
        Err(_) => ensure(false, "into_vm kept the VM with nothing imported"),
    }
}

/// An arena importing from an arena importing from a [`Vm`] on `vm_ops`:
/// the seeded sequence runs on the child; after every step both arenas and
/// the VM source pass `check()`, every imported span is mapped in the VM,
/// and newly imported memory is written and read back. Dropping the child
/// gives everything back to the VM.
pub fn import_chain<P: PageOps + Clone, Q: PageOps + Clone>(
    vm_ops: P,
    meta: Q,
    seed: u64,
    steps: usize,
) -> Outcome {
    let page = vm_ops.page_size().0;
    let vm = Vm::reserve(vm_ops, Size(4096 * page), Size(page)).context("Vm::reserve")?;
    let tags = PageStore::new(meta.clone(), Size(64 * page)).context("PageStore")?;
    let hash = PageStore::new(meta.clone(), Size(4 * page)).context("PageStore")?;
    let source = VmSource::new(vm, tags, hash).context("VmSource::new")?;
    let parent = RefCell::new(Arena::on_pages("parent", Size(page), meta.clone(), 4096, source).context("parent")?);
    let mut child = Arena::on_pages("child", Size(64), meta, 8192, &parent).context("child")?;
    let mut gen = ArenaOpGen::new(seed, cfg(64).with_spans(seed % 2 == 0));
    let mut driver = ArenaDriver::<N, M>::new();
    for _ in 0..steps {
        let op = gen.next_op(driver.model().occupied(), N);
        let imports = child.counters().imports;
        driver.step(&mut child, &op).context("child step")?;
        let p = parent.borrow();
        p.check().context("parent check")?;
        p.source().check().context("VM source check")?;
        for s in child.walk(SegmentKinds::SPANS).filter(|s| s.imported) {
            ensure(p.source().vm().is_mapped(s.range.base()), "an imported span is not mapped")?;
            ensure(p.lookup(s.range.base()).map(|l| l.0) == Some(s.range), "an imported span is not a parent allocation")?;
        }
        if child.counters().imports != imports {
            // The newest import: stamp and read back its pages.
            if let Some(s) = child.walk(SegmentKinds::SPANS).filter(|s| s.imported).last() {
                let r = s.range;
                if r.is_aligned(Size(page)) {
                    // SAFETY: imported spans are live allocations of the
                    // parent, mapped read-write in the VM (checked above);
                    // the arenas never touch the memory they hand out.
                    unsafe {
                        stamp_pages(r, Size(page), seed);
                        verify_pages(r, Size(page), Some(seed))?;
                    }
                }
            }
        }
        ensure(p.sizes().allocated == child.sizes().imported, "parent allocations differ from child imports")?;
    }
    ensure(driver.stats().imported > 0, "nothing was imported")?;
    // Drained, the child has given its imports back through its frees and
    // flushes, before any drop.
    driver.drain(&mut child).context("drain")?;
    ensure(parent.borrow().sizes().allocated == Size(0), "the drained child still holds imports")?;
    drop(child);
    let p = parent.borrow();
    ensure(p.sizes().allocated == Size(0), "the child did not give everything back")?;
    ensure(p.source().vm().mapped() == Size(0), "the VM still has pages mapped")?;
    Ok(())
}
