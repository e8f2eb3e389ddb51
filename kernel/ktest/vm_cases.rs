// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on the core's [`Vm`] over a kernel page backend.

use vmspace::CommonError;
use vmspace::vm::{Vm, VmError};
use vmspace_workload::vm_ops;
use vmspace_shim::{PageOps, Range, Size};

use crate::outcome::{ensure, Context, Failure, Outcome};
use crate::touch::{stamp_pages, verify_pages, zero_stamp_verify};

/// Pages `[first, first + n)` of `vm`'s client range.
fn pages<P: PageOps>(vm: &Vm<P>, first: usize, n: usize) -> Result<Range, Failure> {
    let page = vm.page_size().0;
    let base = vm.base().checked_add(Size(first * page)).context("page range base")?;
    Range::from_size(base, Size(n * page)).context("page range size")
}

/// A VM's base and limit are multiples of the grain, it reserves at least
/// what was asked, and nothing is mapped.
pub fn reserve_basic<P: PageOps>(ops: P, size: Size, grain: Size) -> Outcome {
    let vm = Vm::reserve(ops, size, grain).context("Vm::reserve")?;
    ensure(vm.base().is_aligned(grain) && vm.limit().is_aligned(grain), "base or limit off the grain")?;
    ensure(vm.range().size() >= size, "VM smaller than asked")?;
    ensure(vm.reserved() >= vm.range().size(), "reserved() smaller than the VM")?;
    ensure(vm.mapped() == Size(0), "a new VM has pages mapped")?;
    vm.check().context("check")
}

/// VMs with grains from the page size up to 2 MiB.
pub fn grains<P: PageOps + Copy>(ops: P) -> Outcome {
    let mut grain = ops.page_size();
    while grain.0 <= 2 << 20 {
        reserve_basic(ops, Size(3 * grain.0 - ops.page_size().0), grain)?;
        grain = Size(grain.0 * 2);
    }
    Ok(())
}

/// Bad arguments to `Vm::reserve` are errors.
pub fn reserve_bad_arguments<P: PageOps + Copy>(ops: P) -> Outcome {
    let page = ops.page_size();
    ensure(Vm::reserve(ops, Size(0), page).is_err(), "a zero-size VM was made")?;
    ensure(Vm::reserve(ops, page, Size(page.0 / 2)).is_err(), "a grain below the page size was accepted")?;
    ensure(Vm::reserve(ops, page, Size(3 * page.0)).is_err(), "a grain that is not a power of two was accepted")?;
    ensure(Vm::reserve(ops, Size(usize::MAX - page.0), page).is_err(), "a VM of all the address space was made")
}

/// Map every page of a VM, write and read every page, unmap it all.
pub fn map_all_touch<P: PageOps>(ops: P, n: usize) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, Size(n * page.0), page).context("Vm::reserve")?;
    let all = vm.range();
    vm.map(all).context("map all")?;
    ensure(vm.mapped() == all.size(), "mapped() is not the whole VM")?;
    // SAFETY: the VM mapped `all` read-write; nothing else uses it.
    unsafe { zero_stamp_verify(all, page, 7) }?;
    vm.unmap(all).context("unmap all")?;
    ensure(vm.mapped() == Size(0), "pages left mapped")?;
    vm.check().context("check")
}

/// Pages unmapped and mapped again read zero; pages next to them keep their data.
pub fn remap_reads_zero<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, Size(64 * page.0), page).context("Vm::reserve")?;
    let all = pages(&vm, 0, 16)?;
    let mid = pages(&vm, 4, 8)?;
    vm.map(all).context("map")?;
    // SAFETY: mapped above, ours alone.
    unsafe { stamp_pages(all, page, 1) };
    vm.unmap(mid).context("unmap the middle")?;
    vm.map(mid).context("map the middle again")?;
    // SAFETY: `mid` was mapped again; the rest of `all` stayed mapped.
    unsafe {
        verify_pages(mid, page, None)?;
        verify_pages(pages(&vm, 0, 4)?, page, Some(1))?;
        verify_pages(pages(&vm, 12, 4)?, page, Some(1))?;
    }
    vm.check().context("check")
}

/// Bad ranges are refused with the right error and leave the VM unchanged.
pub fn bad_ranges<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, Size(32 * page.0), page).context("Vm::reserve")?;
    let r = pages(&vm, 2, 4)?;
    vm.map(r).context("map")?;
    let skewed = Range::from_size(vm.base().checked_add(Size(8)).context("skew")?, page).context("skew")?;
    let empty = Range::empty(vm.base());
    let past = Range::from_size(vm.limit(), page).context("past")?;
    let across = pages(&vm, 30, 4)?;
    let overlap = pages(&vm, 5, 2)?;
    let unmapped = pages(&vm, 10, 1)?;
    ensure(matches!(vm.map(skewed), Err(VmError::Common(CommonError::Misaligned { .. }))), "misaligned map not refused")?;
    ensure(matches!(vm.map(empty), Err(VmError::Common(CommonError::InvalidArgument(_)))), "empty map not refused")?;
    ensure(matches!(vm.map(past), Err(VmError::Common(CommonError::OutOfRange(_)))), "map past the limit not refused")?;
    ensure(matches!(vm.map(across), Err(VmError::Common(CommonError::OutOfRange(_)))), "map across the limit not refused")?;
    ensure(matches!(vm.map(r), Err(VmError::AlreadyMapped(_))), "double map not refused")?;
    ensure(matches!(vm.map(overlap), Err(VmError::AlreadyMapped(_))), "overlapping map not refused")?;
    ensure(matches!(vm.unmap(unmapped), Err(VmError::NotMapped(_))), "unmap of unmapped pages not refused")?;
    ensure(matches!(vm.unmap(overlap), Err(VmError::NotMapped(_))), "partly mapped unmap not refused")?;
    ensure(matches!(vm.unmap(skewed), Err(VmError::Common(CommonError::Misaligned { .. }))), "misaligned unmap not refused")?;
    ensure(vm.mapped() == r.size(), "a refused call changed mapped()")?;
    ensure(vm.is_range_mapped(r).context("is_range_mapped")?, "a refused call unmapped pages")?;
    vm.check().context("check")
}

/// A seeded map/unmap sequence from the core's workload generator, with
/// `check()` and a model comparison after every step and every mapped page
/// written and read back.
pub fn workload<P: PageOps>(ops: P, seed: u64, steps: usize) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, Size(256 * page.0), page).context("Vm::reserve")?;
    let stats = vm_ops::run::<_, 4>(&mut vm, seed, steps, true).context("workload")?;
    ensure(stats.succeeded > 0, "no operation succeeded")?;
    ensure(stats.rejected > 0, "no bad operation was generated")?;
    ensure(stats.pages_touched > 0, "no page was touched")?;
    ensure(stats.backend_failures == 0, "the backend failed without fault injection")?;
    vm.check().context("final check")
}

/// Reserve `reserve` bytes, map `touch` bytes of it in one call, write and
/// read every page, unmap them, and see the VM empty again.
pub fn big_sparse<P: PageOps>(ops: P, reserve: Size, touch: Size) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, reserve, Size(2 << 20)).context("Vm::reserve")?;
    ensure(vm.range().size() >= reserve, "VM smaller than asked")?;
    // Somewhere in the middle, so the bit table is entered away from its start.
    let first = (vm.range().size().0 / 2 / page.0) & !511;
    let r = pages(&vm, first, touch.0 / page.0)?;
    vm.map(r).context("map")?;
    ensure(vm.mapped() == touch, "mapped() is not what was mapped")?;
    vm.check().context("check after map")?;
    // SAFETY: the VM mapped `r` read-write; nothing else uses it.
    unsafe { zero_stamp_verify(r, page, 0xB16) }?;
    vm.unmap(r).context("unmap")?;
    ensure(vm.mapped() == Size(0), "pages left mapped")?;
    vm.trim().context("trim")?;
    vm.check().context("check after unmap")?;
    kernel::pr_info!(
        "mapped, wrote, read back and unmapped {} MiB of a {} MiB reservation on {}\n",
        touch.0 >> 20,
        vm.range().size().0 >> 20,
        vm.ops().name()
    );
    Ok(())
}

/// Several VMs at once stay apart.
pub fn many_vms<P: PageOps + Copy>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut vms: [Option<Vm<P>>; 8] = [const { None }; 8];
    for (i, slot) in vms.iter_mut().enumerate() {
        let mut vm = Vm::reserve(ops, Size((8 + i) * page.0), page).context("Vm::reserve")?;
        let all = vm.range();
        vm.map(all).context("map")?;
        // SAFETY: just mapped, ours alone.
        unsafe { stamp_pages(all, page, i as u64) };
        *slot = Some(vm);
    }
    for (i, vm) in vms.iter().enumerate() {
        if let Some(vm) = vm {
            // SAFETY: mapped above and still mapped.
            unsafe { verify_pages(vm.range(), page, Some(i as u64)) }?;
            vm.check().context("check")?;
        }
    }
    Ok(())
}

/// `trim` gives back bit-table pages that record nothing mapped.
pub fn trim<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    // Enough pages for several bit-table pages.
    let n = page.0 * 8 * 4;
    let mut vm = Vm::reserve(ops, Size(n * page.0), page).context("Vm::reserve")?;
    let far = pages(&vm, n - 1, 1)?;
    let before = vm.metadata_mapped();
    vm.map(far).context("map a far page")?;
    ensure(vm.metadata_mapped() > before, "no bit-table page was mapped for a far page")?;
    vm.unmap(far).context("unmap it")?;
    let given = vm.trim().context("trim")?;
    ensure(given > 0, "trim gave nothing back")?;
    ensure(vm.metadata_mapped() == before, "trim did not give back all it could")?;
    vm.check().context("check")
}

/// `mapped_runs` reports the maximal runs of mapped pages.
pub fn mapped_runs<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, Size(64 * page.0), page).context("Vm::reserve")?;
    for (first, n) in [(0, 2), (2, 3), (10, 1), (20, 5), (63, 1)] {
        vm.map(pages(&vm, first, n)?).context("map")?;
    }
    ensure(vm.mapped_runs().count() == 4, "wrong number of mapped runs")?;
    vm.check().context("check")
}

/// Dropping a VM with pages mapped, and releasing one explicitly, both work.
pub fn release_and_drop<P: PageOps + Copy>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut vm = Vm::reserve(ops, Size(16 * page.0), page).context("Vm::reserve")?;
    vm.map(pages(&vm, 3, 5)?).context("map")?;
    drop(vm);
    let mut vm = Vm::reserve(ops, Size(16 * page.0), page).context("Vm::reserve")?;
    vm.map(pages(&vm, 0, 16)?).context("map")?;
    vm.release().map_err(|(_, e)| e).context("release")
}
