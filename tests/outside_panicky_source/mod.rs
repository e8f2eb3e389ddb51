//! What the tests of sources that fail or panic in a give-back share
//! (`outside_r25_docs_panics.rs`, `outside_r26_edges.rs`): a scripted
//! source that hands out fresh aligned ranges and whose give-backs take
//! the range, refuse it, strand it or panic, as its mode says.

#![allow(dead_code)] // each test file uses part of it

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use vmspace::arena::{ArenaError, Source};
use vmspace::{Addr, Range, ShimError, Size};
use vmspace_shim::Op;

/// Give-backs succeed.
pub const TAKE: u8 = 0;
/// Give-backs are refused (`ArenaError::Backing`): the range stays the
/// importer's.
pub const REFUSE: u8 = 1;
/// Give-backs strand the range (`ArenaError::Stranded`).
pub const STRAND: u8 = 2;
/// Give-backs panic (on the threads `PanicOn` says).
pub const PANIC: u8 = 3;

thread_local! {
    /// Whether `PANIC` mode panics on this thread, for a source made with
    /// `PanicOn::FlaggedThread` (set by the reclaimer).
    pub static PANICS_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Which threads a give-back in `PANIC` mode panics on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PanicOn {
    /// Every thread (the mode is the only switch).
    AnyThread,
    /// Only a thread that set `PANICS_HERE`; on any other the give-back is
    /// taken. With other threads freeing meanwhile, their give-backs must
    /// not panic out of a worker that did not expect it (a process-wide
    /// switch made `outside_r26_edges`'s reclaim test flaky).
    FlaggedThread,
}

/// Hands out fresh aligned ranges (each 1 MiB past the last); give-backs
/// as `mode` says.
pub struct Scripted {
    pub quantum: usize,
    /// Imports left before `NoSpace`, counted back by each give-back taken;
    /// `None`: no limit.
    pub imports_left: Option<usize>,
    /// Imports larger than this: `NoSpace`.
    pub max_import: usize,
    pub next: usize,
    pub mode: &'static AtomicU8,
    pub panic_on: PanicOn,
}

impl Scripted {
    /// Imports of up to 1 MiB without limit; give-backs panic on any thread
    /// while `mode` is `PANIC` (round 25's `Panicky`).
    pub fn panicky(quantum: usize, mode: &'static AtomicU8) -> Self {
        Scripted {
            quantum,
            imports_left: None,
            max_import: 0x10_0000,
            next: 0x10_0000,
            mode,
            panic_on: PanicOn::AnyThread,
        }
    }

    /// `imports` imports, then no more room; a give-back taken makes room
    /// for one more; `PANIC` panics only on a thread that set `PANICS_HERE`
    /// (round 26's `OneSlab`).
    pub fn counted(quantum: usize, imports: usize, mode: &'static AtomicU8) -> Self {
        Scripted {
            quantum,
            imports_left: Some(imports),
            max_import: usize::MAX,
            next: 0x10_0000,
            mode,
            panic_on: PanicOn::FlaggedThread,
        }
    }

    fn take(&mut self) -> Result<(), ArenaError> {
        if let Some(n) = &mut self.imports_left {
            *n += 1;
        }
        Ok(())
    }
}

impl Source for Scripted {
    fn quantum(&self) -> Size {
        Size(self.quantum)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if size.0 > self.max_import || self.imports_left == Some(0) {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        if let Some(n) = &mut self.imports_left {
            *n -= 1;
        }
        let base = self.next.div_ceil(align.0) * align.0;
        self.next = base + size.0 + 0x10_0000;
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        let err = ShimError::Injected { op: Op::Unmap };
        match self.mode.load(Ordering::SeqCst) {
            TAKE => self.take(),
            REFUSE => Err(ArenaError::Backing(err)),
            STRAND => Err(ArenaError::Stranded { range, error: err }),
            _ if self.panic_on == PanicOn::AnyThread || PANICS_HERE.with(Cell::get) => {
                panic!("source release panics (test)")
            }
            _ => self.take(),
        }
    }
}
