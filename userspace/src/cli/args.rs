//! The command line: clap's derive structures, number parsers that accept
//! what trace files accept (decimal, `0x` hex, `_` separators), and the
//! one-line usage errors.

use crate::input::parse_number;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand, ValueEnum};
use vmspace::arena::Policy;

/// vmspace: reserve, map and carve virtual address space.
///
/// Without a command, runs the built-in demo: reserve a VM on the mmap
/// backend, map and unmap pieces of it, run a seeded map/unmap workload
/// checked against a model, then carve address space with vmem arenas and
/// print their statistics.
#[derive(Debug, Parser)]
#[command(
    name = "vmspace",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  vmspace                                 the demo\n  \
                  vmspace trace --live 1000 | vmspace replay - --check\n  \
                  vmspace import-strace app.strace -o app.trace\n  \
                  vmspace replay app.trace --svg app.svg\n  \
                  vmspace replay app.trace --compare\n\n\
                  `vmspace help COMMAND` describes each command."
)]
pub struct Cli {
    /// The demo's settings (when no command is given).
    #[command(flatten)]
    pub demo: DemoArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in demo (the default).
    Demo(DemoArgs),
    /// Replay an arena operation trace and report peak, extent,
    /// fragmentation and every failed operation.
    #[command(long_about = crate::help::REPLAY)]
    Replay(ReplayArgs),
    /// Write the benchmarks' churn workload as a trace.
    Trace(TraceArgs),
    /// Convert `strace -e trace=mmap,munmap,mremap` output into a trace.
    #[command(long_about = crate::help::IMPORT_STRACE)]
    ImportStrace(ImportArgs),
}

/// `vmspace [demo]`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Size of the demo's VM in GiB.
    #[arg(long, value_name = "N", default_value = "64", value_parser = gib)]
    pub size_gib: usize,
    /// Seed of the demo's seeded workloads (the demo's alone: `trace` writes
    /// the benchmarks' churn, the same for every run).
    #[arg(long, value_name = "N", default_value = "1", value_parser = number_u64)]
    pub seed: u64,
    /// Operations of the seeded VM workload (a progress bar on a terminal
    /// from 100,000).
    #[arg(long, value_name = "N", default_value = "20000", value_parser = number)]
    pub steps: usize,
    /// Also draw the demo's arena (as `replay --svg` does) into FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `vmspace replay`.
#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    /// The trace file (`-`: standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The arena's quantum (a power of two up to 2^27; default: the trace's
    /// `quantum` line, else 1).
    #[arg(long, value_name = "N", value_parser = quantum)]
    pub quantum: Option<usize>,
    /// Run the arena's check() after every operation.
    #[arg(long)]
    pub check: bool,
    /// Allocate every allocation with this policy, whatever the trace says.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub policy: Option<PolicyArg>,
    /// Replay under every policy and print one table side by side.
    #[arg(long, conflicts_with_all = ["policy", "svg"])]
    pub compare: bool,
    /// Print the whole report as JSON (one object; with --compare, one per
    /// policy in an array).
    #[arg(long)]
    pub json: bool,
    /// Draw the arena at peak and at the end, and the free-size histogram,
    /// into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Failed operations to list one by one (the rest are counted; not with
    /// --compare, whose table counts them).
    #[arg(long, value_name = "N", default_value = "10", value_parser = number,
          conflicts_with = "compare")]
    pub failures: usize,
    /// Clip every span the trace adds to its first N bytes (a multiple of
    /// the quantum): would the trace fit in a smaller address space?
    #[arg(long, value_name = "N", value_parser = positive)]
    pub span_limit: Option<usize>,
}

/// `vmspace trace`.
#[derive(Debug, Args, Clone)]
pub struct TraceArgs {
    /// Live allocations (1 to 2^31; the trace's span holds 2^31 units, or
    /// all of them at their largest size).
    #[arg(long, value_name = "N", default_value = "1000", value_parser = churn_live)]
    pub live: usize,
    /// Free-and-allocate steps after the live set is built.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = number)]
    pub steps: usize,
}

/// `vmspace import-strace`.
#[derive(Debug, Args, Clone)]
pub struct ImportArgs {
    /// strace output (`-`: standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the trace here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The page size mappings are rounded to.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = quantum)]
    pub page: usize,
}

/// A policy as named on the command line and in traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Instant fit: power-of-two free lists, O(1).
    Instant,
    /// Best fit: the smallest free segment that fits.
    Best,
    /// First fit: the lowest free segment that fits.
    First,
    /// Next fit: the first fit after the last allocation (a rotor).
    Next,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::Instant => Policy::InstantFit,
            PolicyArg::Best => Policy::BestFit,
            PolicyArg::First => Policy::FirstFit,
            PolicyArg::Next => Policy::NextFit,
        }
    }
}

fn number(s: &str) -> Result<usize, String> {
    parse_number(s)
}

fn number_u64(s: &str) -> Result<u64, String> {
    parse_number(s).map(|n| n as u64)
}

fn positive(s: &str) -> Result<usize, String> {
    match parse_number(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn churn_live(s: &str) -> Result<usize, String> {
    match parse_number(s)? {
        n @ 1..=vmspace_user::trace::CHURN_MAX_LIVE => Ok(n),
        _ => Err(format!("must be 1 to {}", vmspace_user::trace::CHURN_MAX_LIVE)),
    }
}

/// The largest VM size in GiB whose byte count fits a `usize`.
pub const MAX_GIB: usize = usize::MAX >> 30;

fn gib(s: &str) -> Result<usize, String> {
    match parse_number(s)? {
        n @ 1..=MAX_GIB => Ok(n),
        n => Err(format!("{n} is out of range 1..={MAX_GIB} (the size in bytes must fit 64 bits)")),
    }
}

fn quantum(s: &str) -> Result<usize, String> {
    match parse_number(s)? {
        n if n.is_power_of_two() && n <= 1 << 27 => Ok(n),
        n => Err(format!("{n} is not a power of two from 1 to 2^27")),
    }
}

/// Parse the command line: `Ok` with what to do, or `Err(exit code)` once
/// help or version (exit 0, on standard output) or a usage error (exit 2:
/// one line and a hint on standard error) has been printed.
pub fn parse() -> Result<Cli, u8> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let usage = |message: &str| {
        eprintln!("vmspace: {message}");
        let sub = args
            .iter()
            .skip(1)
            .filter_map(|a| a.to_str())
            .find(|a| ["demo", "replay", "trace", "import-strace"].contains(a));
        match sub {
            Some(s) => eprintln!("hint: `vmspace help {s}` lists its options"),
            None => eprintln!("hint: `vmspace --help` lists the commands and options"),
        }
        Err(2)
    };
    match Cli::try_parse_from(&args) {
        Ok(cli) => match cli.agrees() {
            Ok(()) => Ok(cli),
            Err(message) => usage(&message),
        },
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => match e.print() {
                // Help into a closed pipe (`vmspace --help | head -1`) is
                // help given; any other failure to write it is an error.
                Err(w) if w.kind() != std::io::ErrorKind::BrokenPipe => {
                    let what = match e.kind() {
                        ErrorKind::DisplayVersion => "the version",
                        _ => "the help",
                    };
                    eprintln!("vmspace: writing {what}: {w}");
                    Err(1)
                }
                _ => Err(0),
            },
            _ => usage(&one_line(&e)),
        },
    }
}

impl Cli {
    /// Whether the options agree with each other where clap cannot tell:
    /// a usage error's message when they do not.
    fn agrees(&self) -> Result<(), String> {
        match &self.command {
            Some(Command::Replay(ReplayArgs {
                quantum: Some(quantum),
                span_limit: Some(limit),
                ..
            })) => check_span_limit(*limit, *quantum),
            _ => Ok(()),
        }
    }
}

/// A span limit must be whole quanta: the arena refuses a span that is
/// not, so every span clipped to it would fail to be added, and the trace
/// would look as if it did not fit. (With `--quantum` a usage error; with
/// the trace's own quantum, found only when it is read, a runtime one.)
pub fn check_span_limit(limit: usize, quantum: usize) -> Result<(), String> {
    if limit % quantum == 0 {
        return Ok(());
    }
    let down = limit - limit % quantum;
    let hint = match (down, down.checked_add(quantum)) {
        (0, _) => format!("at least {quantum:#x}"),
        (_, Some(up)) => format!("{down:#x} or {up:#x}"),
        (_, None) => format!("{down:#x}"),
    };
    Err(format!(
        "--span-limit {limit:#x} is not a multiple of the quantum {quantum:#x} (try {hint})"
    ))
}

/// clap's error as one line: its message, with the argument it names.
fn one_line(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        _ => String::new(),
    };
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("").trim_start_matches("error: ").trim_end();
    let mut line = match first.strip_suffix(':') {
        Some(head) if !arg.is_empty() => format!("{head}: {arg}"),
        _ => first.to_string(),
    };
    // What clap says on the lines after the first, kept on this one: the
    // values an option takes, and the option or command meant.
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        line += &format!(" (one of: {})", values.join(", "));
    }
    for kind in
        [ContextKind::SuggestedArg, ContextKind::SuggestedValue, ContextKind::SuggestedSubcommand]
    {
        match e.get(kind) {
            Some(ContextValue::String(s)) => line += &format!(" (did you mean '{s}'?)"),
            Some(ContextValue::Strings(v)) if !v.is_empty() => {
                line += &format!(" (did you mean '{}'?)", v.join("' or '"));
            }
            _ => {}
        }
    }
    // Clap's other tips, as it words them.
    if let Some(ContextValue::StyledStrs(tips)) = e.get(ContextKind::Suggested) {
        for tip in tips {
            line += &format!(" ({})", tip.to_string().trim().trim_start_matches("tip: "));
        }
    }
    // An option of another command than the one given (clap says nothing
    // of those here: `vmspace --json`).
    if e.kind() == ErrorKind::UnknownArgument {
        let tries: Vec<String> =
            commands_with_option(&arg).iter().map(|c| format!("`vmspace {c} {arg}`")).collect();
        if !tries.is_empty() {
            line += &format!(" (try {})", tries.join(" or "));
        }
    }
    line
}

/// The commands that take the option `arg` (`--name` or `--name=value`).
fn commands_with_option(arg: &str) -> Vec<String> {
    let Some(long) = arg.strip_prefix("--").and_then(|a| a.split('=').next()) else {
        return Vec::new();
    };
    let cli = <Cli as clap::CommandFactory>::command();
    cli.get_subcommands()
        .filter(|c| c.get_arguments().any(|a| a.get_long() == Some(long)))
        .map(|c| c.get_name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every example the help shows is a command line the parser takes
    /// (one showed `--compare --svg`, which conflict).
    #[test]
    fn the_help_examples_parse() {
        let help = Cli::command().render_long_help().to_string();
        let examples = help.split("Examples:").nth(1).expect("an Examples: section");
        let mut n = 0;
        for line in examples.lines().map(str::trim).filter(|l| l.starts_with("vmspace")) {
            // Drop the demo's trailing note, split pipelines.
            let line = line.split("   ").next().unwrap_or(line);
            for cmd in line.split(" | ") {
                let argv: Vec<&str> = cmd.split_whitespace().collect();
                if let Err(e) = Cli::try_parse_from(&argv) {
                    panic!("the help's example `{cmd}` does not parse: {e}");
                }
                n += 1;
            }
        }
        assert!(n >= 6, "only {n} examples found in:\n{help}");
    }

    #[test]
    fn numbers_take_hex_and_refuse_overflow() {
        assert_eq!(parse_number("0x10"), Ok(16));
        assert_eq!(parse_number("1_000"), Ok(1000));
        assert!(parse_number("18446744073709551616").unwrap_err().contains("too large"));
        assert!(parse_number("ten").unwrap_err().contains("not a number"));
        assert_eq!(quantum("0x10"), Ok(16));
        assert!(quantum("24").is_err());
        assert!(gib("17179869184").is_err());
        assert!(gib("17179869185").is_err());
        assert_eq!(gib("17179869183"), Ok(MAX_GIB));
        assert!(positive("0").is_err());
    }
}
