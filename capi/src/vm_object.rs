//! The VM object C callers hold a pointer to (`vmspace_vm_t`): one
//! reservation of address space ([`Vm`]) over the platform's page
//! operations, behind the platform's lock, with a magic word checked on
//! entry.

use core::cell::UnsafeCell;
use core::ffi::c_int;
use core::ptr::{self, addr_of, NonNull};

use vmspace::sync::RawLock;
use vmspace::vm::Vm;
use vmspace_shim::Size;

use crate::errno::{code, vm_errno};
use crate::magic::{live_object, Magic, VM_KEY};
use crate::platform::Platform;

/// A VM as C holds it.
///
/// # Invariants
///
/// - `magic` is live (for [`VM_KEY`]) exactly while the object is live: from
///   the end of [`create`](Self::create) to the start of
///   [`destroy`](Self::destroy); the object never moves meanwhile.
/// - `vm` is reached only with `lock` held ([`with`](Self::with)), or by
///   the destroy that cleared `magic` (nobody else uses the object then).
#[repr(C)]
pub(crate) struct VmObj<P: Platform> {
    magic: Magic,
    lock: P::Lock,
    vm: UnsafeCell<Vm<P::Pages>>,
}

/// Gives the lock back when dropped (also on a panic unwinding through,
/// which the C boundary turns into an abort anyway).
struct Held<'a, L: RawLock>(&'a L);

impl<L: RawLock> Drop for Held<'_, L> {
    fn drop(&mut self) {
        // SAFETY: a `Held` is made only just after the lock is taken, and
        // dropped once.
        unsafe { self.0.unlock() }
    }
}

impl<P: Platform> VmObj<P> {
    /// Reserve a VM of at least `size` bytes whose base and limit are
    /// multiples of `grain` (0: the page size), in memory from the
    /// platform.
    pub(crate) fn create(size: usize, grain: usize) -> Result<NonNull<Self>, c_int> {
        P::enter();
        let ops = P::pages();
        let grain = if grain == 0 { vmspace_shim::PageOps::page_size(&ops) } else { Size(grain) };
        let vm = Vm::reserve(ops, Size(size), grain).map_err(|e| vm_errno(&e))?;
        let Some(lock) = P::lock() else { return Err(-code::ENOMEM) };
        let layout = core::alloc::Layout::new::<Self>();
        let place = NonNull::new(P::alloc_object(layout).cast::<Self>()).ok_or(-code::ENOMEM)?;
        let obj = VmObj { magic: Magic::dead(), lock, vm: UnsafeCell::new(vm) };
        // SAFETY: fresh memory of this layout that nothing else uses
        // (`Platform` contract).
        unsafe { place.as_ptr().write(obj) };
        // SAFETY: written just above.
        let magic = unsafe { &*addr_of!((*place.as_ptr()).magic) };
        // INVARIANT: the object is complete and stays at `place`.
        magic.publish(place.as_ptr(), VM_KEY);
        Ok(place)
    }

    /// The live VM object at `p`, or `-EINVAL` for null and `-EBADF` for
    /// anything whose first word is not a live VM's magic.
    ///
    /// # Safety
    ///
    /// `p` is null, or points to memory readable for the object's first
    /// word (a live VM object, or anything else readable that long: an
    /// arena, the caller's storage; a destroyed VM's memory is freed, so
    /// not that), and a live object stays live while the returned reference
    /// is used.
    pub(crate) unsafe fn from_ptr<'a, T>(p: *const T) -> Result<&'a Self, c_int> {
        P::enter();
        // SAFETY: the caller's contract; `VmObj` is `repr(C)` with its magic
        // word first, live exactly while the object is (invariant).
        unsafe { live_object(p, VM_KEY) }
    }

    /// Run `f` on the VM with the lock held.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Vm<P::Pages>) -> R) -> R {
        self.lock.lock();
        let _held = Held(&self.lock);
        // SAFETY: the lock is held until `_held` drops, after `f` returns,
        // and every use of `vm` but the destroy's holds it (type
        // invariant), so this is the only reference.
        f(unsafe { &mut *self.vm.get() })
    }

    /// Destroy the VM at `p`: release its reservation (every page mapped in
    /// it included) and free the object. If the release fails, the VM is
    /// live again, unchanged, and the error is returned.
    ///
    /// # Safety
    ///
    /// As for [`from_ptr`](Self::from_ptr); nobody else uses the VM during
    /// or after the call, nor any memory inside its reservation.
    pub(crate) unsafe fn destroy<T>(p: *mut T) -> c_int {
        // SAFETY: the caller's contract.
        let obj = match unsafe { Self::from_ptr(p) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        if !obj.magic.kill(obj, VM_KEY) {
            return -code::EBADF;
        }
        let place = p.cast::<Self>();
        // SAFETY: we won the destroy: the object is ours alone (caller), so
        // its VM may be moved out; it is either released (consumed) or
        // written back below before anyone can see the object again.
        let vm = unsafe { ptr::read((*place).vm.get()) };
        match vm.release() {
            Ok(()) => {
                // SAFETY: the VM was moved out and released; what is left
                // (the lock and the dead magic word) is dropped in place,
                // and the memory, from `alloc_object` with this layout in
                // `create`, is given back and not used again.
                unsafe {
                    ptr::drop_in_place(ptr::addr_of_mut!((*place).lock));
                    P::free_object(place.cast(), core::alloc::Layout::new::<Self>());
                }
                0
            }
            Err((vm, e)) => {
                // SAFETY: the slot was moved out of above and is ours.
                unsafe { (*place).vm.get().write(vm) };
                // INVARIANT: the object is whole again, at the same place.
                obj.magic.publish(obj, VM_KEY);
                vm_errno(&e)
            }
        }
    }
}
