//! `vmspace`: the library at work on a built-in workload.
//!
//! With no arguments it reserves a large VM on the mmap backend, maps and
//! unmaps pieces of it, runs a seeded map/unmap workload checked against a
//! model, and prints what is reserved, mapped, resident and how many kernel
//! VMAs the reservation uses at each step; then it allocates and frees
//! through vmem arenas and prints their statistics. `vmspace replay` runs an
//! arena operation trace from a file and `vmspace trace` writes one.

use std::process::ExitCode;

mod arena_demo;
mod replay;
mod trace;
mod vm_demo;

const USAGE: &str = "usage: vmspace [--size-gib N] [--seed N] [--steps N]
       vmspace replay FILE|- [--quantum N] [--check]
       vmspace trace [--live N] [--steps N]

Without a command, runs the built-in demo: reserve a VM of N GiB (default
64) on the mmap backend, map and unmap pieces of it, run a seeded map/unmap
workload of --steps operations (default 20000) checked against a model;
then carve address space with vmem arenas (one importing pages from a VM,
one shared by threads through quantum caches) and print their statistics.

replay: run an arena operation trace on a fresh arena (quantum default 1;
--check runs check() after every operation) and print what happened, the
arena's sizes, counters, free-size histogram and fragmentation. A trace
has one operation a line (# starts a comment; numbers decimal or 0x hex):
    add BASE SIZE
    alloc ID SIZE [instant|best|first|next]
    xalloc ID SIZE [align=N] [phase=N] [nocross=N] [min=A] [max=A]
                   [exact=A] [policy=P] [top]
    free ID

trace: write the benchmarks' churn workload as a trace (default 1000 live
allocations, 10000 steps), e.g. `vmspace trace | vmspace replay - --check`.";

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

/// `--name N` options of the subcommands, with defaults; `file` takes the
/// one positional argument (if `Some`).
fn parse_sub(
    args: &[String],
    numbers: &mut [(&str, &mut usize)],
    flags: &mut [(&str, &mut bool)],
    mut file: Option<&mut String>,
) -> Result<(), String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((_, v)) = numbers.iter_mut().find(|(n, _)| n == a) {
            **v = it
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{a} needs a number"))?;
        } else if let Some((_, v)) = flags.iter_mut().find(|(n, _)| n == a) {
            **v = true;
        } else if a == "-h" || a == "--help" {
            return Err(String::new());
        } else if let Some(f) =
            file.as_deref_mut().filter(|f| f.is_empty() && (a == "-" || !a.starts_with('-')))
        {
            *f = a.clone();
        } else {
            return Err(format!("unknown argument {a:?}"));
        }
    }
    match file {
        Some(f) if f.is_empty() => Err("which trace file? (- for standard input)".into()),
        _ => Ok(()),
    }
}

/// The command line's work, or the message for a usage error (empty: help).
fn dispatch(args: &[String]) -> Result<Result<(), String>, String> {
    match args.first().map(String::as_str) {
        Some("replay") => {
            let mut o = replay::ReplayOptions { file: String::new(), quantum: 1, check: false };
            parse_sub(
                &args[1..],
                &mut [("--quantum", &mut o.quantum)],
                &mut [("--check", &mut o.check)],
                Some(&mut o.file),
            )?;
            Ok(replay::run(&o))
        }
        Some("trace") => {
            let (mut live, mut steps) = (1000, 10_000);
            parse_sub(
                &args[1..],
                &mut [("--live", &mut live), ("--steps", &mut steps)],
                &mut [],
                None,
            )?;
            print!("{}", trace::churn(live, steps));
            Ok(Ok(()))
        }
        _ => {
            let options = parse(args)?;
            Ok(vm_demo::run(&options).and_then(|()| arena_demo::run(&options)))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let work = match dispatch(&args) {
        Ok(w) => w,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vmspace: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    match work {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmspace: {e}");
            ExitCode::FAILURE
        }
    }
}
