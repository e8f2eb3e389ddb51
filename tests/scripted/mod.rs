//! A simulated backend whose map, unmap and protect calls fail as a test
//! scripts them: cleanly, part way, with the contents decommitted, or as a
//! refusal; within what `PageOps` allows a failed call to leave. Shared by
//! the settle tests (`chunkmap_settle.rs`, `vmarena_settle.rs`) and the
//! round-17 reviewer's (`outside_today_*.rs`), whose backend it was.

#![allow(dead_code)] // each test file uses part of it

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Op, PageOps, Protection, Range, ShimError, Size};

/// The simulator's page size in these tests.
pub const PAGE: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fail {
    Clean,
    /// The first page gets the protection asked for (`None` for an
    /// unmap), then the call fails.
    Partial,
    /// An unmap only: the whole range's contents are decommitted as asked
    /// (they read zero), the pages stay mapped, and the call still fails
    /// (PageOps: "after any call returns Err, the pages ... are in the
    /// state they had before the call, or (for unmap only) decommitted as
    /// the call asked").
    Decommitted,
    /// Refused before doing anything, as by a backend that never performs
    /// the call (`InvalidArgument`: a refusal, changing nothing).
    Refused,
}

pub type Rule = Box<dyn FnMut(u32, Op, Range) -> Option<Fail> + Send>;

/// A thread-safe scripted backend over the simulator: `rule` sees every
/// map, unmap and protect (numbered from 1 since the last `arm`).
pub struct Scripted<'a> {
    pub sim: &'a SimBackend<'a>,
    pub calls: AtomicU32,
    /// Unmap and protect calls since the last `arm`.
    pub changes: AtomicU32,
    pub rule: Mutex<Option<Rule>>,
    pub failures: AtomicUsize,
}

impl<'a> Scripted<'a> {
    pub fn new(sim: &'a SimBackend<'a>) -> Self {
        Scripted {
            sim,
            calls: AtomicU32::new(0),
            changes: AtomicU32::new(0),
            rule: Mutex::new(None),
            failures: AtomicUsize::new(0),
        }
    }
    pub fn arm(&self, rule: impl FnMut(u32, Op, Range) -> Option<Fail> + Send + 'static) {
        self.calls.store(0, Ordering::SeqCst);
        self.changes.store(0, Ordering::SeqCst);
        *self.rule.lock().unwrap() = Some(Box::new(rule));
    }
    /// Fail the unmap and protect calls whose numbers (from 1, counting
    /// those two kinds only) `script` names.
    pub fn arm_script(&self, script: HashMap<u32, Fail>) {
        let mut k = 0;
        self.arm(move |_, op, _| {
            if op == Op::Map {
                return None;
            }
            k += 1;
            script.get(&k).copied()
        });
    }
    pub fn disarm(&self) {
        *self.rule.lock().unwrap() = None;
    }
    pub fn fail(&self, op: Op, range: Range, prot: Protection) -> Result<(), ShimError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if op != Op::Map {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
        let verdict = self.rule.lock().unwrap().as_mut().and_then(|r| r(n, op, range));
        match verdict {
            None => Ok(()),
            Some(f) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                if f == Fail::Refused {
                    return Err(ShimError::InvalidArgument("refused"));
                }
                // (The maintainers' adaptation to PageOps' contract as
                // made exact after this review: a failed unmap leaves its
                // pages mapped, its contents perhaps gone, so a decommitted
                // failure zeroes the range; and a failure part way never
                // changes the whole range, so a range of one page fails
                // cleanly. These models had unmapped the range, and
                // changed all of a one-page range.)
                if f == Fail::Decommitted && op == Op::Unmap {
                    // SAFETY: the caller's range, mapped (unmap's contract),
                    // memory of the simulator's buffer; no one reads it
                    // until it is mapped again.
                    unsafe { range.base().as_ptr::<u8>().write_bytes(0, range.size().0) };
                }
                if f == Fail::Partial && op != Op::Map && range.size().0 > PAGE {
                    let first = Range::from_size(range.base(), Size(PAGE)).unwrap();
                    // SAFETY: a prefix of the caller's range, mapped (the
                    // caller's contract for a protect or an unmap).
                    unsafe { self.sim.protect(first, prot) }.unwrap();
                }
                Err(ShimError::Injected { op })
            }
        }
    }
}

// SAFETY: every call is forwarded to the simulator with its own arguments,
// or (a partial failure) a prefix of its range.
unsafe impl PageOps for Scripted<'_> {
    fn page_size(&self) -> Size {
        self.sim.page_size()
    }
    fn name(&self) -> &'static str {
        "outside scripted"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.sim.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.sim.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        self.fail(Op::Map, range, Protection::ReadWrite)?;
        // SAFETY: forwarded.
        unsafe { self.sim.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        self.fail(Op::Unmap, range, Protection::None)?;
        // SAFETY: forwarded.
        unsafe { self.sim.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        self.fail(Op::Protect, range, prot)?;
        // SAFETY: forwarded.
        unsafe { self.sim.protect(range, prot) }
    }
    fn relax(&self) {
        std::thread::yield_now();
    }
}
