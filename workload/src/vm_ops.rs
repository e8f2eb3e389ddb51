//! Map/unmap sequences for a VM (any [`VmTarget`]: the in-process
//! [`Vm`](vmspace::vm::Vm) or one in the kernel), checked against a
//! set-of-pages model.

use core::fmt;

use vmspace_shim::{Addr, Range, Size};

use super::Rng;
use crate::vm_target::VmTarget;
use vmspace::bits;
use vmspace::vm::VmError;

/// One operation on a VM, in page units relative to its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmOp {
    /// Map or unmap.
    pub kind: VmOpKind,
    /// First page index.
    pub first: usize,
    /// Number of pages (zero makes a bad, empty range).
    pub pages: usize,
    /// Bytes added to the base (non-zero makes a misaligned range).
    pub skew: usize,
}

/// The kind of a [`VmOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmOpKind {
    /// [`VmTarget::map`].
    Map,
    /// [`VmTarget::unmap`].
    Unmap,
}

impl VmOp {
    /// The byte range the operation names in a VM at `base` with pages of `page`.
    pub fn range(&self, base: Addr, page: Size) -> Option<Range> {
        let start = self.first.checked_mul(page.0)?.checked_add(self.skew)?;
        Range::from_size(Addr(base.0.checked_add(start)?), Size(self.pages.checked_mul(page.0)?))
            .ok()
    }
}

/// Generates [`VmOp`]s over the first `model_pages` pages of a VM of
/// `vm_pages` pages, with a share of bad ones (misaligned, empty, beyond the
/// limit).
#[derive(Debug, Clone)]
pub struct VmOpGen {
    rng: Rng,
    model_pages: usize,
    vm_pages: usize,
}

impl VmOpGen {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64, model_pages: usize, vm_pages: usize) -> Self {
        VmOpGen { rng: Rng::new(seed), model_pages: model_pages.min(vm_pages), vm_pages }
    }

    /// The next operation, aimed at what `model` has mapped often enough that
    /// most unmaps are valid.
    pub fn next_op_for<const W: usize>(&mut self, model: &PageSetModel<W>) -> VmOp {
        let op = self.next_op();
        if op.kind != VmOpKind::Unmap || op.skew != 0 || op.pages == 0 || !self.rng.chance(700) {
            return op;
        }
        let from = self.rng.below(self.model_pages);
        let first = match bits::find_set(&model.words, from, model.pages)
            .or_else(|| bits::find_set(&model.words, 0, from))
        {
            Some(first) => first,
            None => return op,
        };
        let run_end = bits::find_clear(&model.words, first, model.pages).unwrap_or(model.pages);
        let pages = self.rng.between(1, run_end - first);
        VmOp { kind: VmOpKind::Unmap, first, pages, skew: 0 }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> VmOp {
        let r = &mut self.rng;
        let kind = if r.chance(500) { VmOpKind::Map } else { VmOpKind::Unmap };
        let roll = r.below(100);
        let (first, pages, skew) = match roll {
            // Skews stay below 64 bytes, the smallest page size a backend may have.
            0..=2 => (r.below(self.model_pages), r.between(1, 4), r.between(1, 7) * 8),
            3..=4 => (r.below(self.model_pages), 0, 0),
            5..=7 => {
                // Always crosses the limit, however large the VM.
                let back = r.between(0, 2).min(self.vm_pages);
                (self.vm_pages - back, r.between(back + 1, back + 8), 0)
            }
            _ => {
                let pages = if r.chance(900) { r.between(1, 8) } else { r.between(9, 96) };
                let pages = pages.min(self.model_pages);
                (r.below(self.model_pages - pages + 1), pages, 0)
            }
        };
        VmOp { kind, first, pages, skew }
    }
}

/// The reference model: a set of mapped pages, for up to `64 * W` pages.
#[derive(Debug, Clone)]
pub struct PageSetModel<const W: usize> {
    words: [u64; W],
    pages: usize,
}

impl<const W: usize> PageSetModel<W> {
    /// Pages the model can track.
    pub const CAPACITY: usize = 64 * W;

    /// An empty model of `pages` pages (at most [`CAPACITY`](Self::CAPACITY)).
    pub fn new(pages: usize) -> Self {
        PageSetModel { words: [0; W], pages: pages.min(Self::CAPACITY) }
    }

    /// Pages tracked.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Pages mapped.
    pub fn mapped(&self) -> usize {
        bits::count_range(&self.words, 0, self.pages)
    }

    /// Whether page `i` is mapped.
    pub fn is_mapped(&self, i: usize) -> bool {
        bits::test(&self.words, i)
    }

    /// Maximal runs of mapped pages.
    pub fn runs(&self) -> usize {
        (0..self.pages).filter(|&i| self.is_mapped(i) && (i == 0 || !self.is_mapped(i - 1))).count()
    }

    /// Whether `op` should succeed, and if so apply it.
    pub fn apply(&mut self, op: &VmOp) -> bool {
        let end = match op.first.checked_add(op.pages) {
            Some(e) if op.pages > 0 && op.skew == 0 && e <= self.pages => e,
            _ => return false,
        };
        match op.kind {
            VmOpKind::Map if !bits::any_set(&self.words, op.first, end) => {
                bits::set_range(&mut self.words, op.first, end);
                true
            }
            VmOpKind::Unmap if bits::all_set(&self.words, op.first, end) => {
                bits::clear_range(&mut self.words, op.first, end);
                true
            }
            _ => false,
        }
    }
}

/// What a driven sequence did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmRunStats {
    /// Operations that succeeded.
    pub succeeded: usize,
    /// Operations rejected, as the model predicted.
    pub rejected: usize,
    /// Operations the backend failed (fault injection); the VM stayed unchanged.
    pub backend_failures: usize,
    /// Pages written and read back.
    pub pages_touched: usize,
}

/// How a driven sequence went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmRunError {
    /// The step at which it went wrong.
    pub step: usize,
    /// What disagreed.
    pub what: &'static str,
    /// The VM's error, when there was one.
    pub error: Option<VmError>,
}

impl fmt::Display for VmRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.what)?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Apply `steps` generated operations to `vm` and to a model side by side.
///
/// After every step: the outcome matches the model (a backend failure is
/// allowed in place of success and must leave the VM unchanged), `mapped()`
/// matches, and `check()` passes. With `touch`, every newly mapped page is
/// checked to read zero and stamped, and every page is checked to still hold
/// its stamp before it is unmapped. The VM must start with nothing mapped.
pub fn run<V: VmTarget, const W: usize>(
    vm: &mut V,
    seed: u64,
    steps: usize,
    touch: bool,
) -> Result<VmRunStats, VmRunError> {
    run_observed::<V, W>(vm, seed, steps, touch, &mut |_| {})
}

/// [`run`], calling `done(n)` before each step with the steps done so far
/// (a progress bar's hook).
pub fn run_observed<V: VmTarget, const W: usize>(
    vm: &mut V,
    seed: u64,
    steps: usize,
    touch: bool,
    done: &mut dyn FnMut(usize),
) -> Result<VmRunStats, VmRunError> {
    let page = vm.page_size();
    let vm_pages = vm.range().size().0 / page.0;
    let mut model = PageSetModel::<W>::new(vm_pages);
    let mut gen = VmOpGen::new(seed, model.pages(), vm_pages);
    let mut stats = VmRunStats::default();
    for step in 0..steps {
        done(step);
        let fail = |what, error| VmRunError { step, what, error };
        let op = gen.next_op_for(&model);
        let range = match op.range(vm.base(), page) {
            Some(r) => r,
            None => continue,
        };
        let mut expected = model.clone();
        let ok = expected.apply(&op);
        if ok && touch && op.kind == VmOpKind::Unmap {
            stats.pages_touched += verify_stamps(vm, range, page).map_err(|w| fail(w, None))?;
        }
        let result = match op.kind {
            VmOpKind::Map => vm.map(range),
            VmOpKind::Unmap => vm.unmap(range),
        };
        match (ok, result) {
            (true, Ok(())) => {
                model = expected;
                stats.succeeded += 1;
                if touch && op.kind == VmOpKind::Map {
                    stats.pages_touched +=
                        stamp_zeroed(vm, range, page).map_err(|w| fail(w, None))?;
                }
            }
            (true, Err(VmError::Backend(_))) => stats.backend_failures += 1,
            (true, Err(e)) => return Err(fail("a valid operation was refused", Some(e))),
            (false, Ok(())) => return Err(fail("an invalid operation succeeded", None)),
            (false, Err(_)) => stats.rejected += 1,
        }
        if vm.mapped().0 != model.mapped() * page.0 {
            return Err(fail("mapped() differs from the model", None));
        }
        vm.check().map_err(|e| fail("check() failed", Some(e)))?;
    }
    Ok(stats)
}

/// The stamp written into the first word of the page at `addr`.
fn stamp(addr: usize) -> u64 {
    (addr as u64) ^ 0x005E_ED0F_5EED
}

/// Check that each page of the freshly mapped `range` reads zero at both ends,
/// then stamp its first word and fill its last.
fn stamp_zeroed<V: VmTarget>(vm: &mut V, range: Range, page: Size) -> Result<usize, &'static str> {
    let mut n = 0;
    let mut a = range.base().0;
    while a < range.limit().0 {
        let (first, last) = (Addr(a), Addr(a + page.0 - 8));
        // SAFETY: the VM just mapped `range` read-write (PageOps contract) and
        // nothing else uses these pages; both words are aligned, inside page `a`.
        unsafe {
            let zero = (vm.read_word(first), vm.read_word(last));
            if zero != (Ok(0), Ok(0)) {
                return Err("a freshly mapped page does not read zero");
            }
            vm.write_word(first, stamp(a)).map_err(|_| "a mapped page could not be written")?;
            vm.write_word(last, !stamp(a)).map_err(|_| "a mapped page could not be written")?;
        }
        n += 1;
        a += page.0;
    }
    Ok(n)
}

/// Check that each page of the mapped `range` still holds its stamps.
fn verify_stamps<V: VmTarget>(vm: &V, range: Range, page: Size) -> Result<usize, &'static str> {
    let mut n = 0;
    let mut a = range.base().0;
    while a < range.limit().0 {
        // SAFETY: the model says `range` is mapped, so the VM has it mapped
        // read-write; both words are aligned, inside page `a`.
        let words = unsafe { (vm.read_word(Addr(a)), vm.read_word(Addr(a + page.0 - 8))) };
        if words != (Ok(stamp(a)), Ok(!stamp(a))) {
            return Err("a mapped page lost what was written to it");
        }
        n += 1;
        a += page.0;
    }
    Ok(n)
}
