//! [`KeepFree`]: an import quantum, and spans given back kept for the next
//! imports of their size.

use vmspace_shim::{Range, ShimError, Size};

use crate::arena::{check_import, ArenaError, Refused, SharedSourcePanic, Source};
use crate::vm::VmError;

/// A [`Source`] over `S` that imports in multiples of its own quantum (an
/// import quantum: fewer, larger imports) and keeps up to `N` spans given
/// back, for the next imports of their size, instead of giving each back
/// to `S` at once.
///
/// An arena gives an imported span back the moment it is wholly free (see
/// [`Source`]), so a heap whose allocations come and go where a span is
/// otherwise empty imports and gives back a span every pair: over a
/// [`VmSource`](super::VmSource), a map and an unmap a pair. Over
/// `KeepFree`, the pair takes back the span kept, and the source below
/// sees nothing.
///
/// - **Quantum:** the larger of the `quantum` given and `S`'s, so that
///   every import asked of `S` is a multiple of its own. (Not a power of
///   two: an arena refuses the source when it is made, as any such source.)
///   Over a source that does not honour alignments above its quantum
///   ([`Source::imports_aligned`] false, as the C API's import functions),
///   `S`'s alone: a larger one could not be kept aligned, since a span
///   goes back to `S` only whole, as `S` made it.
/// - **Import:** a kept span of exactly the size asked, aligned as asked,
///   the one kept last first; else an import from `S`. When `S` is short
///   of room or memory ([`NoSpace`](ArenaError::NoSpace),
///   [`TagsExhausted`](ArenaError::TagsExhausted), or its backend's
///   [`OutOfMemory`](vmspace_shim::ShimError::OutOfMemory) or
///   [`OutOfAddressSpace`](vmspace_shim::ShimError::OutOfAddressSpace))
///   and spans are kept, they all go back to `S` first
///   ([`trim`](Self::trim)) and `S` is asked once more; any other failure
///   comes back as `S` gave it, the spans still kept. A range from `S`
///   that is not what was asked (its size, at a multiple of the alignment)
///   goes back to `S` and the import fails with [`ArenaError::BadImport`],
///   so that everything this source hands out is whole quanta.
/// - **Give-back:** kept when it is one of the last `2 N` spans this
///   source handed out, not given back (nor refused by the importer,
///   [`Source::refused`]) since, and fewer than `N` are kept; any
///   other give-back goes to `S`, which judges it as it would without this
///   source (the sources of this crate refuse a range they do not hold, so
///   a span given back twice is refused there). So a span this source
///   could not vouch for is never kept, and it adds no way to hand a range
///   out twice. A range that is not whole quanta, or overlaps a kept one,
///   is refused with [`ArenaError::BadFree`], changing nothing; a range
///   `S` refuses is still noted as handed out here (a refusal changes
///   nothing here either), but not one whose give-back panicked in `S`
///   (`S` may have taken it first) nor one `S` strands
///   ([`ArenaError::Stranded`]: `S` keeps it for good).
/// - **Unflushed give-back** ([`Source::release_unflushed`], an arena
///   dropped with deferred frees not yet flushed): never kept; it goes to
///   `S`, which must not hand it out before its flush. Refused as a
///   give-back is (not whole quanta, or overlapping a kept span), and as
///   a give-back, a refusal by `S` changes nothing here.
/// - **Drop:** every kept span goes back to `S` (errors ignored, as an
///   arena's drop ignores its source's).
/// - **A panic below:** once a call into `S` (any of its methods) panics,
///   `S` is given nothing back until a call into it returns again (any
///   call: an import, or a question such as the `quantum()` an importing
///   arena asks before each import): a give-back is refused with [`ArenaError::SourceBusy`] (an
///   arena keeps the span, free), [`trim`](Self::trim) gives nothing back,
///   and the drop leaves the kept spans taken on `S`'s books. A drop or a
///   give-back made as that panic unwinds would call `S` again, and a
///   second panic while unwinding aborts the process.
///
/// A kept span is as its last user left it: over a `VmSource`, still
/// mapped, with whatever was written to it (an import from `S` may be
/// fresh zeroed pages; a kept one is not).
///
/// `N = 0` keeps nothing: an import quantum alone. The spans are kept in
/// the value (48 bytes for each of `N`, at most [`MAX_KEPT`], checked when the
/// code is built): keep `N` small where the value lives on a small stack
/// (a kernel's).
///
/// ```compile_fail
/// # use vmspace::{arena::NoSource, sources::{KeepFree, MAX_KEPT}, Size};
/// // More than MAX_KEPT: refused when the code is built.
/// let k = KeepFree::<NoSource, { MAX_KEPT + 1 }>::new(NoSource, Size(1));
/// ```
///
/// A source below that panics leaves no span both kept here and taken
/// back by it: a span leaves this source's books before `S` sees it (at
/// worst it is lost to both, never live in two).
///
/// ```
/// use vmspace::arena::{Arena, Policy, SliceStore};
/// use vmspace::sources::KeepFree;
/// use vmspace::{Addr, Size};
///
/// # fn main() -> Result<(), vmspace::arena::ArenaError> {
/// let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
/// let mut parent = Arena::new(
///     "parent", Size(4096), SliceStore::new(&mut pt), SliceStore::new(&mut ph), vmspace::arena::NoSource,
/// )?;
/// parent.add(Addr(1 << 20), Size(1 << 20))?;
/// // Imports of 64 KiB at least; up to two spans kept.
/// let source = KeepFree::<_, 2>::new(&mut parent, Size(64 << 10));
/// let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
/// let mut heap = Arena::new("heap", Size(16), SliceStore::new(&mut tags), SliceStore::new(&mut hash), source)?;
/// for _ in 0..1000 {
///     let a = heap.alloc(Size(16), Policy::InstantFit)?;
///     heap.free(a, Size(16))?;
/// }
/// // One import from the parent; every later pair took the kept span back.
/// let counts = heap.source().counts();
/// assert_eq!((counts.imported, counts.reused, counts.kept), (1, 999, 1000));
/// # Ok(()) }
/// ```
///
/// # Invariants
///
/// `kept[..len]` are ranges `S` imported, which this source handed out and
/// was given back since, each once, none overlapping another; `len <= N`.
/// `out` (flattened) `[..outs]` are ranges this source handed out, of the
/// last `2 N` it handed out (the most recent last), and has not had back
/// since; none overlaps another or a kept one.
pub struct KeepFree<S: Source, const N: usize> {
    inner: S,
    quantum: Size,
    kept: [Range; N],
    len: usize,
    out: [[Range; N]; 2],
    outs: usize,
    counts: KeepCounts,
    /// Whether a call into `inner` panicked and none has returned since.
    below_panic: SharedSourcePanic,
}

/// An unused slot.
const NONE: Range = Range::empty(vmspace_shim::Addr(0));

/// The most spans a [`KeepFree`] keeps (its `N`).
pub const MAX_KEPT: usize = 256;

/// What a [`KeepFree`] has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepCounts {
    /// Imports from the source below (one that was not what was asked,
    /// given straight back, counts here and in `released`).
    pub imported: u64,
    /// Imports served by a kept span.
    pub reused: u64,
    /// Spans given back and kept.
    pub kept: u64,
    /// Spans given back to the source below (at once, unflushed, or later
    /// from the kept ones).
    pub released: u64,
    /// Give-backs to the source below that it refused (the span stays with
    /// its holder), or that stranded the span.
    pub release_failures: u64,
}

impl<S: Source, const N: usize> KeepFree<S, N> {
    /// A source over `inner` importing in multiples of `quantum` (or of
    /// `inner`'s quantum, if larger), keeping up to `N` spans given back.
    pub fn new(inner: S, quantum: Size) -> Self {
        const { assert!(N <= MAX_KEPT, "KeepFree keeps at most MAX_KEPT spans") };
        KeepFree {
            inner,
            quantum,
            kept: [NONE; N],
            len: 0,
            out: [[NONE; N]; 2],
            outs: 0,
            counts: KeepCounts::default(),
            below_panic: SharedSourcePanic::new(),
        }
    }

    /// The source below.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The source below, mutably (for its own introspection and settings;
    /// giving it back a span it handed out here is not fine).
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The source below, once every kept span has gone back to it
    /// ([`trim`](Self::trim)). If it refused one, this source comes back
    /// instead (`Err`), keeping the spans refused: dropped here, they would
    /// be lost to both. Spans handed out and not given back stay with
    /// whoever holds them; give them back to `S` directly from now on.
    ///
    /// Refused, the adapter comes back in a [`Refused`] whose error,
    /// [`InUse`](ArenaError::InUse), counts the spans still kept.
    pub fn into_inner(mut self) -> Result<S, Refused<Self>> {
        self.trim();
        if self.len > 0 {
            let e = ArenaError::InUse { what: "kept spans not given back", size: self.kept_size() };
            return Err(Refused::new(e, self));
        }
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped nor used again, so `inner` is
        // moved out of it exactly once; no other field owns anything
        // (ranges and counts).
        Ok(unsafe { core::ptr::read(&this.inner) })
    }

    /// The spans kept, the one kept last at the end.
    pub fn kept(&self) -> &[Range] {
        &self.kept[..self.len]
    }

    /// The bytes (units) kept.
    pub fn kept_size(&self) -> Size {
        Size(self.kept().iter().map(|r| r.size().0).sum())
    }

    /// What this source has done.
    pub fn counts(&self) -> KeepCounts {
        self.counts
    }

    /// Give every kept span back to the source below; a span it refuses
    /// stays kept (counted in
    /// [`release_failures`](KeepCounts::release_failures)), unless it says
    /// [`ArenaError::Stranded`] (it keeps the span, unusable). Returns the
    /// size given back.
    pub fn trim(&mut self) -> Size {
        let mut given = 0;
        let mut still = 0;
        while still < self.len {
            // Off the books before `S` sees it (see the type's docs).
            let r = self.take(still);
            match self.release_below(r) {
                Ok(()) => given += r.size().0,
                Err(ArenaError::Stranded { .. }) => {}
                Err(_) => {
                    self.put(still, r);
                    still += 1;
                }
            }
        }
        Size(given)
    }

    /// Check the type's invariants that can be seen from here: at most `N`
    /// spans kept, each non-empty, a multiple of the quantum at a multiple
    /// of it, none overlapping another; the spans noted as handed out
    /// non-empty, overlapping neither each other nor a kept one.
    pub fn check(&self) -> Result<(), ArenaError> {
        let q = self.quantum();
        if self.len > N {
            return Err(ArenaError::InvalidArgument("KeepFree: more spans kept than N"));
        }
        for (i, r) in self.kept().iter().enumerate() {
            if r.is_empty() || !r.is_aligned(q) {
                return Err(ArenaError::InvalidArgument(
                    "KeepFree: a kept span is not whole quanta",
                ));
            }
            if self.kept()[..i].iter().any(|k| k.overlaps(r)) {
                return Err(ArenaError::InvalidArgument("KeepFree: two kept spans overlap"));
            }
        }
        let out = &self.out.as_flattened()[..self.outs.min(2 * N)];
        for (i, r) in out.iter().enumerate() {
            if r.is_empty() || out[..i].iter().chain(self.kept()).any(|k| k.overlaps(r)) {
                return Err(ArenaError::InvalidArgument(
                    "KeepFree: a span handed out is empty, kept or noted twice",
                ));
            }
        }
        Ok(())
    }

    /// Call `f` on the source below, noting that a call is under way: should
    /// it panic, the note stays, and `S` is given nothing back until a call
    /// into it returns again (see the type's docs).
    fn below<T>(&mut self, f: impl FnOnce(&mut S) -> T) -> T {
        let inner = &mut self.inner;
        self.below_panic.call(|| f(inner))
    }

    /// [`below`](Self::below) for `S`'s questions.
    fn below_ref<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        self.below_panic.call(|| f(&self.inner))
    }

    /// Whether a call into `S` panicked and none has returned since.
    fn below_panicked(&mut self) -> bool {
        self.below_panic.noted()
    }

    /// Note `r` as handed out (forgetting the oldest if `2 N` are noted).
    fn hand_out(&mut self, r: Range) -> Range {
        let out = self.out.as_flattened_mut();
        if !out.is_empty() {
            if self.outs == out.len() {
                out.copy_within(1.., 0);
                self.outs -= 1;
            }
            out[self.outs] = r;
            self.outs += 1;
        }
        r
    }

    /// Where `r` is noted as handed out, if it is.
    fn noted(&self, r: Range) -> Option<usize> {
        self.out.as_flattened()[..self.outs].iter().rposition(|o| *o == r)
    }

    /// Forget note `i` (from [`noted`](Self::noted), no note added since).
    fn forget(&mut self, i: usize) {
        self.out.as_flattened_mut().copy_within(i + 1..self.outs, i);
        self.outs -= 1;
    }

    /// Put back note `i` of `r` that [`forget`](Self::forget) took out, no
    /// note added or forgotten since.
    fn renote(&mut self, i: usize, r: Range) {
        let out = self.out.as_flattened_mut();
        out.copy_within(i..self.outs, i + 1);
        out[i] = r;
        self.outs += 1;
    }

    /// Give `range` to `S` through `give` (counted by the caller), its note
    /// forgotten first and put back when `S` refuses it: a refusal changes
    /// nothing here. A call that panics leaves it forgotten (`S` may have
    /// taken the range before it panicked, and may hand it out again), and
    /// so does [`Stranded`](ArenaError::Stranded): `S` keeps the range for
    /// good, so this source cannot vouch for it again (round 74 found the
    /// first version noting it again, so that a second give-back kept it and
    /// the next import handed it out).
    fn give_below(
        &mut self,
        range: Range,
        noted: Option<usize>,
        give: impl FnOnce(&mut Self) -> Result<(), ArenaError>,
    ) -> Result<(), ArenaError> {
        if let Some(i) = noted {
            self.forget(i);
        }
        let r = give(self);
        match (&r, noted) {
            (Err(ArenaError::Stranded { .. }), _) | (Ok(()), _) | (_, None) => {}
            (Err(_), Some(i)) => self.renote(i, range),
        }
        r
    }

    /// Whether `r` is noted as handed out; no longer, if it was.
    fn came_back(&mut self, r: Range) -> bool {
        self.noted(r).map(|i| self.forget(i)).is_some()
    }

    /// Refuse, changing nothing, a give-back of a range that is not whole
    /// quanta or overlaps a kept span; else where it is noted.
    fn check_give_back(&self, range: Range) -> Result<Option<usize>, ArenaError> {
        self.not_kept(range)?;
        if range.is_empty() || !range.is_aligned(self.quantum()) {
            return Err(bad_free(range));
        }
        Ok(self.noted(range))
    }

    /// The index of a kept span of exactly `size` at a multiple of
    /// `align`, the one kept last first.
    fn find(&self, size: Size, align: Size) -> Option<usize> {
        self.kept().iter().rposition(|r| r.size() == size && r.base().is_aligned(align))
    }

    /// Take kept span `i` out, keeping the others in order.
    fn take(&mut self, i: usize) -> Range {
        let r = self.kept[i];
        self.kept.copy_within(i + 1..self.len, i);
        self.len -= 1;
        r
    }

    /// Keep `r` at index `i` (at most `len`; fewer than `N` kept), keeping
    /// the others in order.
    fn put(&mut self, i: usize, r: Range) {
        self.kept.copy_within(i..self.len, i + 1);
        self.kept[i] = r;
        self.len += 1;
    }

    /// Refuse a give-back of `range` if it overlaps a kept span (which `S`
    /// counts as handed out, so could not refuse).
    fn not_kept(&self, range: Range) -> Result<(), ArenaError> {
        if self.kept().iter().any(|k| k.overlaps(&range)) {
            return Err(bad_free(range));
        }
        Ok(())
    }

    /// Give `r` to `S`, counted; refused without a call while the last
    /// call into `S` has not returned.
    fn release_below(&mut self, r: Range) -> Result<(), ArenaError> {
        if self.below_panicked() {
            return Err(ArenaError::SourceBusy);
        }
        let back = self.below(|s| s.release(r));
        self.count_release(back)
    }

    /// Count a give-back to the source below that gave `r`.
    fn count_release(&mut self, r: Result<(), ArenaError>) -> Result<(), ArenaError> {
        match r {
            Ok(()) => self.counts.released += 1,
            Err(_) => self.counts.release_failures += 1,
        }
        r
    }
}

/// Whether an import failed for want of room or memory below, which the
/// spans kept here may be holding (a `VmSource`'s kept spans are mapped
/// pages; a parent arena's, free segments and their tags).
fn short_of_room(e: &ArenaError) -> bool {
    let shortage = |e: &ShimError| {
        matches!(e, ShimError::OutOfMemory(_) | ShimError::OutOfAddressSpace { .. })
    };
    match e {
        ArenaError::NoSpace { .. } | ArenaError::TagsExhausted => true,
        ArenaError::Backing(e) | ArenaError::Vm(VmError::Backend(e)) => shortage(e),
        _ => false,
    }
}

/// The refusal of a give-back of `range` that is not this source's to take.
fn bad_free(range: Range) -> ArenaError {
    ArenaError::BadFree { addr: range.base(), size: range.size(), allocated: None }
}

impl<S: Source, const N: usize> Source for KeepFree<S, N> {
    fn quantum(&self) -> Size {
        let (below, aligned) = self.below_ref(|s| (s.quantum(), s.imports_aligned()));
        if aligned {
            self.quantum.max(below)
        } else {
            below
        }
    }

    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        check_import(self.quantum(), size, align)?;
        if let Some(i) = self.find(size, align) {
            self.counts.reused += 1;
            let r = self.take(i);
            return Ok(self.hand_out(r));
        }
        let r = match self.below(|s| s.import(size, align)) {
            Err(e) if self.len > 0 && short_of_room(&e) => {
                self.trim();
                self.below(|s| s.import(size, align))
            }
            r => r,
        }?;
        self.counts.imported += 1;
        if r.size() != size || !r.base().is_aligned(align) {
            // `S` broke its contract: its range goes back, not up (and
            // if `S` will not take it, there is no one else to tell).
            let _ = self.release_below(r);
            return Err(ArenaError::BadImport(r));
        }
        Ok(self.hand_out(r))
    }

    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        if self.below_panicked() {
            return Err(ArenaError::SourceBusy);
        }
        let noted = self.check_give_back(range)?;
        if let Some(i) = noted.filter(|_| self.len < N) {
            self.forget(i);
            self.kept[self.len] = range;
            self.len += 1;
            self.counts.kept += 1;
            return Ok(());
        }
        self.give_below(range, noted, |k| k.release_below(range))
    }

    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        if self.below_panicked() {
            return Err(ArenaError::SourceBusy);
        }
        let noted = self.check_give_back(range)?;
        self.give_below(range, noted, |k| {
            let r = k.below(|s| s.release_unflushed(range));
            k.count_release(r)
        })
    }

    fn can_import(&self) -> bool {
        self.below_ref(|s| s.can_import())
    }

    fn imports_aligned(&self) -> bool {
        self.below_ref(|s| s.imports_aligned())
    }

    /// The importer refused `range`, just handed out: no longer one this
    /// source vouches for; `S` is told.
    fn refused(&mut self, range: Range) {
        self.came_back(range);
        self.below(|s| s.refused(range))
    }
}

impl<S: Source, const N: usize> Drop for KeepFree<S, N> {
    fn drop(&mut self) {
        // A call into `S` that never returned panicked: this drop may be
        // part of that panic's unwinding, where a second panic from `S`
        // would abort the process. Its kept spans are left to `S`.
        if !self.below_panicked() {
            self.trim();
        }
    }
}
