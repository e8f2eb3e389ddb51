//! `vmspace`: the library at work on a built-in workload.
//!
//! With no arguments it reserves a large VM on the mmap backend, maps and
//! unmaps pieces of it, runs a seeded map/unmap workload checked against a
//! model, and prints what is reserved, mapped, resident and how many kernel
//! VMAs the reservation uses at each step; then it allocates and frees
//! through vmem arenas and prints their statistics.

use std::process::ExitCode;

mod arena_demo;
mod vm_demo;

const USAGE: &str = "usage: vmspace [--size-gib N] [--seed N] [--steps N]

Runs the built-in demo: reserve a VM of N GiB (default 64) on the mmap
backend, map and unmap pieces of it, run a seeded map/unmap workload of
--steps operations (default 20000) checked against a model; then carve
address space with vmem arenas (one importing pages from a VM, one shared
by threads through quantum caches) and print their statistics.";

/// The demo's settings.
pub struct Options {
    /// Size of the VM, GiB.
    pub size_gib: usize,
    /// Seed of the workloads.
    pub seed: u64,
    /// Operations of the seeded VM workload.
    pub steps: usize,
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
    match vm_demo::run(&options).and_then(|()| arena_demo::run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmspace: {e}");
            ExitCode::FAILURE
        }
    }
}
