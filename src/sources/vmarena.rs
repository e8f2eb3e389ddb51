//! The VM arena as a [`Source`] for vmem arenas.

use vmspace_shim::{PageOps, Pages, Range, Size};

use crate::arena::{ArenaError, Source};
use crate::error::CommonError;
use crate::vm::VmError;
use crate::vmarena::{Owner, Request, Stranded, VmArena, VmArenaError};

/// The owner recorded for tracts imported by a vmem arena.
pub const IMPORT_OWNER: Owner = Owner(u32::MAX);

impl From<VmArenaError> for ArenaError {
    fn from(e: VmArenaError) -> Self {
        match e {
            VmArenaError::Vm(VmError::Backend(s)) => ArenaError::Backing(s),
            VmArenaError::Vm(v) => ArenaError::Vm(v),
            VmArenaError::Common(CommonError::Overflow) => ArenaError::Overflow,
            VmArenaError::Common(CommonError::InvalidArgument(what)) => {
                ArenaError::InvalidArgument(what)
            }
            VmArenaError::Common(CommonError::Misaligned { value, align }) => {
                ArenaError::Misaligned { value, align }
            }
            // Pages and bytes: `import` reports the bytes asked for instead.
            VmArenaError::NoSpace { pages } => ArenaError::NoSpace { size: pages },
            VmArenaError::CommitLimit { needed, .. } => ArenaError::NoSpace { size: needed },
            VmArenaError::Common(CommonError::OutOfRange(r)) | VmArenaError::NotAllocated(r) => {
                ArenaError::BadImport(r)
            }
            VmArenaError::WrongOwner { .. } => ArenaError::InvalidArgument("not an imported range"),
            VmArenaError::RollbackFailed { error, .. } => ArenaError::Backing(error),
            VmArenaError::Common(CommonError::Corrupt(what)) => {
                ArenaError::Corrupt { what, tag: 0 }
            }
        }
    }
}

/// Imports are runs of tracts owned by [`IMPORT_OWNER`], placed anywhere;
/// releases free them. The VM arena keeps owners, not the bounds of each
/// import, so a release of whole tracts that are all imported is taken even
/// if it is part of an import or spans two (an arena only ever releases
/// what it imported); anything else is refused and changes nothing (a
/// range not all imported from here, or outside the arena, with
/// [`BadFree`](ArenaError::BadFree)).
/// [`VmSource`](super::VmSource), which keeps every import in an arena,
/// refuses all but an exact import.
impl<P: PageOps> Source for VmArena<P> {
    fn quantum(&self) -> Size {
        self.page_size()
    }

    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let page = self.page_size();
        crate::arena::check_import(page, size, align)?;
        let pages =
            size.to_pages(page).ok_or(ArenaError::Misaligned { value: size.0, align: page.0 })?;
        let align_pages = Pages(align.0 / page.0);
        match self.alloc(&Request::new(pages, IMPORT_OWNER).align(align_pages)) {
            Ok(grant) => Ok(grant.range),
            // In the importer's units: bytes.
            Err(VmArenaError::NoSpace { .. } | VmArenaError::CommitLimit { .. }) => {
                Err(ArenaError::NoSpace { size: size.0 })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A free whose unmap failed and whose put-back of the tracts'
    /// protection failed too leaves them allocated and recorded
    /// inaccessible ([`Stranded::Inaccessible`]): that is
    /// [`ArenaError::Stranded`] for the importer, which then drops the
    /// span; the tracts stay allocated to [`IMPORT_OWNER`].
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free(range, IMPORT_OWNER).map_err(|e| stranded(range, e))
    }

    /// The importing arena refused `range`, just imported, because it
    /// overlaps a span of its own: only the arena holding this source gives
    /// ranges back to it, so the range is that fresh import, and freeing
    /// it frees nothing live (keeping it would leave its tracts allocated
    /// and committed for the VM arena's life).
    fn refused(&mut self, range: Range) {
        let _ = self.free(range, IMPORT_OWNER);
    }

    /// An importer dropped while some of `range` is freed but not flushed:
    /// its tracts are freed and every page of them unmapped (none kept
    /// spare), and that unmap flushes the TLB for the range, which
    /// completes the importer's pending flush, so the tracts may be handed
    /// out again at once. (Kept taken instead, as the default does, they
    /// would stay allocated and committed, against the commit limit, for
    /// good.)
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free_keeping(range, IMPORT_OWNER, false).map_err(|e| stranded(range, e))
    }
}

/// The importer's error for a failed release of `range`: a free that left
/// tracts inaccessible is [`ArenaError::Stranded`]; a range that is not
/// (all) imported from here (free, a client's, outside the arena, off the
/// page grid, or empty) a
/// [`BadFree`](ArenaError::BadFree), as [`VmSource`](super::VmSource)
/// says of a range it did not hand out; any other as it maps.
fn stranded(range: Range, e: VmArenaError) -> ArenaError {
    match e {
        VmArenaError::RollbackFailed { error, tracts: Stranded::Inaccessible, .. } => {
            ArenaError::Stranded { range, error }
        }
        VmArenaError::NotAllocated(_)
        | VmArenaError::WrongOwner { .. }
        | VmArenaError::Common(
            CommonError::OutOfRange(_)
            | CommonError::Misaligned { .. }
            | CommonError::InvalidArgument(_),
        ) => ArenaError::BadFree { addr: range.base(), size: range.size(), allocated: None },
        e => e.into(),
    }
}
