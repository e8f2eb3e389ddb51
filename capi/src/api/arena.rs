//! Making, changing and destroying arenas (native API).

use core::ffi::{c_char, c_int, c_uint, c_void};
use core::ptr;
use core::sync::atomic::Ordering;

use vmspace_shim::{Addr, Range, Size};

use super::{fail, obj, out, status, Api};
use crate::ctypes::*;
use crate::errno::code;
use crate::object::ArenaObj;
use crate::platform::Platform;
use crate::source::Import;
use crate::vm_source::OwnedVmSource;

impl<P: Platform> Api<P> {
    /// `vmspace_arena_create`: an arena with one initial span (none when
    /// `size` is 0), or NULL.
    ///
    /// # Safety
    ///
    /// `name` is NULL or a NUL-terminated string.
    pub unsafe fn vmspace_arena_create(
        name: *const c_char,
        base: vmspace_addr_t,
        size: vmspace_size_t,
        quantum: vmspace_size_t,
        qcache_max: vmspace_size_t,
        flags: c_int,
    ) -> *mut vmspace_arena_t {
        let p =
            vmspace_params { name, base, size, quantum, qcache_max, flags, ..Default::default() };
        // SAFETY: the name as the caller promises; no parent.
        match unsafe { ArenaObj::<P>::create(&p) } {
            Ok(o) => o.as_ptr().cast(),
            Err(_) => ptr::null_mut(),
        }
    }

    /// `vmspace_arena_create_ex`: an arena as `params` asks, stored at
    /// `*arenap`; 0 or a negative errno (then `*arenap` is NULL).
    ///
    /// # Safety
    ///
    /// `params` is NULL or points to a readable `struct vmspace_params`
    /// whose name is NULL or a NUL-terminated string and whose parent is
    /// NULL or an arena; `arenap` is NULL or writable.
    pub unsafe fn vmspace_arena_create_ex(
        params: *const vmspace_params,
        arenap: *mut *mut vmspace_arena_t,
    ) -> c_int {
        let arenap = match out(arenap) {
            Ok(a) => a,
            Err(e) => return e,
        };
        // SAFETY: a valid out pointer (checked non-null and aligned; the
        // caller promises it is writable).
        unsafe { arenap.as_ptr().write(ptr::null_mut()) };
        if params.is_null() || !params.is_aligned() {
            return -code::EINVAL;
        }
        // SAFETY: readable parameters (caller).
        let p = unsafe { params.read() };
        // SAFETY: the pointers in `p` as the caller promises.
        match unsafe { ArenaObj::<P>::create(&p) } {
            Ok(o) => {
                // SAFETY: as above.
                unsafe { arenap.as_ptr().write(o.as_ptr().cast()) };
                0
            }
            Err(e) => e,
        }
    }

    /// `vmspace_arena_destroy`.
    ///
    /// # Safety
    ///
    /// `arena` is NULL or an arena (live, or destroyed but its memory not
    /// reused), used by nobody else during or after the call.
    pub unsafe fn vmspace_arena_destroy(arena: *mut vmspace_arena_t) -> c_int {
        // SAFETY: the caller's contract.
        unsafe { ArenaObj::<P>::destroy(arena.cast::<c_void>()) }
    }

    /// `vmspace_arena_add`: add the span `[addr, addr + size)`.
    ///
    /// # Safety
    ///
    /// `arena` is NULL or an arena, as for every function taking one.
    pub unsafe fn vmspace_arena_add(
        arena: *mut vmspace_arena_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
        flags: c_int,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            if flags != 0 {
                return Err(-code::EINVAL);
            }
            o.shared
                .with(|a| {
                    // The arena's VM is its imports' alone: a span added in
                    // it would be handed out unmapped, and overlap them.
                    if let Import::Vm(ref v) = a.source().import {
                        let r = Range::from_size(Addr(addr), Size(size))?;
                        if r.overlaps(&v.vm().reservation()) {
                            return Err(vmspace::ArenaError::SpanOverlap(r));
                        }
                    }
                    a.add(Addr(addr), Size(size))?;
                    let s = a.source_mut();
                    s.added = s.added.saturating_add(size);
                    Ok(())
                })
                .map_err(fail)?;
            o.space_added();
            Ok(())
        })())
    }

    /// `vmspace_arena_set_import`: import through the caller's functions
    /// (or stop importing, with a NULL `import`).
    ///
    /// # Safety
    ///
    /// `arena` as usual; `import` and `release` (when not NULL) are
    /// functions of the declared types, callable with `arg` from any thread
    /// that uses the arena for as long as it imports through them.
    pub unsafe fn vmspace_arena_set_import(
        arena: *mut vmspace_arena_t,
        import: vmspace_import_fn,
        release: vmspace_release_fn,
        arg: *mut c_void,
        quantum: vmspace_size_t,
    ) -> c_int {
        // SAFETY: the caller's contract.
        status(unsafe { Self::set_import(arena, import, release, arg, quantum, 0) })
    }

    /// Attach the caller's import functions to `arena` (shared with
    /// `vmem_set_import`), calling them with `flags`.
    ///
    /// # Safety
    ///
    /// As for [`vmspace_arena_set_import`](Self::vmspace_arena_set_import).
    pub(crate) unsafe fn set_import<T>(
        arena: *const T,
        import: vmspace_import_fn,
        release: vmspace_release_fn,
        arg: *mut c_void,
        quantum: vmspace_size_t,
        flags: c_int,
    ) -> Result<(), c_int> {
        // SAFETY: the caller's contract.
        let o = unsafe { obj::<P, _>(arena) }?;
        let set = o.shared.with(|a| {
            let quantum = if quantum == 0 { a.quantum().0 } else { quantum };
            // Below the arena's quantum, every import's result would be
            // checked against the arena's alignment, not the one given.
            if !quantum.is_power_of_two() || quantum < a.quantum().0 {
                return Err(-code::EINVAL);
            }
            let s = a.source_mut();
            if s.imported != 0 || matches!(s.import, Import::Parent { .. }) {
                return Err(-code::EBUSY);
            }
            let new = match import {
                None => Import::None,
                Some(import) => Import::Callbacks { import, release, arg, quantum, flags },
            };
            Ok((import.is_some(), core::mem::replace(&mut s.import, new)))
        });
        // A VM replaced (set_vm's, holding nothing) is released here,
        // outside the arena lock, as set_vm releases one.
        let (polls, _replaced) = set?;
        o.polls.store(polls, Ordering::Relaxed);
        // A source to import from may let a waiting allocation succeed.
        o.shared.wake_waiters();
        Ok(())
    }

    /// `vmspace_arena_set_vm`: import from a VM of at least `size` bytes
    /// reserved for the arena (0: stop importing), mapping spans as they
    /// are imported and unmapping them as they go back.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_set_vm(
        arena: *mut vmspace_arena_t,
        size: vmspace_size_t,
        flags: c_int,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            if flags != 0 {
                return Err(-code::EINVAL);
            }
            // Reserved, and whatever VM is refused or replaced released,
            // outside the arena lock: both take system calls, and in the
            // kernel may sleep. Aligned to the arena's quantum (fixed for
            // its life), so that a VM of n quanta holds n quanta.
            let fresh = match size {
                0 => None,
                _ => Some(OwnedVmSource::<P>::new(size, o.quantum)?),
            };
            let (done, leftover) = o.shared.with(|a| {
                let s = a.source_mut();
                if s.imported != 0 || matches!(s.import, Import::Parent { .. }) {
                    return (Err(-code::EBUSY), fresh.map(Import::Vm));
                }
                let new = fresh.map_or(Import::None, Import::Vm);
                (Ok(()), Some(core::mem::replace(&mut s.import, new)))
            });
            drop(leftover);
            done?;
            o.polls.store(false, Ordering::Relaxed);
            // A source to import from may let a waiting allocation succeed.
            o.shared.wake_waiters();
            Ok(())
        })())
    }

    /// `vmspace_arena_set_limit`: imports fail once spans would pass
    /// `limit` units (0: no limit).
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_set_limit(
        arena: *mut vmspace_arena_t,
        limit: vmspace_size_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            o.shared.with(|a| a.source_mut().limit = limit);
            // A higher limit may let a waiting allocation import.
            o.space_added();
            Ok(())
        })())
    }

    /// `vmspace_arena_set_mtbf`: fail allocating operations with
    /// probability `1 / mtbf` (0: never), seeded with `seed`.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_set_mtbf(
        arena: *mut vmspace_arena_t,
        seed: u64,
        mtbf: c_uint,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            o.shared.with(|a| a.set_mtbf(seed, mtbf));
            Ok(())
        })())
    }

    /// `vmspace_arena_reclaim`: give the quantum caches' depots back to
    /// their slabs and wholly free slabs back to the arena; the number of
    /// slabs freed, or a negative errno.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_reclaim(arena: *mut vmspace_arena_t) -> c_int {
        // SAFETY: the caller's contract.
        match unsafe { obj::<P, _>(arena) } {
            Ok(o) => {
                let freed = o.shared.reclaim();
                if freed > 0 {
                    o.space_returned();
                }
                c_int::try_from(freed).unwrap_or(c_int::MAX)
            }
            Err(e) => e,
        }
    }
}
