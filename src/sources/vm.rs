//! A [`Source`] backed by a [`Vm`]: imports are mapped memory.

use vmspace_shim::{PageOps, Range, Size};

use crate::arena::{Arena, ArenaError, Constraints, NoSource, Refused, Source, Store};
use crate::vm::{Vm, VmError};

/// The trim slack a new [`VmSource`] has: 8 of the VM's bookkeeping pages
/// (with 4 KiB pages, each records 128 MiB of the VM, so 1 GiB of imports
/// given back may leave 32 KiB of bookkeeping mapped).
pub const DEFAULT_TRIM_SLACK: usize = 8;

/// Hands out page-aligned ranges of a [`Vm`], mapping them on import and
/// unmapping them when they are given back. Which parts of the VM are in use
/// is tracked by an inner arena (instant fit, quantum = page size).
///
/// Batched ([`set_flush_threshold`](Self::set_flush_threshold)), a range
/// given back is unmapped without a TLB flush
/// ([`Vm::unmap_deferred`]) and left *freed but not flushed* in the inner
/// arena, which hands none of it out again; once `threshold` pages wait, or
/// on [`flush`](Self::flush), or when an import finds no room, one flush
/// completes them all and the inner arena frees them.
///
/// A span an importing arena gives back while part of it is freed but not
/// flushed ([`Source::release_unflushed`], from the arena's `Drop`) is
/// taken the batched way whether or not this source batches: unmapped at
/// once without a flush (its pages go back to the system) and unflushed
/// here until this source's next flush, whose TLB flush completes the
/// importer's as well. Nothing of it is handed out before that flush.
///
/// The VM's own bookkeeping (its mapped-state pages, one for every
/// `8 * page` pages of the VM) is given back with slack: a give-back that
/// leaves more than [`trim_slack`](Self::trim_slack) of those pages
/// recording nothing ([`DEFAULT_TRIM_SLACK`] unless set) gives back the
/// empty ones of its own range, each tried whatever became of the others,
/// so no more than the slack stays mapped for nothing, but for pages whose
/// own give-back failed and those left when the slack was lowered
/// ([`set_trim_slack`](Self::set_trim_slack)); [`trim`](Self::trim) gives
/// back all of them. Trimming on every
/// give-back would map and unmap a lone import's bookkeeping page with it,
/// two more system calls a pair, and in the kernel an immediate TLB flush
/// on each give-back, which batching is there to avoid. An import whose
/// map fails gives back the bookkeeping of its range that records nothing
/// (what the failure left, and any such page there before).
///
/// The source is `Send` when its page operations and stores are (an
/// [`Arena`]'s tag table and address hash move with their stores), so an
/// arena importing from it can sit in a
/// [`SyncArena`](crate::sync::SyncArena) shared by threads.
///
/// # Invariants
///
/// The inner arena has exactly one span, the VM's client range; the ranges
/// it has allocated are exactly the mapped ranges of the VM; the ranges it
/// holds unflushed were unmapped with `unmap_deferred` and not flushed since
/// (so none is mapped, and none is handed out); `held` is the bytes of them
/// given back through `release_unflushed`, so unbatched exactly those are
/// unflushed.
pub struct VmSource<P: PageOps, S: Store> {
    vm: Vm<P>,
    space: Arena<S, NoSource>,
    /// Flush once this many bytes are unflushed; 0: unbatched.
    threshold: usize,
    /// Bytes unflushed because an importer gave them back unflushed.
    held: usize,
    /// Pages of the VM's bookkeeping that may record nothing before a
    /// give-back trims those of its range.
    trim_slack: usize,
}

impl<P: PageOps, S: Store> VmSource<P, S> {
    /// A source over all of `vm`'s client range (which must be wholly
    /// unmapped), tracking use in an arena over the stores `tags` and `hash`.
    /// Pages of it unmapped deferred and not yet flushed are flushed first
    /// (the source would otherwise never be able to map them again). The
    /// arena's quantum is the VM's page size, so a page above the arena's
    /// largest quantum (2^27) is refused with an error.
    ///
    /// Refused, it gives `vm` back (flushed, as above, if it got that far);
    /// the stores are released.
    ///
    /// Sizing the stores: the inner arena keeps a boundary tag for each
    /// run of pages it has handed out and each free run between them, so
    /// at most one a page of the VM, plus [`MIN_TAGS`](crate::arena::MIN_TAGS),
    /// each [`TAG_BYTES`](crate::arena::TAG_BYTES); a store that runs out
    /// makes imports fail with `TagsExhausted` (one or two tags a live
    /// import: 16 pages of tags hold about 2,000 one-page imports packed,
    /// 1,000 with a free page between each). The hash
    /// keeps a 4-byte head a live import and grows by doubling; a hash store
    /// that cannot grow makes lookups slower, not fail. A [`PageStore`]
    /// only reserves address space and maps pages as the table grows, so a
    /// tag store of `(vm pages + MIN_TAGS) * TAG_BYTES` and a hash store of
    /// `8 * vm pages` bytes (rounded up to pages) cost address space only and
    /// never run out.
    ///
    /// [`PageStore`]: crate::arena::PageStore
    #[expect(
        clippy::result_large_err,
        reason = "the VM, back to its owner; no allocator to box it"
    )]
    pub fn new(mut vm: Vm<P>, tags: S, hash: S) -> Result<Self, Refused<Vm<P>>> {
        if !vm.mapped().is_zero() {
            let e = ArenaError::InvalidArgument("VM for a source must start unmapped");
            return Err(Refused::new(e, vm));
        }
        vm.flush();
        let space = Arena::new("vm-source", vm.page_size(), tags, hash, NoSource)
            .map_err(ArenaError::from)
            .and_then(|mut space| space.add(vm.base(), vm.range().size()).map(|()| space));
        match space {
            Ok(space) => {
                Ok(VmSource { vm, space, threshold: 0, held: 0, trim_slack: DEFAULT_TRIM_SLACK })
            }
            Err(e) => Err(Refused::new(e, vm)),
        }
    }

    /// Batch give-backs: unmap them without flushing and flush once `pages`
    /// pages wait (at least 1; if that many wait already, now); `0` turns
    /// batching off, flushing whatever waits. `Overflow` when `pages` pages
    /// are more bytes than a `usize` holds, the threshold as it was.
    pub fn set_flush_threshold(&mut self, pages: usize) -> Result<(), ArenaError> {
        self.threshold = pages.checked_mul(self.vm.page_size().0).ok_or(ArenaError::Overflow)?;
        if self.space.sizes().unflushed.0 >= self.threshold {
            self.flush();
        }
        Ok(())
    }

    /// The flush threshold in pages (0: unbatched).
    pub fn flush_threshold(&self) -> usize {
        self.threshold / self.vm.page_size().0
    }

    /// Complete every deferred give-back: one flush through the backend,
    /// then the inner arena makes the ranges free for imports again.
    /// Returns the bytes that became free.
    pub fn flush(&mut self) -> Size {
        if self.space.sizes().unflushed.is_zero() {
            return Size(0);
        }
        self.vm.flush();
        self.held = 0;
        self.space.flushed()
    }

    /// Give back the VM's mapped-state pages that record no mapped page
    /// ([`Vm::trim`]): after the imports they recorded went back (see the
    /// type's docs for why that is not done on every give-back). Returns
    /// the pages given back; on a backend failure those given back before
    /// it stay given back, and nothing imported changes either way.
    pub fn trim(&mut self) -> Result<usize, VmError> {
        self.vm.trim()
    }

    /// Let up to `pages` of the VM's bookkeeping pages record nothing
    /// before a give-back trims those of its range (see the type's docs);
    /// `0` trims at every give-back that empties one, `usize::MAX` never
    /// (only [`trim`](Self::trim) does). Trims nothing itself: lowered
    /// below what records nothing now, the excess stays until
    /// [`trim`](Self::trim), as a give-back trims only its own range.
    pub fn set_trim_slack(&mut self, pages: usize) {
        self.trim_slack = pages;
    }

    /// The slack in pages ([`set_trim_slack`](Self::set_trim_slack)).
    pub fn trim_slack(&self) -> usize {
        self.trim_slack
    }

    /// After `range` went back: if more bookkeeping records nothing than
    /// the slack allows, give back that of `range` (the only pages the
    /// give-back can have emptied), every page tried; one whose unmap
    /// fails stays for a later trim, and the give-back stands.
    fn trim_over_slack(&mut self, range: Range) {
        if self.vm.metadata_trimmable().0 / self.vm.page_size().0 > self.trim_slack {
            self.vm.trim_range_each(range);
        }
    }

    /// The VM.
    pub fn vm(&self) -> &Vm<P> {
        &self.vm
    }

    /// The VM back, once nothing is imported from it (every import given
    /// back): what waits for a flush is flushed first, so it comes back
    /// wholly unmapped, its reservation kept. With imports outstanding
    /// (a range left [`Stranded`](ArenaError::Stranded) counts: it stays
    /// imported for good), the source itself back, unchanged.
    ///
    /// Refused, the source comes back in a [`Refused`] whose error,
    /// [`InUse`](ArenaError::InUse), says how much is imported.
    #[expect(clippy::result_large_err, reason = "the source itself, back to its owner")]
    pub fn into_vm(mut self) -> Result<Vm<P>, Refused<Self>> {
        let imported = self.space.sizes().allocated;
        if !imported.is_zero() {
            let e = ArenaError::InUse { what: "imports outstanding", size: imported };
            return Err(Refused::new(e, self));
        }
        self.flush();
        Ok(self.vm)
    }

    /// The arena tracking which ranges are imported.
    pub fn space(&self) -> &Arena<S, NoSource> {
        &self.space
    }

    /// Refuse `range` unless it is an import handed out whole, before
    /// anything touches the VM.
    fn handed_out(&self, range: Range) -> Result<(), ArenaError> {
        match self.space.lookup(range.base()) {
            Some((_, asked)) if asked == range.size() => Ok(()),
            found => Err(ArenaError::BadFree {
                addr: range.base(),
                size: range.size(),
                allocated: found.map(|f| f.1),
            }),
        }
    }

    /// Unmap `range` without a flush and hold it unflushed; flush when the
    /// batch is full (never when unbatched: only `flush` and an import that
    /// finds no room complete it then).
    fn release_batched(&mut self, range: Range) -> Result<(), ArenaError> {
        self.vm.unmap_deferred(range).map_err(|e| self.put_back(range, e))?;
        self.space.free_deferred(range.base(), range.size())?;
        if self.threshold != 0 && self.space.sizes().unflushed.0 >= self.threshold {
            self.flush();
        }
        Ok(())
    }

    /// After the unmap of `range` (imported, so read-write) failed with
    /// `e`: make it read-write again if the failure may have changed part
    /// of it. The error to return: `e`, or [`ArenaError::Stranded`] when
    /// that put-back fails too.
    fn put_back(&mut self, range: Range, e: VmError) -> ArenaError {
        match (self.vm.restore_read_write(range, &e), e) {
            (false, VmError::Backend(error)) => ArenaError::Stranded { range, error },
            (_, e) => e.into(),
        }
    }

    /// Check the inner arena, the VM, and that what is mapped is exactly
    /// what is handed out.
    pub fn check(&self) -> Result<(), ArenaError> {
        self.space.check()?;
        self.vm.check()?;
        if self.vm.mapped() != self.space.sizes().allocated {
            return Err(ArenaError::Corrupt { what: "VM source: mapped != imported", tag: 0 });
        }
        let unflushed = self.space.sizes().unflushed.0;
        if unflushed < self.held {
            return Err(ArenaError::Corrupt {
                what: "VM source: fewer bytes unflushed than held for importers",
                tag: 0,
            });
        }
        if self.threshold == 0 && unflushed != self.held {
            return Err(ArenaError::Corrupt { what: "VM source: unbatched but unflushed", tag: 0 });
        }
        Ok(())
    }
}

impl<P: PageOps, S: Store> Source for VmSource<P, S> {
    fn quantum(&self) -> Size {
        self.vm.page_size()
    }

    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        crate::arena::check_import(self.vm.page_size(), size, align)?;
        let c = Constraints::new(size).align(align);
        let addr = match self.space.xalloc(&c) {
            // What waits for a flush may be what this import needs.
            Err(ArenaError::NoSpace { .. }) if !self.space.sizes().unflushed.is_zero() => {
                self.flush();
                self.space.xalloc(&c)?
            }
            r => r?,
        };
        let r = Range::from_size(addr, size)?;
        if let Err(e) = self.vm.map(r) {
            // Cannot fail: the allocation was just made with this size.
            let _ = self.space.free(addr, size);
            // A mapped-state page the failed map left (its give-back failed
            // too); should this fail as well, `trim` finds it later.
            self.vm.trim_range_each(r);
            return Err(e.into());
        }
        Ok(r)
    }

    /// A failed unmap that may have changed part of `range` (Linux's
    /// `munmap`/`mprotect` at `vm.max_map_count`) is undone: the range is
    /// made read-write again, as every import is, and the error returned
    /// with the range still imported. If that fails too, the range stays
    /// imported here for good, and the error is [`ArenaError::Stranded`].
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.handed_out(range)?;
        if self.threshold == 0 {
            self.vm.unmap(range).map_err(|e| self.put_back(range, e))?;
            self.space.free(range.base(), range.size())?;
        } else {
            self.release_batched(range)?;
        }
        self.trim_over_slack(range);
        Ok(())
    }

    /// The importing arena refused `range`, just imported, because it
    /// overlaps a span of the arena's own. Nothing but the arena that holds
    /// this source can give a range back to it, so the range is this
    /// source's fresh import, never a live span handed out twice: it is
    /// taken back as a give-back (unmapped, free again), where keeping it
    /// would leave it mapped and taken for the source's life. (An arena
    /// refuses such a range when it overlaps spans added to it inside this
    /// source's range: a caller's mistake, which should cost nothing.)
    fn refused(&mut self, range: Range) {
        let _ = self.release(range);
    }

    /// Taken the batched way, batched or not (see the type's docs).
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.handed_out(range)?;
        self.release_batched(range)?;
        // Still unflushed unless the batch was just flushed.
        if !self.space.sizes().unflushed.is_zero() {
            self.held += range.size().0;
        }
        self.trim_over_slack(range);
        Ok(())
    }
}
