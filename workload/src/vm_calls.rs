//! Every call of a [`Vm`]: map, unmap, deferred unmap, flush, protect,
//! trim and trim of a range, decoded from fuzzer bytes
//! ([`VmCall::decode`]) and checked against a model of the mapped pages and
//! of the pages whose unmap waits for its flush ([`VmCallModel`],
//! [`step_checked`]): what the `vm` fuzz target runs
//! (and `tests/fuzz_decoded_ops.rs` on stable Rust). [`vm_ops`](crate::vm_ops)
//! drives the calls every [`VmTarget`](crate::VmTarget) has (the device's
//! VMs too); this drives the in-process `Vm` through all of them.
//!
//! After every step: the outcome is the model's (a bad range is refused; so
//! is a map of a page whose deferred unmap is not flushed yet, by the
//! backend, with [`ShimError::Unflushed`], when the backend keeps such pages
//! as the simulated one does; with faults injected, a backend failure may
//! take the place of a success and must change nothing); `mapped()`, the
//! mapped runs and `is_mapped` agree with the model; the backend's unflushed
//! pages are the model's, and a flush completes exactly those; a trim
//! that succeeds gives back the metadata it reports and leaves nothing for
//! the same trim again, and with nothing mapped a whole trim leaves the
//! metadata as it was after the reservation; `check()` passes.

use vmspace::vm::{Vm, VmError};
use vmspace_shim::{PageOps, Protection, ShimError};

use crate::vm_ops::{PageSetModel, VmOp, VmOpKind};

/// Pages `[first, first + pages)` of a VM, `skew` bytes further (non-zero:
/// misaligned), as [`VmOp`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSpan {
    /// First page index.
    pub first: usize,
    /// Number of pages (zero makes a bad, empty range).
    pub pages: usize,
    /// Bytes added to the base.
    pub skew: usize,
}

impl PageSpan {
    fn op(self, kind: VmOpKind) -> VmOp {
        VmOp { kind, first: self.first, pages: self.pages, skew: self.skew }
    }

    /// The page indices, when the span is a good range of whole pages.
    fn indices(self, limit: usize) -> Option<core::ops::Range<usize>> {
        let end = self.first.checked_add(self.pages)?;
        (self.pages > 0 && self.skew == 0 && end <= limit).then_some(self.first..end)
    }
}

/// One call of a [`Vm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmCall {
    /// [`Vm::map`].
    Map(PageSpan),
    /// [`Vm::unmap`].
    Unmap(PageSpan),
    /// [`Vm::unmap_deferred`].
    UnmapDeferred(PageSpan),
    /// [`Vm::protect`].
    Protect(PageSpan, Protection),
    /// [`Vm::flush`].
    Flush,
    /// [`Vm::trim`].
    Trim,
    /// [`Vm::trim_range`].
    TrimRange(PageSpan),
}

impl VmCall {
    /// Decode one call from the front of `bytes` (four of them), for a VM
    /// of `pages` pages: spans start anywhere up to a few pages past the
    /// end, some are empty or misaligned. `None` when the bytes run out.
    pub fn decode(bytes: &mut &[u8], pages: usize) -> Option<VmCall> {
        let (&[k, a, b, c], rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        let first = (usize::from(a) << 8 | usize::from(b)) % pages.saturating_add(4);
        let len = match c % 16 {
            0 => 0,
            n @ 1..=12 => usize::from(n),
            _ => 16 + usize::from(c / 16) * 4,
        };
        let skew = if k & 0xc0 == 0xc0 { 8 * (1 + usize::from(b % 7)) } else { 0 };
        let span = PageSpan { first, pages: len, skew };
        Some(match k % 8 {
            0..=2 => VmCall::Map(span),
            3 => VmCall::Unmap(span),
            4 => VmCall::UnmapDeferred(span),
            5 => {
                let prot = [Protection::None, Protection::Read, Protection::ReadWrite];
                VmCall::Protect(span, prot[usize::from(k / 8) % 3])
            }
            6 => VmCall::Flush,
            _ if k & 8 == 0 => VmCall::Trim,
            _ => VmCall::TrimRange(span),
        })
    }
}

/// The model: which pages are mapped, and which were unmapped by
/// [`Vm::unmap_deferred`] and wait for the flush (up to `64 * W` pages).
#[derive(Debug, Clone)]
pub struct VmCallModel<const W: usize> {
    mapped: PageSetModel<W>,
    unflushed: PageSetModel<W>,
    /// The VM's metadata bytes with nothing mapped and everything trimmed.
    metadata_floor: usize,
}

impl<const W: usize> VmCallModel<W> {
    /// The model of `vm`, just reserved (nothing mapped, nothing waiting):
    /// all its pages (at most `64 * W`), and its metadata bytes then, which
    /// a trim with nothing mapped must come back to.
    pub fn for_vm<P: PageOps>(vm: &Vm<P>) -> Self {
        let pages = vm.range().size().0 / vm.page_size().0;
        VmCallModel {
            mapped: PageSetModel::new(pages),
            unflushed: PageSetModel::new(pages),
            metadata_floor: vm.metadata_mapped().0,
        }
    }

    /// Pages tracked.
    pub fn pages(&self) -> usize {
        self.mapped.pages()
    }

    /// Pages mapped.
    pub fn mapped(&self) -> usize {
        self.mapped.mapped()
    }

    /// Pages unmapped but not flushed.
    pub fn unflushed(&self) -> usize {
        self.unflushed.mapped()
    }
}

/// What a run of calls did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmCallStats {
    /// Calls that succeeded.
    pub succeeded: usize,
    /// Calls refused, as the model predicted.
    pub rejected: usize,
    /// Maps refused because a page's deferred unmap was not flushed.
    pub refused_unflushed: usize,
    /// Calls the backend failed (faults injected); nothing changed.
    pub backend_failures: usize,
    /// Pages a flush completed.
    pub flushed_pages: usize,
    /// Metadata pages trims gave back.
    pub trimmed_pages: usize,
}

/// What went wrong, and the VM's error when there was one.
pub type VmCallFailure = (&'static str, Option<VmError>);

/// Apply `call` to `vm` and to `model`, then check that they agree (see
/// the module docs). `faults`: the backend may fail calls (the model
/// follows only what succeeded). The VM must have started with nothing
/// mapped and its backend with nothing unflushed, and must have as many
/// pages as the model.
pub fn step_checked<P: PageOps, const W: usize>(
    vm: &mut Vm<P>,
    model: &mut VmCallModel<W>,
    call: &VmCall,
    faults: bool,
    stats: &mut VmCallStats,
) -> Result<(), VmCallFailure> {
    let (base, page) = (vm.base(), vm.page_size());
    let limit = model.pages();
    let mut touched = None;
    let (valid, result) = match *call {
        VmCall::Map(s) | VmCall::Unmap(s) | VmCall::UnmapDeferred(s) => {
            let deferred = matches!(call, VmCall::UnmapDeferred(_));
            let kind = if matches!(call, VmCall::Map(_)) { VmOpKind::Map } else { VmOpKind::Unmap };
            let op = s.op(kind);
            let Some(range) = op.range(base, page) else { return Ok(()) };
            touched = s.indices(limit);
            let mut after = model.mapped.clone();
            let valid = after.apply(&op);
            // Only a map can be valid over pages that wait for their flush
            // (they are not mapped); the backend must refuse it.
            let waiting =
                touched.clone().is_some_and(|mut p| p.any(|i| model.unflushed.is_mapped(i)));
            let result = match kind {
                VmOpKind::Map => vm.map(range),
                VmOpKind::Unmap if deferred => vm.unmap_deferred(range),
                VmOpKind::Unmap => vm.unmap(range),
            };
            match (&result, valid, waiting) {
                (Ok(()), true, false) => {
                    model.mapped = after;
                    if deferred {
                        model.unflushed.apply(&s.op(VmOpKind::Map));
                    }
                }
                (Ok(()), true, true) => {
                    return Err(("a page was mapped again before its unmap was flushed", None))
                }
                (Err(VmError::Backend(ShimError::Unflushed(_))), true, true) => {
                    stats.refused_unflushed += 1;
                    return after_step(vm, model, touched);
                }
                _ => {}
            }
            (valid, result)
        }
        VmCall::Protect(s, prot) => {
            let Some(range) = s.op(VmOpKind::Map).range(base, page) else { return Ok(()) };
            touched = s.indices(limit);
            let valid = touched.clone().is_some_and(|mut p| p.all(|i| model.mapped.is_mapped(i)));
            (valid, vm.protect(range, prot))
        }
        VmCall::Flush => {
            let done = vm.flush();
            if done != model.unflushed() {
                return Err(("a flush completed other than the unflushed pages", None));
            }
            stats.flushed_pages += done;
            model.unflushed = PageSetModel::new(limit);
            (true, Ok(()))
        }
        VmCall::Trim => {
            let result = trimmed(vm, model, true, |vm| vm.trim())?;
            stats.trimmed_pages += result.as_ref().map_or(0, |n| *n);
            (true, result.map(drop))
        }
        VmCall::TrimRange(s) => {
            let Some(range) = s.op(VmOpKind::Map).range(base, page) else { return Ok(()) };
            let whole = s.indices(limit);
            let everything = whole.as_ref().is_some_and(|p| p.start == 0 && p.end == limit);
            let result = trimmed(vm, model, everything, |vm| vm.trim_range(range))?;
            stats.trimmed_pages += result.as_ref().map_or(0, |n| *n);
            (whole.is_some(), result.map(drop))
        }
    };
    match (valid, result) {
        (true, Ok(())) => stats.succeeded += 1,
        (true, Err(VmError::Backend(_))) if faults => stats.backend_failures += 1,
        (true, Err(e)) => return Err(("a valid call was refused", Some(e))),
        (false, Ok(())) => return Err(("an invalid call succeeded", None)),
        (false, Err(_)) => stats.rejected += 1,
    }
    after_step(vm, model, touched)
}

/// Unmap every mapped run, then trim, each a checked step: the VM's
/// metadata must come back to the model's floor ([`VmCallModel::for_vm`]).
/// The end of a run of calls, with the backend's faults cleared.
pub fn unmap_all_and_trim<P: PageOps, const W: usize>(
    vm: &mut Vm<P>,
    model: &mut VmCallModel<W>,
    stats: &mut VmCallStats,
) -> Result<(), VmCallFailure> {
    let (base, page) = (vm.base().0, vm.page_size().0);
    while let Some(run) = vm.mapped_runs().next() {
        let first = (run.base().0 - base) / page;
        let span = PageSpan { first, pages: run.size().0 / page, skew: 0 };
        step_checked(vm, model, &VmCall::Unmap(span), false, stats)?;
        if model.mapped.is_mapped(first) {
            return Err(("a mapped run could not be unmapped", None));
        }
    }
    step_checked(vm, model, &VmCall::Trim, false, stats)
}

/// Run a trim: when it succeeds, the metadata it reports given back has
/// left [`Vm::metadata_mapped`], the same trim again finds nothing, and
/// when it covered `everything` with nothing mapped, the metadata is back
/// at the model's floor.
fn trimmed<P: PageOps, const W: usize>(
    vm: &mut Vm<P>,
    model: &VmCallModel<W>,
    everything: bool,
    trim: impl Fn(&mut Vm<P>) -> Result<usize, VmError>,
) -> Result<Result<usize, VmError>, VmCallFailure> {
    let before = vm.metadata_mapped().0;
    let pages = match trim(vm) {
        Ok(pages) => pages,
        Err(e) => return Ok(Err(e)),
    };
    if before - vm.metadata_mapped().0 != pages * vm.page_size().0 {
        return Err(("a trim gave back other than the metadata it reported", None));
    }
    match trim(vm) {
        Ok(0) => {}
        Ok(_) => return Err(("the same trim again found metadata to give back", None)),
        Err(e) => return Err(("the same trim again failed", Some(e))),
    }
    let after = vm.metadata_mapped().0;
    if everything && model.mapped() == 0 && after != model.metadata_floor {
        return Err(("metadata left mapped by a trim with nothing mapped", None));
    }
    Ok(Ok(pages))
}

/// The checks after every step: counts, the pages the call named, the
/// runs, the backend's unflushed pages, `check()`.
fn after_step<P: PageOps, const W: usize>(
    vm: &Vm<P>,
    model: &VmCallModel<W>,
    touched: Option<core::ops::Range<usize>>,
) -> Result<(), VmCallFailure> {
    let (base, page) = (vm.base().0, vm.page_size().0);
    if vm.mapped().0 != model.mapped() * page {
        return Err(("mapped() differs from the model", None));
    }
    if touched.is_some_and(|mut p| {
        p.any(|i| vm.is_mapped(vmspace_shim::Addr(base + i * page)) != model.mapped.is_mapped(i))
    }) {
        return Err(("is_mapped differs from the model", None));
    }
    let mut runs = 0;
    for r in vm.mapped_runs() {
        let (first, end) = ((r.base().0 - base) / page, (r.limit().0 - base) / page);
        let whole = (first..end).all(|i| model.mapped.is_mapped(i));
        let maximal = (first == 0 || !model.mapped.is_mapped(first - 1))
            && (end >= model.pages() || !model.mapped.is_mapped(end));
        if !whole || !maximal {
            return Err(("a mapped run differs from the model", None));
        }
        runs += 1;
    }
    if runs != model.mapped.runs() {
        return Err(("mapped runs differ from the model", None));
    }
    if vm.ops().unflushed_pages() != model.unflushed() {
        return Err(("the backend's unflushed pages differ from the model", None));
    }
    vm.check().map_err(|e| ("check() failed", Some(e)))
}
