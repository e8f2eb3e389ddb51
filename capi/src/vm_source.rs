//! A VM an arena imports from (`vmspace_arena_set_vm`): a
//! [`VmSource`] over a reservation of its own, in memory from the
//! platform, owned by the arena's source and given back with it.

use core::alloc::Layout;
use core::ffi::c_int;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use vmspace::arena::{PageStore, MIN_TAGS, TAG_BYTES};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::{PageOps, Size};

use crate::errno::{code, errno, vm_errno};
use crate::object::Store;
use crate::platform::Platform;

/// The source itself.
pub(crate) type Inner<P> = VmSource<<P as Platform>::Pages, Store<P>>;

/// A [`VmSource`] in platform memory, owned.
///
/// # Invariants
///
/// `ptr` points to a live `Inner<P>` in memory from
/// [`Platform::alloc_object`] with its layout, owned by this value alone
/// (dropped and freed by its `Drop`).
pub(crate) struct OwnedVmSource<P: Platform> {
    ptr: NonNull<Inner<P>>,
}

impl<P: Platform> OwnedVmSource<P> {
    /// A source over a fresh VM of at least `size` bytes, base and limit
    /// multiples of `quantum` (the importing arena's) and of the page, its
    /// bookkeeping sized never to run out (see [`VmSource::new`]).
    pub(crate) fn new(size: usize, quantum: usize) -> Result<Self, c_int> {
        let ops = P::pages();
        let page = ops.page_size();
        let grain = page.max(Size(quantum));
        let vm = Vm::reserve(ops, Size(size), grain).map_err(|e| vm_errno(&e))?;
        let pages = vm.range().size().0 / page.0;
        let tag_bytes = pages
            .checked_add(MIN_TAGS)
            .and_then(|t| t.checked_mul(TAG_BYTES))
            .ok_or(-code::EOVERFLOW)?;
        let hash_bytes = pages.checked_mul(8).ok_or(-code::EOVERFLOW)?;
        let tags = PageStore::new(P::pages(), Size(tag_bytes)).map_err(|e| errno(&e))?;
        let hash = PageStore::new(P::pages(), Size(hash_bytes)).map_err(|e| errno(&e))?;
        let source = VmSource::new(vm, tags, hash).map_err(|refused| errno(&refused.error()))?;
        let layout = Layout::new::<Inner<P>>();
        let ptr = NonNull::new(P::alloc_object(layout).cast::<Inner<P>>()).ok_or(-code::ENOMEM)?;
        // SAFETY: fresh memory of the source's layout that nothing else uses
        // (`Platform` contract).
        unsafe { ptr.as_ptr().write(source) };
        // INVARIANT: written just above, owned by nothing else.
        Ok(OwnedVmSource { ptr })
    }
}

impl<P: Platform> Deref for OwnedVmSource<P> {
    type Target = Inner<P>;
    fn deref(&self) -> &Inner<P> {
        // SAFETY: live and owned by `self` (type invariant).
        unsafe { self.ptr.as_ref() }
    }
}

impl<P: Platform> DerefMut for OwnedVmSource<P> {
    fn deref_mut(&mut self) -> &mut Inner<P> {
        // SAFETY: live and owned by `self`, borrowed mutably here.
        unsafe { self.ptr.as_mut() }
    }
}

impl<P: Platform> Drop for OwnedVmSource<P> {
    fn drop(&mut self) {
        // SAFETY: live, ours alone, and not used after: dropped (which
        // releases the VM and every page mapped in it, and the stores) and
        // its memory given back with the layout it was had with.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            P::free_object(self.ptr.as_ptr().cast(), Layout::new::<Inner<P>>());
        }
    }
}
