// SPDX-License-Identifier: MIT OR Apache-2.0

//! What a KUnit case body returns, and how a failure is reported.

use core::fmt;

use vmspace::arena::{ArenaError, Refused};
use vmspace::chunkmap::ChunkMapError;
use vmspace::vm::VmError;
use vmspace::vmarena::VmArenaError;
use vmspace_workload::arena_ops::ArenaRunError;
use vmspace_workload::batched_ops::RunError as BatchedRunError;
use vmspace_workload::chunkmap_ops::ChunkRunError;
use vmspace_workload::vmarena_ops::VmArenaRunError;
use vmspace_workload::vm_ops::VmRunError;
use vmspace_shim::{Overflow, ShimError};

/// The result of a case body.
pub type Outcome = Result<(), Failure>;

/// Why a case failed: what was expected, and the error seen, if any.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    /// What went wrong, in words.
    pub what: &'static str,
    /// The error behind it.
    pub detail: Detail,
}

/// The error behind a [`Failure`].
#[derive(Debug, Clone, Copy)]
pub enum Detail {
    /// No error value: an expectation did not hold.
    None,
    /// A page backend error.
    Shim(ShimError),
    /// A VM error.
    Vm(VmError),
    /// A seeded workload run that went wrong.
    Run(VmRunError),
    /// An arena error.
    Arena(ArenaError),
    /// A seeded arena run that went wrong.
    ArenaRun(ArenaRunError),
    /// A VM arena error.
    VmArena(VmArenaError),
    /// A chunk map error.
    ChunkMap(ChunkMapError),
    /// A seeded VM arena run that went wrong.
    VmArenaRun(VmArenaRunError),
    /// A seeded chunk map run that went wrong.
    ChunkRun(ChunkRunError),
    /// A seeded batched give-back run that went wrong.
    BatchedRun(BatchedRunError),
}

impl Failure {
    /// A failed expectation.
    pub const fn new(what: &'static str) -> Self {
        Failure { what, detail: Detail::None }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)?;
        match &self.detail {
            Detail::None => Ok(()),
            Detail::Shim(e) => write!(f, ": {e}"),
            Detail::Vm(e) => write!(f, ": {e}"),
            Detail::Run(e) => write!(f, ": {e}"),
            Detail::Arena(e) => write!(f, ": {e}"),
            Detail::ArenaRun(e) => write!(f, ": {e}"),
            Detail::VmArena(e) => write!(f, ": {e}"),
            Detail::ChunkMap(e) => write!(f, ": {e}"),
            Detail::VmArenaRun(e) => write!(f, ": {e}"),
            Detail::ChunkRun(e) => write!(f, ": {e}"),
            Detail::BatchedRun(e) => write!(f, ": {e}"),
        }
    }
}

// The kernel's print macros format through their own `Display` trait.
impl kernel::fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Turn an error into a [`Failure`] that says `what` was being done.
pub trait Context<T> {
    /// Attach `what` to the error.
    fn context(self, what: &'static str) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, ShimError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::Shim(e) })
    }
}

impl<T> Context<T> for Result<T, Overflow> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|_| Failure { what, detail: Detail::Shim(ShimError::Overflow) })
    }
}

impl<T> Context<T> for Result<T, VmError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::Vm(e) })
    }
}

impl<T> Context<T> for Result<T, VmRunError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::Run(e) })
    }
}

impl<T> Context<T> for Result<T, ArenaError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::Arena(e) })
    }
}

impl<T, U> Context<T> for Result<T, Refused<U>> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::Arena(e.error()) })
    }
}

impl<T> Context<T> for Result<T, ArenaRunError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::ArenaRun(e) })
    }
}

impl<T> Context<T> for Result<T, VmArenaError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::VmArena(e) })
    }
}

impl<T> Context<T> for Result<T, ChunkMapError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::ChunkMap(e) })
    }
}

impl<T> Context<T> for Result<T, VmArenaRunError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::VmArenaRun(e) })
    }
}

impl<T> Context<T> for Result<T, ChunkRunError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::ChunkRun(e) })
    }
}

impl<T> Context<T> for Result<T, BatchedRunError> {
    fn context(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure { what, detail: Detail::BatchedRun(e) })
    }
}

/// Fail with `what` unless `cond` holds.
pub fn ensure(cond: bool, what: &'static str) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(Failure::new(what))
    }
}

/// Run `case` `rounds` times, stopping at the first failure.
pub fn repeat(rounds: usize, mut case: impl FnMut() -> Outcome) -> Outcome {
    (0..rounds).try_for_each(|_| case())
}

/// Print a failed case's reason to the kernel log and hand the outcome back
/// for the `#[test]` function to return. The case's name is not repeated:
/// KUnit names the case in the lines around its log (`# <case>: ...`,
/// `not ok N <case>`), and kunit.py shows the log with the case.
pub fn report(outcome: Outcome) -> Outcome {
    if let Err(f) = &outcome {
        kernel::pr_err!("failed: {f}\n");
    }
    outcome
}
