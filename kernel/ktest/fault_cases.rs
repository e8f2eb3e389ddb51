// SPDX-License-Identifier: MIT OR Apache-2.0

//! Fault injection: the shim's [`FaultInjector`] wrapped around a kernel
//! backend makes chosen page operations fail, and the VM must come out of
//! every failure unchanged and consistent.

use vmspace::vm::{Vm, VmError};
use vmspace_workload::vm_ops;
use vmspace_shim::{FaultInjector, Op, PageOps, Range, ShimError, Size};

use crate::outcome::{ensure, Context, Failure, Outcome};
use crate::touch::{stamp_pages, verify_pages};

fn injected(e: &VmError, op: Op) -> bool {
    matches!(e, VmError::Backend(ShimError::Injected { op: o }) if *o == op)
}

fn pages<P: PageOps>(vm: &Vm<P>, first: usize, n: usize) -> Result<Range, Failure> {
    let page = vm.page_size().0;
    let base = vm.base().checked_add(Size(first * page)).context("page range base")?;
    Range::from_size(base, Size(n * page)).context("page range size")
}

/// A refused reservation is an error; the next one succeeds.
pub fn reserve_fails<P: PageOps>(ops: P) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    fi.only(&[Op::Reserve]);
    fi.fail_nth(1);
    match Vm::reserve(&fi, Size(16 * page.0), page) {
        Err(e) if injected(&e, Op::Reserve) => {}
        Err(_) => return Err(Failure::new("Vm::reserve failed with the wrong error")),
        Ok(_) => return Err(Failure::new("Vm::reserve succeeded through an injected fault")),
    }
    let vm = Vm::reserve(&fi, Size(16 * page.0), page).context("Vm::reserve after the fault")?;
    vm.check().context("check")
}

/// When mapping the VM's own metadata fails, `Vm::reserve` fails and gives
/// its reservation back (a later reservation of the same size succeeds).
pub fn metadata_map_fails<P: PageOps>(ops: P) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    for _ in 0..16 {
        fi.only(&[Op::Map]);
        fi.fail_nth(1);
        match Vm::reserve(&fi, Size(64 * page.0), page) {
            Err(e) if injected(&e, Op::Map) => {}
            _ => return Err(Failure::new("Vm::reserve did not report the failed metadata map")),
        }
    }
    fi.clear();
    let vm = Vm::reserve(&fi, Size(64 * page.0), page).context("Vm::reserve after the faults")?;
    vm.check().context("check")
}

/// Fail the 1st, 2nd, ... map call of a `Vm::map` that needs a new bit-table
/// page as well as the client pages: each failure leaves the VM unchanged.
pub fn map_fails_at_each_step<P: PageOps>(ops: P) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    let n = page.0 * 8 * 2;
    let mut vm = Vm::reserve(&fi, Size(n * page.0), page).context("Vm::reserve")?;
    let far = pages(&vm, n - 8, 8)?;
    let mut faults = 0;
    for nth in 1..=4 {
        fi.only(&[Op::Map]);
        fi.fail_nth(nth);
        match vm.map(far) {
            Err(e) if injected(&e, Op::Map) => {
                faults += 1;
                ensure(vm.mapped() == Size(0), "a failed map left pages counted as mapped")?;
                ensure(!vm.is_mapped(far.base()), "a failed map left pages marked mapped")?;
                vm.check().context("check after a failed map")?;
            }
            Err(_) => return Err(Failure::new("map failed with the wrong error")),
            Ok(()) => {
                // Fewer map calls than `nth`: the map went through.
                // SAFETY: the VM mapped `far`; ours alone.
                unsafe { stamp_pages(far, page, 3) };
                vm.unmap(far).context("unmap")?;
            }
        }
    }
    ensure(faults >= 1, "no injected fault reached the backend")?;
    fi.clear();
    vm.map(far).context("map after the faults")?;
    vm.check().context("check")
}

/// A failed unmap leaves the pages mapped with their contents.
pub fn unmap_fails<P: PageOps>(ops: P) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    let mut vm = Vm::reserve(&fi, Size(32 * page.0), page).context("Vm::reserve")?;
    let r = pages(&vm, 4, 8)?;
    vm.map(r).context("map")?;
    // SAFETY: just mapped, ours alone.
    unsafe { stamp_pages(r, page, 9) };
    fi.only(&[Op::Unmap]);
    fi.fail_nth(1);
    match vm.unmap(r) {
        Err(e) if injected(&e, Op::Unmap) => {}
        _ => return Err(Failure::new("unmap did not report the injected fault")),
    }
    ensure(vm.mapped() == r.size(), "a failed unmap changed mapped()")?;
    // SAFETY: the failed unmap left `r` mapped, as checked by the VM.
    unsafe { verify_pages(r, page, Some(9)) }?;
    vm.check().context("check after the failed unmap")?;
    vm.unmap(r).context("unmap after the fault")?;
    vm.check().context("check")
}

/// A failed release hands the VM back intact; releasing again works.
pub fn release_fails<P: PageOps>(ops: P) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    let mut vm = Vm::reserve(&fi, Size(16 * page.0), page).context("Vm::reserve")?;
    vm.map(pages(&vm, 0, 4)?).context("map")?;
    fi.only(&[Op::Release]);
    fi.fail_nth(1);
    let vm = match vm.release() {
        Err((vm, e)) if injected(&e, Op::Release) => vm,
        Err((_, _)) => return Err(Failure::new("release failed with the wrong error")),
        Ok(()) => return Err(Failure::new("release succeeded through an injected fault")),
    };
    vm.check().context("check after the failed release")?;
    ensure(vm.mapped() == Size(4 * page.0), "the failed release changed mapped()")?;
    fi.clear();
    vm.release().map_err(|(_, e)| e).context("release after the fault")
}

/// A seeded workload with map and unmap calls failing at random (seeded):
/// every failure is absorbed, `check()` passes after every step.
pub fn random_faults<P: PageOps>(ops: P, seed: u64, steps: usize) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    let mut vm = Vm::reserve(&fi, Size(256 * page.0), page).context("Vm::reserve")?;
    fi.only(&[Op::Map, Op::Unmap]);
    fi.fail_randomly(seed, 150_000);
    let stats = vm_ops::run::<_, 4>(&mut vm, seed, steps, true).context("workload with faults")?;
    ensure(stats.backend_failures > 0, "no injected fault reached the VM")?;
    ensure(stats.succeeded > 0, "no operation succeeded")?;
    fi.clear();
    vm.check().context("final check")
}
