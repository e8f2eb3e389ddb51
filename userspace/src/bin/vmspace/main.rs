//! `vmspace`: the library at work on a built-in workload.
//!
//! With no arguments it reserves a large VM on the mmap backend, maps and
//! unmaps pieces of it, runs a seeded map/unmap workload checked against a
//! model, and prints what is reserved, mapped, resident and how many kernel
//! VMAs the reservation uses at each step.

use std::process::ExitCode;

use vmspace::vm::Vm;
use vmspace::workload::vm_ops;
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::{procfs, MmapBackend};

const USAGE: &str = "usage: vmspace [--size-gib N] [--seed N] [--steps N]

Runs the built-in demo: reserve a VM of N GiB (default 64) on the mmap
backend, map and unmap pieces of it, run a seeded map/unmap workload of
--steps operations (default 20000) checked against a model, and report.";

struct Options {
    size_gib: usize,
    seed: u64,
    steps: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options { size_gib: 64, seed: 1, steps: 20_000 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--size-gib" => o.size_gib = value(a)? as usize,
            "--seed" => o.seed = value(a)?,
            "--steps" => o.steps = value(a)? as usize,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.size_gib == 0 {
        return Err("--size-gib must be at least 1".into());
    }
    Ok(o)
}

fn report(step: &str, vm: &Vm<MmapBackend>) {
    let resident = procfs::resident_in(vm.reservation()).map(|s| s.to_string());
    let vmas = procfs::vmas_in(vm.reservation()).map(|v| v.len().to_string());
    println!(
        "  {step:<34} reserved {:>9}  mapped {:>9}  metadata {:>7}  resident {:>9}  VMAs {:>4}",
        vm.reserved().to_string(),
        vm.mapped().to_string(),
        vm.metadata_mapped().to_string(),
        resident.unwrap_or_else(|e| e.to_string()),
        vmas.unwrap_or_else(|e| e.to_string()),
    );
}

fn demo(o: &Options) -> Result<(), String> {
    let backend = MmapBackend::new();
    let page = backend.page_size();
    println!(
        "vmspace demo: backend {} (unmap strategy {:?}), page size {}",
        backend.name(),
        backend.strategy(),
        page
    );
    let size = Size(o.size_gib << 30);
    let grain = Size(2 << 20);
    let mut vm = Vm::reserve(backend, size, grain).map_err(|e| format!("reserve {size}: {e}"))?;
    println!("VM [{}, {}) in grains of {}", vm.base(), vm.limit(), grain);
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
        Err(e) => println!("  map again (refused as it should be): {e}"),
        Ok(()) => return Err("mapping a mapped range succeeded".into()),
    }
    let half = piece(4 << 20, 8 << 20).map_err(|e| e.to_string())?;
    vm.unmap(half).map_err(|e| format!("unmap {half}: {e}"))?;
    report("unmap 8 MiB from the middle", &vm);
    let runs: Vec<String> =
        vm.mapped_runs().map(|r| format!("{} at {}", r.size(), r.base())).collect();
    println!("  mapped runs: {}", runs.join(", "));
    for (off, len) in pieces {
        let r = piece(off, len).map_err(|e| e.to_string())?;
        for run in vm.mapped_runs().filter(|m| m.overlaps(&r)).collect::<Vec<_>>() {
            vm.unmap(run).map_err(|e| format!("unmap {run}: {e}"))?;
        }
    }
    report("unmap everything", &vm);

    // The seeded workload, checked against its model at every step.
    let stats = vm_ops::run::<_, 64>(&mut vm, o.seed, o.steps, true)
        .map_err(|e| format!("workload seed {}: {e}", o.seed))?;
    report(&format!("{} seeded map/unmap operations", o.steps), &vm);
    println!(
        "  workload: {} succeeded, {} bad requests refused, {} pages written and verified",
        stats.succeeded, stats.rejected, stats.pages_touched
    );
    let trimmed = vm.trim().map_err(|e| e.to_string())?;
    report(&format!("trim ({trimmed} empty table pages)"), &vm);
    vm.check().map_err(|e| format!("check: {e}"))?;
    let process_vmas = procfs::vma_count().map_err(|e| e.to_string())?;
    vm.release().map_err(|(_, e)| format!("release: {e}"))?;
    println!("released; the process had {process_vmas} VMAs in all before release");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vmspace: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    match demo(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmspace: {e}");
            ExitCode::FAILURE
        }
    }
}
