//! Where an arena imports spans from when it runs out.

use core::cell::RefCell;

use vmspace_shim::{Range, Size};

use super::ArenaError;

/// A supplier of spans: another arena, a VM, anything that hands out
/// aligned ranges and takes them back.
///
/// An arena with a source imports a span (rounded up to the source's
/// quantum) when no free segment satisfies a request (but not for a request
/// with an address window, `min`, `max` or `exact`, whose place the source
/// cannot be asked for: that one fails with [`ArenaError::NoSpace`]), and
/// gives an imported span back as soon as it is wholly free again.
///
/// Contract: `import` returns exactly `size` units aligned to `align`, owned by
/// the caller until released, overlapping nothing else the source handed out;
/// a failing call changes nothing. `release` takes back exactly a range that
/// `import` returned; when it fails, the range stays with the caller, as
/// usable as it was (a source over memory puts back what a failed unmap
/// changed), except with [`ArenaError::Stranded`]: the source could not
/// put it back, keeps it, and the caller must not use it again. A
/// range the arena cannot use is given back through `release`, unless it
/// overlaps a span the arena holds (a source that broke the contract): then
/// the arena keeps away from it and tells the source through
/// [`refused`](Self::refused).
///
/// The arena calls its source from inside its own operations (a
/// [`SyncArena`](crate::sync::SyncArena) with its lock held), so a source
/// must not call back into the arena that imports from it: through a
/// `&RefCell` that call fails with [`ArenaError::SourceBusy`], through a
/// `SyncArena` it waits for itself for ever. A source may panic; the arena
/// is left consistent (and a `SyncArena`'s lock released) as the panic
/// unwinds, and gives it nothing back until a call into it returns again
/// (an import): a give-back made as the panic unwinds (the arena's drop,
/// or a free in another value's drop) would call it again, and a second
/// panic while unwinding aborts the process. Spans left wholly free
/// meanwhile go back at the first free after that. The note is the
/// arena's own: arenas that share one source through a `&RefCell` do not
/// see each other's, so a sibling dropped as the panic unwinds calls the
/// source again (share a source that may panic through a parent arena,
/// whose own note covers its children, or through a
/// [`KeepFree`](crate::sources::KeepFree), whose note is the adapter's).
/// A give-back refused with [`ArenaError::SourceBusy`] (a `&RefCell`
/// borrowed elsewhere, an adapter whose source panicked) leaves the span
/// in the arena, free, offered again at the next free, then at the free
/// after 2, 4, ... up to 1,024 more while the source stays busy; spans
/// emptied meanwhile wait with it, and each such offer is of every wholly
/// free span the arena holds (one refused with another error included).
/// The first call into the source to return after a panic noted by the
/// arena resets that wait (an adapter's own note, such as `KeepFree`'s,
/// does not: the arena sees only its refusals). A free, in these rules,
/// is one that leaves a segment free in the arena: a whole free, by
/// address or handle, or a deferred free's [`flushed`](super::Arena::flushed);
/// a partial free or a shrinking resize makes no offer.
pub trait Source {
    /// The granularity of imports: a power of two, the same for the
    /// source's life. An arena asks at every import, and refuses a source
    /// whose quantum is not a power of two when it is made, and any import
    /// while it is not one ([`ArenaError::InvalidArgument`]): a `&RefCell`
    /// source borrowed elsewhere when the arena is made answers 1 and is
    /// caught at its first import.
    fn quantum(&self) -> Size;

    /// Import `size` units (a non-zero multiple of [`quantum`](Self::quantum))
    /// at a multiple of `align` (a power of two, at least the quantum). The
    /// arena only asks that; the sources of this crate refuse anything else
    /// with an error ([`ArenaError::Misaligned`] for a size that is not a
    /// non-zero multiple of the quantum, [`ArenaError::InvalidArgument`]
    /// for an alignment that is not a power of two at least the quantum)
    /// and change nothing.
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError>;

    /// Give back `range`, which [`import`](Self::import) returned.
    ///
    /// # Errors
    ///
    /// Any error but [`ArenaError::Stranded`] leaves `range` with the
    /// caller, usable as it was before the call. `Stranded` leaves it with
    /// the source, taken and unusable (see the trait's contract). The
    /// sources of this crate refuse a range they did not hand out (or not
    /// all of it) with [`ArenaError::BadFree`].
    fn release(&mut self, range: Range) -> Result<(), ArenaError>;

    /// Whether this source can ever import (`false` for [`NoSource`]).
    fn can_import(&self) -> bool {
        true
    }

    /// Whether [`import`](Self::import) honours an `align` above the
    /// quantum. A source that cannot (an import function that takes no
    /// alignment, as vmem(9)'s does not) says `false`: an arena then asks
    /// it for `align - quantum` more at the quantum's alignment, and places
    /// the request inside that span (the rest of it stays free in the
    /// arena), so a constrained request imports what it needs either way.
    fn imports_aligned(&self) -> bool {
        true
    }

    /// Take back `range`, which [`import`](Self::import) returned, from an
    /// arena going away while some of it is freed but not yet flushed (see
    /// [`Arena::free_deferred`](super::Arena::free_deferred)): it must not be
    /// handed out again before that flush. A source that is itself an
    /// arena takes it as a deferred free of its own, unflushed until its
    /// own [`flushed`](super::Arena::flushed), so the promise holds all the
    /// way up a chain of arenas; a [`VmSource`](crate::sources::VmSource)
    /// unmaps it without a flush and holds it until its own flush; a
    /// [`VmArena`](crate::vmarena::VmArena) frees its tracts unmapped, none
    /// kept spare (the unmap's TLB flush completes the importer's). The
    /// default refuses ([`ArenaError::SourceBusy`]): the range then stays
    /// taken in the source for good (address space lost, never reissued
    /// early).
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        let _ = range;
        Err(ArenaError::SourceBusy)
    }

    /// The arena refused `range`, which [`import`](Self::import) just
    /// returned, because it overlaps a span the arena holds, and does not
    /// give it back (that would hand back a live span). A source that keeps
    /// accounts drops the range from them here; the default does nothing.
    fn refused(&mut self, range: Range) {
        let _ = range;
    }
}

/// Check an import's arguments against [`Source::import`]'s contract: `size`
/// a non-zero multiple of `quantum`, `align` a power of two at least
/// `quantum`. Every source of this crate asks this first.
pub(crate) fn check_import(quantum: Size, size: Size, align: Size) -> Result<(), ArenaError> {
    if size.is_zero() || !size.is_aligned(quantum) {
        return Err(ArenaError::Misaligned { value: size.0, align: quantum.0 });
    }
    if !align.is_power_of_two() || align < quantum {
        return Err(ArenaError::InvalidArgument(
            "import alignment is not a power of two at least the quantum",
        ));
    }
    Ok(())
}

/// No source: the arena holds only the spans added to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoSource;

impl Source for NoSource {
    fn quantum(&self) -> Size {
        Size(1)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        Err(ArenaError::NoSpace { size: size.0 })
    }
    /// Nothing was handed out: a bad free, as any source of this crate
    /// says of a range it did not hand out.
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        Err(ArenaError::BadFree { addr: range.base(), size: range.size(), allocated: None })
    }
    fn can_import(&self) -> bool {
        false
    }
}

/// A source borrowed for the lifetime of the importing arena.
impl<T: Source + ?Sized> Source for &mut T {
    fn quantum(&self) -> Size {
        (**self).quantum()
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        (**self).import(size, align)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        (**self).release(range)
    }
    fn can_import(&self) -> bool {
        (**self).can_import()
    }
    fn imports_aligned(&self) -> bool {
        (**self).imports_aligned()
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        (**self).release_unflushed(range)
    }
    fn refused(&mut self, range: Range) {
        (**self).refused(range)
    }
}

/// A source shared by several importing arenas (one thread): each call
/// borrows it for its duration; a call made while it is borrowed (from
/// inside the source itself) fails with [`ArenaError::SourceBusy`].
impl<T: Source> Source for &RefCell<T> {
    fn quantum(&self) -> Size {
        match self.try_borrow() {
            Ok(s) => s.quantum(),
            // Only reachable re-entrantly; any power of two keeps callers sane.
            Err(_) => Size(1),
        }
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.try_borrow_mut().map_err(|_| ArenaError::SourceBusy)?.import(size, align)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.try_borrow_mut().map_err(|_| ArenaError::SourceBusy)?.release(range)
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.try_borrow_mut().map_err(|_| ArenaError::SourceBusy)?.release_unflushed(range)
    }
    fn can_import(&self) -> bool {
        self.try_borrow().map(|s| s.can_import()).unwrap_or(true)
    }
    fn imports_aligned(&self) -> bool {
        // Asked only by an import, which fails anyway while borrowed.
        self.try_borrow().map(|s| s.imports_aligned()).unwrap_or(true)
    }
    fn refused(&mut self, range: Range) {
        // Borrowed only re-entrantly, where `import` itself failed first.
        if let Ok(mut s) = self.try_borrow_mut() {
            s.refused(range)
        }
    }
}

/// An arena is a source for arenas layered on it: imports are instant-fit
/// constrained allocations, give-backs are frees.
impl<S: super::Store, I: Source> Source for super::Arena<S, I> {
    fn quantum(&self) -> Size {
        super::Arena::quantum(self)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        check_import(super::Arena::quantum(self), size, align)?;
        let a = self.xalloc(&super::Constraints::new(size).align(align))?;
        Ok(Range::from_size(a, size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free(range.base(), range.size())
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free_deferred(range.base(), range.size())
    }
}
