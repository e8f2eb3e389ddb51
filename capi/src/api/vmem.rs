//! FreeBSD's vmem(9) over the same arenas: names, signatures and flags of
//! `sys/vmem.h`; positive errno values; a per-arena error hook for the
//! calls that return nothing. The differences are tabled in the README.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::mem::{align_of, size_of};

use vmspace::arena::{ArenaError, Policy, SegmentKinds};
use vmspace::sync::Wait;
use vmspace_shim::{Addr, Size};

use super::memory::XArgs;
use super::{fail, obj, out, out_opt, Api};
use crate::ctypes::*;
use crate::errno::{code, cstr_ptr};
use crate::flags::{self, AllocFlags};
use crate::object::{ArenaObj, WaitAt};
use crate::platform::Platform;

/// vmem(9) returns positive errno values.
fn positive(e: c_int) -> c_int {
    e.checked_neg().unwrap_or(code::EINVAL)
}

/// An allocation's error as vmem(9) reports it: constraints that can never
/// be met, and sizes too large to round or place, are `ENOMEM` there, like a
/// lack of space.
fn alloc_error(e: c_int) -> c_int {
    if e == -code::ERANGE || e == -code::EOVERFLOW {
        code::ENOMEM
    } else {
        positive(e)
    }
}

/// The native creation flags for vmem creation flags (strategy only:
/// wait flags are accepted and mean nothing at creation).
fn create_flags(flags: c_int) -> Option<c_int> {
    let f = flags::vmem(flags)?;
    Some(match f.policy {
        None | Some(Policy::InstantFit) => VMSPACE_INSTANTFIT,
        Some(Policy::BestFit) => VMSPACE_BESTFIT,
        Some(Policy::FirstFit) => VMSPACE_FIRSTFIT,
        Some(Policy::NextFit) => VMSPACE_NEXTFIT,
    })
}

impl<P: Platform> ArenaObj<P> {
    /// Tell the arena's error hook, if any, that `what` failed with `err`.
    fn report(&self, vm: *mut vmem_t, what: &CStr, addr: usize, size: usize, err: c_int) {
        let h = self.shared.with(|a| a.source().hooks);
        if let Some(f) = h.error {
            // SAFETY: the caller's hook, called as its type says with its
            // argument (vmem_set_error_hook's contract).
            unsafe { f(h.error_arg, vm, cstr_ptr(what), addr, size, positive(err)) };
        }
    }

    /// `vmem_add` of a span touching an added span of an arena whose spans
    /// are never given back (no release function), as vmem(9)'s
    /// `vmem_add1` coalesces it: the two become one span, so allocations
    /// may straddle the seam. `None` when it touches no such span: it is
    /// then added as a span of its own (or refused) as `vmspace_arena_add`
    /// says. When it touches one, the extend's own result: a refused
    /// extend is the call's one failure (counted once, one fault injected
    /// at most), not followed by an add that would fail again.
    fn vmem_extend(&self, addr: usize, size: usize) -> Option<Result<(), ArenaError>> {
        let extended = self.shared.with(|a| {
            if a.source().releases() {
                return None;
            }
            let end = addr.checked_add(size);
            let touches = a.walk(SegmentKinds::SPANS).any(|s| {
                !s.imported && (s.range.limit().0 == addr || Some(s.range.base().0) == end)
            });
            if !touches {
                return None;
            }
            Some(a.extend(Addr(addr), Size(size)).map(|()| {
                let s = a.source_mut();
                s.added = s.added.saturating_add(size);
            }))
        });
        if let Some(Ok(())) = extended {
            self.space_added();
        }
        extended
    }

    /// A size as the vmem(9) calls pass it on: rounded up to the quantum
    /// (left as it is if that overflows, for the arena to refuse). vmem(9)
    /// frees a segment with any size that rounds to its own, so its
    /// allocations are made, and its frees checked, in whole quanta: a
    /// `vmem_alloc(10)` in quanta of 16 is freed by `vmem_free(a, 16)` or
    /// `vmem_free(a, 9)`, and through the native API by a free of 16.
    #[inline]
    fn vmem_size_of(&self, size: usize) -> usize {
        vmspace_shim::align::align_up(size, self.quantum).unwrap_or(size)
    }

    /// Run a vmem allocation whose first try (without waiting) failed with
    /// `first`: when that found no space, call the reclaim hook (if any)
    /// and try again with `again`, waiting as `f` asks at the root of the
    /// tree (`wait_at`, as [`waiting_root`](ArenaObj::waiting_root) gave
    /// it before the first try).
    #[cold]
    #[inline(never)]
    fn vmem_attempt(
        &self,
        vm: *mut vmem_t,
        flags: c_int,
        f: AllocFlags,
        wait_at: WaitAt<'_, P>,
        first: ArenaError,
        again: &mut dyn FnMut() -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        if !matches!(first, ArenaError::NoSpace { .. }) {
            return Err(first);
        }
        let reclaim = self.shared.with(|a| a.source().hooks.reclaim);
        if let Some(r) = reclaim {
            // SAFETY: the caller's reclaim function, called as its type
            // says, without the arena lock (it may free into the arena).
            unsafe { r(vm, flags) };
        }
        if f.wait != Wait::No {
            let got = again();
            return wait_at.wait_after(got, again);
        }
        if reclaim.is_some() {
            again()
        } else {
            Err(first)
        }
    }
}

impl<P: Platform> Api<P> {
    /// `vmem_create`: an arena, or NULL.
    ///
    /// # Safety
    ///
    /// `name` is NULL or a NUL-terminated string.
    pub unsafe fn vmem_create(
        name: *const c_char,
        base: vmem_addr_t,
        size: vmem_size_t,
        quantum: vmem_size_t,
        qcache_max: vmem_size_t,
        flags: c_int,
    ) -> *mut vmem_t {
        let Some(flags) = create_flags(flags) else { return core::ptr::null_mut() };
        // SAFETY: the caller's contract.
        unsafe { Self::vmspace_arena_create(name, base, size, quantum, qcache_max, flags) }.cast()
    }

    /// `vmem_init`: an arena in the caller's storage `vm`, or NULL; NULL
    /// too for storage that holds a live arena (initialized and not
    /// destroyed), which is left as it is: made again, it was lost, with
    /// everything it had mapped.
    ///
    /// # Safety
    ///
    /// `vm` is NULL or writable storage of `sizeof(vmem_t)` that does not
    /// move or get reused while the arena lives; `name` is NULL or a
    /// NUL-terminated string.
    pub unsafe fn vmem_init(
        vm: *mut vmem_t,
        name: *const c_char,
        base: vmem_addr_t,
        size: vmem_size_t,
        quantum: vmem_size_t,
        qcache_max: vmem_size_t,
        flags: c_int,
    ) -> *mut vmem_t {
        const {
            assert!(size_of::<ArenaObj<P>>() <= size_of::<vmem_t>(), "vmem_t is too small");
            assert!(align_of::<ArenaObj<P>>() <= align_of::<vmem_t>(), "vmem_t is underaligned");
        }
        let (Ok(place), Some(flags)) = (out(vm), create_flags(flags)) else {
            return core::ptr::null_mut();
        };
        // SAFETY: the storage is the caller's, of `vmem_t`'s size (the
        // contract): its magic word is read atomically, as for any arena
        // pointer.
        if unsafe { ArenaObj::<P>::from_ptr(vm.cast_const()) }.is_ok() {
            return core::ptr::null_mut();
        }
        let p =
            vmspace_params { name, base, size, quantum, qcache_max, flags, ..Default::default() };
        // SAFETY: storage of the object's size and alignment (checked
        // above) that stays put (caller); the name as the caller promises.
        match unsafe { ArenaObj::<P>::init(place.as_ptr().cast(), &p, false) } {
            0 => vm,
            _ => core::ptr::null_mut(),
        }
    }

    /// `vmem_destroy`. A destroy refused because other arenas import from
    /// this one goes to the error hook (`EBUSY`), and the arena stays.
    ///
    /// # Safety
    ///
    /// As for `vmspace_arena_destroy`.
    pub unsafe fn vmem_destroy(vm: *mut vmem_t) {
        // SAFETY: the caller's contract.
        let e = unsafe { ArenaObj::<P>::destroy(vm.cast()) };
        if e != 0 {
            // SAFETY: as above (still live when refused as busy).
            if let Ok(o) = unsafe { obj::<P, _>(vm) } {
                o.report(vm, c"vmem_destroy", 0, 0, e);
            }
        }
    }

    /// `vmem_add`: 0 or a positive errno.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmem_add(
        vm: *mut vmem_t,
        addr: vmem_addr_t,
        size: vmem_size_t,
        flags: c_int,
    ) -> c_int {
        if flags::vmem(flags).is_none() {
            return code::EINVAL;
        }
        // SAFETY: the caller's contract.
        let extended = match unsafe { obj::<P, _>(vm) } {
            Ok(o) => o.vmem_extend(addr, size),
            Err(_) => None,
        };
        let status = match extended {
            Some(Ok(())) => 0,
            Some(Err(e)) => fail(e),
            // SAFETY: the caller's contract.
            None => unsafe { Self::vmspace_arena_add(vm.cast(), addr, size, 0) },
        };
        match status {
            // A span that wraps past the top of the address space.
            e if e == -code::EOVERFLOW => code::EINVAL,
            e => positive(e),
        }
    }

    /// `vmem_alloc`: 0 or a positive errno; the address to `*addrp` unless
    /// `addrp` is NULL.
    ///
    /// # Safety
    ///
    /// `vm` as usual; `addrp` NULL or writable.
    pub unsafe fn vmem_alloc(
        vm: *mut vmem_t,
        size: vmem_size_t,
        flags: c_int,
        addrp: *mut vmem_addr_t,
    ) -> c_int {
        let r = (|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(vm) }?;
            let f = flags::vmem(flags).ok_or(-code::EINVAL)?;
            let dest = out_opt(addrp)?;
            let size = o.vmem_size_of(size);
            let wait_at = o.waiting_root(f.wait);
            let a = o
                .alloc_tried(size, f, |first, again| {
                    o.vmem_attempt(vm, flags, f, wait_at, first, again)
                })
                .map_err(fail)?;
            if let Some(p) = dest {
                // SAFETY: non-null and aligned, so writable (caller).
                unsafe { p.as_ptr().write(a.0) };
            }
            Ok(())
        })();
        r.err().map_or(0, alloc_error)
    }

    /// `vmem_xalloc`: 0 or a positive errno. `maxaddr` is the highest
    /// address the allocation may cover (inclusive), as in vmem(9).
    ///
    /// # Safety
    ///
    /// `vm` as usual; `addrp` NULL or writable.
    #[expect(clippy::too_many_arguments, reason = "the C signature")]
    pub unsafe fn vmem_xalloc(
        vm: *mut vmem_t,
        size: vmem_size_t,
        align: vmem_size_t,
        phase: vmem_size_t,
        nocross: vmem_size_t,
        minaddr: vmem_addr_t,
        maxaddr: vmem_addr_t,
        flags: c_int,
        addrp: *mut vmem_addr_t,
    ) -> c_int {
        let r = (|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(vm) }?;
            let f = flags::vmem(flags).ok_or(-code::EINVAL)?;
            let dest = out_opt(addrp)?;
            let x = XArgs {
                size: o.vmem_size_of(size),
                align,
                phase,
                nocross,
                min: (minaddr != VMEM_ADDR_MIN).then_some(minaddr),
                // Inclusive in vmem(9); exclusive here (MAX: no limit).
                max: maxaddr.checked_add(1),
                exact: None,
            };
            let wait_at = o.waiting_root(f.wait);
            let mut again = || o.xalloc_addr(&x, AllocFlags { wait: Wait::No, ..f });
            let a = match again() {
                Ok(a) => a,
                Err(e) => o.vmem_attempt(vm, flags, f, wait_at, e, &mut again).map_err(fail)?,
            };
            if let Some(p) = dest {
                // SAFETY: non-null and aligned, so writable (caller).
                unsafe { p.as_ptr().write(a.0) };
            }
            Ok(())
        })();
        r.err().map_or(0, alloc_error)
    }

    /// The free of `vmem_free` and `vmem_xfree`: a bad free goes to the
    /// error hook and changes nothing.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    unsafe fn vmem_free_as(vm: *mut vmem_t, addr: vmem_addr_t, size: vmem_size_t, what: &CStr) {
        // SAFETY: the caller's contract.
        if let Ok(o) = unsafe { obj::<P, _>(vm) } {
            if let Err(e) = o.free_addr(addr, o.vmem_size_of(size)) {
                o.report(vm, what, addr, size, fail(e));
            }
        }
    }

    /// `vmem_free`.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmem_free(vm: *mut vmem_t, addr: vmem_addr_t, size: vmem_size_t) {
        // SAFETY: the caller's contract.
        unsafe { Self::vmem_free_as(vm, addr, size, c"vmem_free") }
    }

    /// `vmem_xfree`.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmem_xfree(vm: *mut vmem_t, addr: vmem_addr_t, size: vmem_size_t) {
        // SAFETY: the caller's contract.
        unsafe { Self::vmem_free_as(vm, addr, size, c"vmem_xfree") }
    }

    /// `vmem_size`: allocated (`VMEM_ALLOC`), free (`VMEM_FREE`), total
    /// (both) or the largest free segment (`VMEM_MAXFREE`); 0 for a bad
    /// arena or mask (the mask reported to the error hook).
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmem_size(vm: *mut vmem_t, typemask: c_int) -> vmem_size_t {
        // SAFETY: the caller's contract.
        let Ok(o) = (unsafe { obj::<P, _>(vm) }) else { return 0 };
        let got = o.shared.with(|a| {
            let s = a.sizes();
            match typemask {
                VMEM_ALLOC => Some(s.allocated.0),
                VMEM_FREE => Some(s.free.0),
                m if m == VMEM_ALLOC | VMEM_FREE => Some(s.total.0),
                VMEM_MAXFREE => Some(a.largest_free().0),
                _ => None,
            }
        });
        got.unwrap_or_else(|| {
            o.report(vm, c"vmem_size", 0, 0, -code::EINVAL);
            0
        })
    }

    /// `vmem_set_import`: import through `importfn`, whose results must be
    /// aligned to the import quantum (a power of two; 0: the quantum).
    /// Failures go to the error hook.
    ///
    /// # Safety
    ///
    /// As for `vmspace_arena_set_import`.
    pub unsafe fn vmem_set_import(
        vm: *mut vmem_t,
        importfn: vmem_import_t,
        releasefn: vmem_release_t,
        arg: *mut c_void,
        import_quantum: vmem_size_t,
    ) {
        let flags = M_NOWAIT | M_FIRSTFIT;
        // SAFETY: the caller's contract.
        let r = unsafe { Self::set_import(vm, importfn, releasefn, arg, import_quantum, flags) };
        if let Err(e) = r {
            // SAFETY: as above.
            if let Ok(o) = unsafe { obj::<P, _>(vm) } {
                o.report(vm, c"vmem_set_import", 0, import_quantum, e);
            }
        }
    }

    /// `vmem_set_limit`: imports fail once the arena's spans would pass
    /// `limit` (0: no limit).
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmem_set_limit(vm: *mut vmem_t, limit: vmem_size_t) {
        // SAFETY: the caller's contract.
        unsafe { Self::vmspace_arena_set_limit(vm.cast(), limit) };
    }

    /// `vmem_set_reclaim`.
    ///
    /// # Safety
    ///
    /// `vm` as usual; `reclaimfn` NULL or a function of its type, callable
    /// from any thread that allocates from the arena.
    pub unsafe fn vmem_set_reclaim(vm: *mut vmem_t, reclaimfn: vmem_reclaim_t) {
        // SAFETY: the caller's contract.
        if let Ok(o) = unsafe { obj::<P, _>(vm) } {
            o.shared.with(|a| a.source_mut().hooks.reclaim = reclaimfn);
        }
    }

    /// `vmem_set_error_hook` (not in vmem(9)): call `hook` with `arg` when
    /// a call that returns nothing fails.
    ///
    /// # Safety
    ///
    /// `vm` as usual; `hook` NULL or a function of its type, callable from
    /// any thread that uses the arena.
    pub unsafe fn vmem_set_error_hook(vm: *mut vmem_t, hook: vmem_error_hook_t, arg: *mut c_void) {
        // SAFETY: the caller's contract.
        if let Ok(o) = unsafe { obj::<P, _>(vm) } {
            o.shared.with(|a| {
                let h = &mut a.source_mut().hooks;
                h.error = hook;
                h.error_arg = arg;
            });
        }
    }

    /// `vmem_roundup_size`: `size` rounded up to the quantum (0 when that
    /// overflows; `size` for a bad arena).
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmem_roundup_size(vm: *mut vmem_t, size: vmem_size_t) -> vmem_size_t {
        // SAFETY: the caller's contract.
        let Ok(o) = (unsafe { obj::<P, _>(vm) }) else { return size };
        let q = o.shared.with(|a| a.quantum().0);
        size.checked_add(q - 1).map_or(0, |s| s & !(q - 1))
    }
}
