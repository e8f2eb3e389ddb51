//! `vmspace`: the library at work on a built-in workload, and tools for
//! arena operation traces.
//!
//! With no command it runs the demo: it reserves a large VM on the mmap
//! backend, maps and unmaps pieces of it, runs a seeded map/unmap workload
//! checked against a model, and prints what is reserved, mapped, resident
//! and how many kernel VMAs the reservation uses at each step; then it
//! allocates and frees through vmem arenas and prints their statistics.
//! `vmspace replay` runs an arena operation trace and reports its peak,
//! extent, fragmentation and failures (text, JSON, SVG, every policy side
//! by side); `vmspace trace` writes one; `vmspace import-strace` makes one
//! from a real program's `strace` output. `vmspace help COMMAND` says more.
//!
//! Exit codes: 0 success, 1 a runtime error, 2 a usage error.

use std::process::ExitCode;

mod arena_demo;
mod args;
mod help;
mod input;
mod out;
mod progress;
mod replay;
mod sizes;
mod strace;
mod svg;
mod vm_demo;

use vmspace_user::trace;

use args::{Cli, Command};

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        None => demo(&cli.demo),
        Some(Command::Demo(d)) => demo(&d),
        Some(Command::Replay(r)) => replay::run(&r),
        Some(Command::Trace(t)) => trace::churn(t.live, t.steps, &mut |s| out::text(s)),
        Some(Command::ImportStrace(i)) => strace::run(&i),
    }
}

fn demo(d: &args::DemoArgs) -> Result<(), String> {
    vm_demo::run(d)?;
    arena_demo::run(d)
}

fn main() -> ExitCode {
    let cli = match args::parse() {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmspace: {e}");
            ExitCode::FAILURE
        }
    }
}
