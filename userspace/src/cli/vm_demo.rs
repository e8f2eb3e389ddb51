//! The VM part of the demo.

use vmspace::vm::Vm;
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::{procfs, MmapBackend};
use vmspace_workload::vm_ops;

use crate::args::DemoArgs as Options;
use crate::out::outln;
use crate::progress;

/// Steps of the seeded workload from which the demo shows a progress bar
/// (about two seconds over the default 64 GiB: each step maps or unmaps,
/// touches the pages and runs `check()`).
const PROGRESS_FROM: usize = 100_000;

/// Steps times GiB reserved from which it shows one all the same: `check()`
/// walks the bit table's summary, which grows with the reservation (20,000
/// steps take about 6 s over 4 TiB and 86 s over 64 TiB in a release build).
const PROGRESS_FROM_GIB_STEPS: usize = 20_000 * 1024;

pub fn report(step: &str, vm: &Vm<MmapBackend>) {
    let resident = procfs::resident_in(vm.reservation()).map(|s| s.to_string());
    let vmas = procfs::vmas_in(vm.reservation()).map(|v| v.len().to_string());
    outln!(
        "  {step:<34} reserved {:>9}  mapped {:>9}  metadata {:>7}  resident {:>9}  VMAs {:>4}",
        vm.reserved().to_string(),
        vm.mapped().to_string(),
        vm.metadata_mapped().to_string(),
        resident.unwrap_or_else(|e| e.to_string()),
        vmas.unwrap_or_else(|e| e.to_string()),
    );
}

/// The VM part: reserve, map, touch, unmap, the seeded workload.
pub fn run(o: &Options) -> Result<(), String> {
    let backend = MmapBackend::new();
    let page = backend.page_size();
    outln!(
        "vmspace demo: backend {} (unmap strategy {:?}), page size {}",
        backend.name(),
        backend.strategy(),
        page
    );
    let size = Size(o.size_gib << 30);
    let grain = Size(2 << 20);
    let mut vm = Vm::reserve(backend, size, grain).map_err(|e| {
        // Too large for the address space, or for 64-bit arithmetic once
        // rounded to the grain: say which option to change.
        format!("reserve {size} (--size-gib {}): {e}; a smaller --size-gib fits", o.size_gib)
    })?;
    outln!("VM [{}, {}) in grains of {}", vm.base(), vm.limit(), grain);
    report("reserve", &vm);

    // Map a few pieces, touch them, unmap some.
    let base = vm.base();
    let piece = |off: usize, len: usize| Range::from_size(Addr(base.0 + off), Size(len));
    let pieces = [(0, 16 << 20), (size.0 / 2, 4 << 20), (size.0 - (1 << 20), 1 << 20)];
    for (off, len) in pieces {
        let r = piece(off, len).map_err(|e| e.to_string())?;
        vm.map(r).map_err(|e| format!("map {r}: {e}"))?;
        // SAFETY: the VM just mapped `r` read-write and nothing else uses it.
        unsafe { std::ptr::write_bytes(r.base().as_ptr::<u8>(), 0x5A, r.size().0) };
        report(&format!("map+touch {} at +{}", Size(len), Size(off)), &vm);
    }
    let r = piece(0, 16 << 20).map_err(|e| e.to_string())?;
    match vm.map(r) {
        Err(e) => outln!("  map again (refused as it should be): {e}"),
        Ok(()) => return Err("mapping a mapped range succeeded".into()),
    }
    let half = piece(4 << 20, 8 << 20).map_err(|e| e.to_string())?;
    vm.unmap(half).map_err(|e| format!("unmap {half}: {e}"))?;
    report("unmap 8 MiB from the middle", &vm);
    let runs: Vec<String> =
        vm.mapped_runs().map(|r| format!("{} at {}", r.size(), r.base())).collect();
    outln!("  mapped runs: {}", runs.join(", "));
    for (off, len) in pieces {
        let r = piece(off, len).map_err(|e| e.to_string())?;
        for run in vm.mapped_runs().filter(|m| m.overlaps(&r)).collect::<Vec<_>>() {
            vm.unmap(run).map_err(|e| format!("unmap {run}: {e}"))?;
        }
    }
    report("unmap everything", &vm);

    // The seeded workload, checked against its model at every step.
    let long =
        o.steps >= PROGRESS_FROM || o.steps.saturating_mul(o.size_gib) >= PROGRESS_FROM_GIB_STEPS;
    let bar = progress::bar(o.steps, long, "workload", "steps");
    let stats = vm_ops::run_observed::<_, 64>(&mut vm, o.seed, o.steps, true, &mut |n| {
        if n % 1024 == 0 {
            bar.set_position(n as u64);
        }
    });
    bar.finish_and_clear();
    let stats = stats.map_err(|e| format!("workload seed {}: {e}", o.seed))?;
    report(&format!("{} seeded map/unmap operations", o.steps), &vm);
    outln!(
        "  workload: {} succeeded, {} bad requests refused, {} pages written and verified",
        stats.succeeded,
        stats.rejected,
        stats.pages_touched
    );
    let trimmed = vm.trim().map_err(|e| e.to_string())?;
    report(&format!("trim ({trimmed} empty table pages)"), &vm);
    vm.check().map_err(|e| format!("check: {e}"))?;
    let process_vmas = procfs::vma_count().map_err(|e| e.to_string())?;
    vm.release().map_err(|(_, e)| format!("release: {e}"))?;
    outln!("released; the process had {process_vmas} VMAs in all before release");
    Ok(())
}
