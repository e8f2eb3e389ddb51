//! Where a C arena imports from: nothing, a parent arena, the caller's
//! import and release functions, or a VM of its own; and the limit on its
//! total size (`vmem_set_limit`).

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;

use vmspace::arena::{ArenaError, Constraints, Source};
use vmspace::sync::Wait;
use vmspace_shim::{Addr, Range, Size};

use crate::ctypes::{vmem_error_hook_t, vmem_reclaim_t, vmspace_release_fn};
use crate::object::ArenaObj;
use crate::platform::Platform;
use crate::vm_source::OwnedVmSource;

/// The caller's import function, as it is called.
pub(crate) type ImportFn =
    unsafe extern "C" fn(arg: *mut c_void, size: usize, flags: c_int, addrp: *mut usize) -> c_int;

/// What an arena imports from.
pub(crate) enum Import<P: Platform> {
    /// Nothing: the arena holds only the spans added to it.
    None,
    /// Another arena of this API, which counts this one among its children
    /// (so it is not destroyed first).
    Parent {
        /// The parent.
        arena: NonNull<ArenaObj<P>>,
        /// Its quantum (fixed for its life).
        quantum: usize,
    },
    /// The caller's functions.
    Callbacks {
        /// Imports a span.
        import: ImportFn,
        /// Takes one back (none: imported spans stay).
        release: vmspace_release_fn,
        /// Their first argument.
        arg: *mut c_void,
        /// Imports are multiples of this (a power of two).
        quantum: usize,
        /// The flags they are called with.
        flags: c_int,
    },
    /// A VM of the arena's own (`vmspace_arena_set_vm`): spans are mapped
    /// as they are imported and unmapped as they go back.
    Vm(OwnedVmSource<P>),
}

/// The vmem(9) callbacks of an arena besides its imports.
#[derive(Clone, Copy)]
pub(crate) struct Hooks {
    /// Called when an allocation finds no space, before it fails or waits.
    pub(crate) reclaim: vmem_reclaim_t,
    /// Called on a bad `vmem_free`/`vmem_xfree` and other failures of calls
    /// that return nothing.
    pub(crate) error: vmem_error_hook_t,
    /// The error hook's first argument.
    pub(crate) error_arg: *mut c_void,
}

/// An arena's [`Source`]: its import and the limit on its size, and the
/// caller's other hooks. Reached only under the arena lock, like the arena.
///
/// # Invariants
///
/// A `Parent` is a live arena object for as long as this source names it
/// (its destroy is refused while it has children). A `Vm` is this source's
/// alone, reached only under the arena lock as the source is. `imported` is
/// the sum of the sizes of the imported spans the arena holds.
pub(crate) struct CSource<P: Platform> {
    pub(crate) import: Import<P>,
    /// The most units the arena may hold in spans (added and imported)
    /// before imports fail; 0: no limit.
    pub(crate) limit: usize,
    /// Units in spans added by the caller.
    pub(crate) added: usize,
    /// Units in spans imported.
    pub(crate) imported: usize,
    /// The vmem(9) hooks.
    pub(crate) hooks: Hooks,
}

// SAFETY: a parent is an arena object, whose operations are thread-safe
// (its own lock); the callbacks, hooks and their arguments are the C
// caller's, who promises (in the headers) that they may be called from any
// thread that uses the arena; a VM source is owned by this source alone and
// its page operations may be used from any thread (the platform's pages are
// the arenas' own, used from every thread that calls the API).
unsafe impl<P: Platform> Send for CSource<P> {}

impl<P: Platform> CSource<P> {
    /// A source that imports nothing.
    pub(crate) fn new() -> Self {
        let hooks = Hooks { reclaim: None, error: None, error_arg: core::ptr::null_mut() };
        CSource { import: Import::None, limit: 0, added: 0, imported: 0, hooks }
    }

    /// Whether imports would pass the limit.
    fn over_limit(&self, size: usize) -> bool {
        let total = self.added.saturating_add(self.imported).saturating_add(size);
        self.limit != 0 && total > self.limit
    }
}

impl<P: Platform> CSource<P> {
    /// Whether spans imported through this source go back to it (a parent,
    /// or import functions with a release function).
    pub(crate) fn releases(&self) -> bool {
        match self.import {
            Import::None => false,
            Import::Parent { .. } => true,
            Import::Callbacks { release, .. } => release.is_some(),
            Import::Vm(_) => true,
        }
    }
}

impl<P: Platform> Source for CSource<P> {
    fn quantum(&self) -> Size {
        match self.import {
            Import::None => Size(1),
            Import::Parent { quantum, .. } | Import::Callbacks { quantum, .. } => Size(quantum),
            Import::Vm(ref v) => v.quantum(),
        }
    }

    /// An import function takes no alignment: the arena asks for room to
    /// align in instead.
    fn imports_aligned(&self) -> bool {
        !matches!(self.import, Import::Callbacks { .. })
    }

    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if self.over_limit(size.0) {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        let r = match self.import {
            Import::None => return Err(ArenaError::NoSpace { size: size.0 }),
            Import::Vm(ref mut v) => v.import(size, align)?,
            Import::Parent { arena, .. } => {
                // SAFETY: a parent outlives its children (type invariant).
                let parent = unsafe { arena.as_ref() };
                let c = Constraints::new(size).align(align);
                let a = parent.shared.xalloc(&c, Wait::No)?;
                Range::from_size(a, size)?
            }
            Import::Callbacks { import, release, arg, flags, .. } => {
                let mut addr = 0usize;
                // SAFETY: the caller's function, called as its type says
                // with the argument it gave; `addr` is a valid out pointer.
                if unsafe { import(arg, size.0, flags, &mut addr) } != 0 {
                    return Err(ArenaError::NoSpace { size: size.0 });
                }
                let r = Range::from_size(Addr(addr), size);
                let aligned = addr % align.0 == 0;
                if let (Ok(r), true) = (r, aligned) {
                    r
                } else {
                    if let Some(f) = release {
                        // SAFETY: giving back what the import function just
                        // returned, as its type says.
                        unsafe { f(arg, addr, size.0) };
                    }
                    return match r {
                        Ok(_) => Err(ArenaError::NoSpace { size: size.0 }),
                        Err(_) => Err(ArenaError::BadImport(Range::empty(Addr(addr)))),
                    };
                }
            }
        };
        self.imported = self.imported.saturating_add(size.0);
        Ok(r)
    }

    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        match self.import {
            Import::None => {
                // Nothing was imported: a bad free, as every source says.
                let (addr, size) = (range.base(), range.size());
                return Err(ArenaError::BadFree { addr, size, allocated: None });
            }
            Import::Parent { arena, .. } => {
                // SAFETY: a parent outlives its children (type invariant).
                let parent = unsafe { arena.as_ref() };
                parent.shared.free(range.base(), range.size())?;
            }
            Import::Callbacks { release: None, .. } => return Err(ArenaError::SourceBusy),
            Import::Callbacks { release: Some(f), arg, .. } => {
                // SAFETY: giving back a range the import function returned.
                unsafe { f(arg, range.base().0, range.size().0) };
            }
            Import::Vm(ref mut v) => v.release(range)?,
        }
        self.imported = self.imported.saturating_sub(range.size().0);
        Ok(())
    }

    /// A parent takes the range as a deferred free of its own, unflushed
    /// until its own flush, and a VM unmaps it and keeps it until its next
    /// flush; import functions have no such state, so the range stays taken
    /// there for good.
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        match self.import {
            Import::Parent { arena, .. } => {
                // SAFETY: a parent outlives its children (type invariant).
                let parent = unsafe { arena.as_ref() };
                parent.shared.free_deferred(range.base(), range.size())?;
            }
            Import::Vm(ref mut v) => v.release_unflushed(range)?,
            _ => return Err(ArenaError::SourceBusy),
        }
        self.imported = self.imported.saturating_sub(range.size().0);
        Ok(())
    }

    fn can_import(&self) -> bool {
        !matches!(self.import, Import::None)
    }

    /// The import function returned a range overlapping one of the arena's
    /// spans: the arena keeps away from it (it is not handed to the release
    /// function, which would free a live span) and it stops counting here.
    fn refused(&mut self, range: Range) {
        if let Import::Vm(ref mut v) = self.import {
            // A VM's fresh import: it takes it back (see `VmSource`).
            v.refused(range);
        }
        self.imported = self.imported.saturating_sub(range.size().0);
    }
}
