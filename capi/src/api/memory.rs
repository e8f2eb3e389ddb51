//! Allocating and freeing (native API), and the paths vmem(9) shares.

use core::ffi::c_int;
use core::time::Duration;

use vmspace::arena::{Arena, ArenaError, Constraints, Handle, Policy};
use vmspace::sync::Wait;
use vmspace_shim::{Addr, Size};

use super::{fail, obj, out, out_opt, status, Api};
use crate::ctypes::*;
use crate::errno::code;
use crate::flags::{self, AllocFlags};
use crate::object::{ArenaObj, Caches, Shared, Store};
use crate::platform::Platform;
use crate::source::CSource;

/// The constraints of an `xalloc` call, checked against nothing yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XArgs {
    pub(crate) size: usize,
    pub(crate) align: usize,
    pub(crate) phase: usize,
    pub(crate) nocross: usize,
    /// Lowest start, if any.
    pub(crate) min: Option<usize>,
    /// Exclusive end limit, if any.
    pub(crate) max: Option<usize>,
    /// Exact start, if any.
    pub(crate) exact: Option<usize>,
}

impl XArgs {
    fn constraints(&self, policy: Policy, top: bool) -> Constraints {
        let mut c = Constraints::new(Size(self.size))
            .align(Size(self.align))
            .phase(Size(self.phase))
            .nocross(Size(self.nocross))
            .policy(policy)
            .from_top(top);
        if let Some(m) = self.min {
            c = c.min_addr(Addr(m));
        }
        if let Some(m) = self.max {
            c = c.max_addr(Addr(m));
        }
        if let Some(e) = self.exact {
            c = c.exact(Addr(e));
        }
        c
    }
}

impl<P: Platform> ArenaObj<P> {
    /// Allocate `size` as `f` asks: through the per-CPU quantum caches for
    /// sizes they serve (unless placed at the top), else from the arena.
    #[inline]
    pub(crate) fn alloc_addr(&self, size: usize, f: AllocFlags) -> Result<Addr, ArenaError> {
        if f.wait != Wait::No {
            return self.alloc_waiting(size, f);
        }
        self.alloc_here(size, f)
    }

    /// [`alloc_addr`](Self::alloc_addr) in this arena, waiting in it as `f`
    /// says.
    #[inline(always)]
    fn alloc_here(&self, size: usize, f: AllocFlags) -> Result<Addr, ArenaError> {
        let s = Size(size);
        if let Some(c) = self.caches_for(size, f) {
            return c.alloc_wait(s, f.wait);
        }
        let policy = f.policy.unwrap_or(self.policy);
        if f.top {
            return self.shared.xalloc(&Constraints::new(s).policy(policy).from_top(true), f.wait);
        }
        self.shared.alloc(s, policy, f.wait)
    }

    /// The per-CPU quantum caches, when they serve an allocation of `size`
    /// as `f` asks: sizes up to `qcache_max`, not placed at the top.
    #[inline(always)]
    fn caches_for(&self, size: usize, f: AllocFlags) -> Option<&Caches<P>> {
        self.caches.as_ref().filter(|_| !f.top && size <= self.shared.qcache_max().0)
    }

    /// A waiting [`alloc_addr`](Self::alloc_addr): at the root of its tree
    /// ([`wait_at_root`](ArenaObj::wait_at_root)).
    #[cold]
    #[inline(never)]
    fn alloc_waiting(&self, size: usize, f: AllocFlags) -> Result<Addr, ArenaError> {
        let at = self.waiting_root(f.wait);
        self.alloc_tried(size, f, |e, again| at.wait_after(Err(e), again))
    }

    /// An allocation of `size` as `f` asks, tried once without waiting;
    /// when that fails, `then` gets the error and a retry (without
    /// waiting) to call as it sees fit, and gives the result. Through the
    /// caches, one allocation however often `then` retries it: it counts
    /// once in their statistics, a hit or a miss
    /// ([`CpuCaches::alloc_retrying`](vmspace::sync::CpuCaches::alloc_retrying)).
    /// A first try that succeeds (a hit, say) returns at once.
    #[inline]
    pub(crate) fn alloc_tried(
        &self,
        size: usize,
        f: AllocFlags,
        then: impl FnOnce(
            ArenaError,
            &mut dyn FnMut() -> Result<Addr, ArenaError>,
        ) -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        let retrying = self.caches_for(size, f).and_then(|c| c.alloc_retrying(Size(size)));
        if let Some(mut r) = retrying {
            return match r.first() {
                Ok(a) => Ok(a),
                Err(e) => then(e, &mut || r.again()),
            };
        }
        let mut again = || self.alloc_here(size, AllocFlags { wait: Wait::No, ..f });
        match again() {
            Ok(a) => Ok(a),
            Err(e) => then(e, &mut again),
        }
    }

    /// A constrained allocation as `f` asks (never from the caches).
    pub(crate) fn xalloc_addr(&self, x: &XArgs, f: AllocFlags) -> Result<Addr, ArenaError> {
        let c = x.constraints(f.policy.unwrap_or(self.policy), f.top);
        self.waiting(f.wait, |wait| self.shared.xalloc(&c, wait))
    }

    /// Free `[addr, addr + size)`, made by either allocation path.
    #[inline]
    pub(crate) fn free_addr(&self, addr: usize, size: usize) -> Result<(), ArenaError> {
        let freed = match &self.caches {
            Some(c) => c.free(Addr(addr), Size(size)),
            None => self.shared.free(Addr(addr), Size(size)),
        };
        if freed.is_ok() {
            self.space_returned();
        }
        freed
    }

    /// Allocate by handle with `attempt` under the lock (no waiting; a
    /// failure for lack of space is retried once after reclaiming the
    /// caches).
    #[inline]
    fn held(
        &self,
        attempt: impl Fn(&mut Arena<Store<P>, CSource<P>>) -> Result<Handle, ArenaError>,
    ) -> Result<vmspace_handle, ArenaError> {
        let h = match self.shared.with(&attempt) {
            Err(ArenaError::NoSpace { .. }) if self.shared.reclaim() > 0 => {
                self.shared.with(&attempt)
            }
            r => r,
        }?;
        Ok(vmspace_handle { addr: h.addr().0, tag: h.tag(), arena: h.arena() })
    }
}

/// The native flags of a handle allocation: no waiting.
#[inline]
fn held_flags(flags: c_int, exact_ok: bool) -> Result<AllocFlags, c_int> {
    let f = native(flags, exact_ok)?;
    if f.wait != Wait::No {
        return Err(-code::EOPNOTSUPP);
    }
    Ok(f)
}

/// The native flags of an allocation, or `-EINVAL`.
#[inline]
fn native(flags: c_int, exact_ok: bool) -> Result<AllocFlags, c_int> {
    flags::native(flags, exact_ok).ok_or(-code::EINVAL)
}

/// The native `xalloc` window: `min` 0 and `max` 0 mean no limit.
fn window(min: usize, max: usize, exact: Option<usize>, size: usize) -> XArgs {
    XArgs {
        size,
        align: 0,
        phase: 0,
        nocross: 0,
        min: (min != 0).then_some(min),
        max: (max != 0).then_some(max),
        exact,
    }
}

impl<P: Platform> Api<P> {
    /// `vmspace_arena_alloc`.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `addrp` is NULL or writable.
    pub unsafe fn vmspace_arena_alloc(
        arena: *mut vmspace_arena_t,
        size: vmspace_size_t,
        flags: c_int,
        addrp: *mut vmspace_addr_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let addrp = out(addrp)?;
            let a = o.alloc_addr(size, native(flags, false)?).map_err(fail)?;
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { addrp.as_ptr().write(a.0) };
            Ok(())
        })())
    }

    /// `vmspace_arena_alloc_timed`: as `vmspace_arena_alloc` with
    /// [`Wait::Timeout`] ([`Wait::Interruptible`] with `VMSPACE_KILLABLE`),
    /// and `-ETIMEDOUT` for the lack of space it ends in.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `addrp` is NULL or writable.
    pub unsafe fn vmspace_arena_alloc_timed(
        arena: *mut vmspace_arena_t,
        size: vmspace_size_t,
        flags: c_int,
        timeout_ns: u64,
        addrp: *mut vmspace_addr_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let addrp = out(addrp)?;
            let timed = flags::native_timed(flags, Duration::from_nanos(timeout_ns));
            let f = timed.ok_or(-code::EINVAL)?;
            let a = o.alloc_addr(size, f).map_err(|e| match e {
                ArenaError::NoSpace { .. } => -code::ETIMEDOUT,
                e => fail(e),
            })?;
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { addrp.as_ptr().write(a.0) };
            Ok(())
        })())
    }

    /// `vmspace_arena_xalloc`.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `addrp` is NULL or writable.
    #[expect(clippy::too_many_arguments, reason = "the C signature")]
    pub unsafe fn vmspace_arena_xalloc(
        arena: *mut vmspace_arena_t,
        size: vmspace_size_t,
        align: vmspace_size_t,
        phase: vmspace_size_t,
        nocross: vmspace_size_t,
        min: vmspace_addr_t,
        max: vmspace_addr_t,
        exact: vmspace_addr_t,
        flags: c_int,
        addrp: *mut vmspace_addr_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let addrp = out(addrp)?;
            let f = native(flags, true)?;
            let x =
                XArgs { align, phase, nocross, ..window(min, max, f.exact.then_some(exact), size) };
            let a = o.xalloc_addr(&x, f).map_err(fail)?;
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { addrp.as_ptr().write(a.0) };
            Ok(())
        })())
    }

    /// `vmspace_arena_free`.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_free(
        arena: *mut vmspace_arena_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            o.free_addr(addr, size).map_err(fail)
        })())
    }

    /// `vmspace_arena_free_deferred`: a checked free into the
    /// freed-but-not-flushed state.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_free_deferred(
        arena: *mut vmspace_arena_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            o.shared.free_deferred(Addr(addr), Size(size)).map_err(fail)
        })())
    }

    /// `vmspace_arena_flushed`: what was freed deferred becomes free; its
    /// size at `*freedp` (unless NULL).
    ///
    /// # Safety
    ///
    /// `arena` as usual; `freedp` is NULL or writable.
    pub unsafe fn vmspace_arena_flushed(
        arena: *mut vmspace_arena_t,
        freedp: *mut vmspace_size_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            // Checked before anything changes.
            let dest = out_opt(freedp)?;
            let freed = o.shared.flushed().0;
            o.space_returned();
            if let Some(p) = dest {
                // SAFETY: non-null and aligned, so writable (caller).
                unsafe { p.as_ptr().write(freed) };
            }
            Ok(())
        })())
    }

    /// `vmspace_arena_alloc_handle`.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `handlep` is NULL or writable.
    pub unsafe fn vmspace_arena_alloc_handle(
        arena: *mut vmspace_arena_t,
        size: vmspace_size_t,
        flags: c_int,
        handlep: *mut vmspace_handle,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let handlep = out(handlep)?;
            let f = held_flags(flags, false)?;
            let policy = f.policy.unwrap_or(o.policy);
            let h = if f.top {
                let c = Constraints::new(Size(size)).policy(policy).from_top(true);
                o.held(|a| a.xalloc_handle(&c))
            } else {
                o.held(|a| a.alloc_handle(Size(size), policy))
            }
            .map_err(fail)?;
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { handlep.as_ptr().write(h) };
            Ok(())
        })())
    }

    /// `vmspace_arena_xalloc_handle`.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `handlep` is NULL or writable.
    #[expect(clippy::too_many_arguments, reason = "the C signature")]
    pub unsafe fn vmspace_arena_xalloc_handle(
        arena: *mut vmspace_arena_t,
        size: vmspace_size_t,
        align: vmspace_size_t,
        phase: vmspace_size_t,
        nocross: vmspace_size_t,
        min: vmspace_addr_t,
        max: vmspace_addr_t,
        exact: vmspace_addr_t,
        flags: c_int,
        handlep: *mut vmspace_handle,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let handlep = out(handlep)?;
            let f = held_flags(flags, true)?;
            let x =
                XArgs { align, phase, nocross, ..window(min, max, f.exact.then_some(exact), size) };
            let c = x.constraints(f.policy.unwrap_or(o.policy), f.top);
            let h = o.held(|a| a.xalloc_handle(&c)).map_err(fail)?;
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { handlep.as_ptr().write(h) };
            Ok(())
        })())
    }

    /// `vmspace_arena_free_handle`: free what `handle` holds; the size it
    /// was allocated with goes to `*sizep` unless `sizep` is NULL.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `sizep` is NULL or writable.
    pub unsafe fn vmspace_arena_free_handle(
        arena: *mut vmspace_arena_t,
        handle: vmspace_handle,
        sizep: *mut vmspace_size_t,
    ) -> c_int {
        // SAFETY: the caller's contract, passed on.
        unsafe { free_held::<P>(arena, handle, sizep, |s, h| s.free_handle(h)) }
    }

    /// `vmspace_arena_free_handle_deferred`: as `vmspace_arena_free_handle`,
    /// into the freed-but-not-flushed state (until `vmspace_arena_flushed`).
    ///
    /// # Safety
    ///
    /// `arena` as usual; `sizep` is NULL or writable.
    pub unsafe fn vmspace_arena_free_handle_deferred(
        arena: *mut vmspace_arena_t,
        handle: vmspace_handle,
        sizep: *mut vmspace_size_t,
    ) -> c_int {
        // SAFETY: the caller's contract, passed on.
        unsafe { free_held::<P>(arena, handle, sizep, |s, h| s.free_handle_deferred(h)) }
    }
}

/// Free what `handle` holds with `free` (a `SyncArena` method taking the
/// handle its fields rebuild), storing the size at `*sizep` unless NULL.
///
/// # Safety
///
/// `arena` is NULL or an arena of this API not yet destroyed; `sizep` is NULL
/// or writable.
unsafe fn free_held<P: Platform>(
    arena: *mut vmspace_arena_t,
    handle: vmspace_handle,
    sizep: *mut vmspace_size_t,
    free: impl FnOnce(&Shared<P>, Handle) -> Result<Size, ArenaError>,
) -> c_int {
    status((|| {
        // SAFETY: the caller's contract.
        let o = unsafe { obj::<P, _>(arena) }?;
        let dest = out_opt(sizep)?;
        let (addr, tag) = (Addr(handle.addr), handle.tag);
        // Tag 0 is never a handle's: stood in for by `u32::MAX`, never a
        // tag either, so the arena refuses it and counts the bad free.
        let nonzero = if tag == 0 { u32::MAX } else { tag };
        let Some(h) = Handle::from_parts(addr, nonzero, handle.arena) else {
            return Err(fail(ArenaError::BadHandle { addr, tag }));
        };
        let size = free(&o.shared, h).map_err(fail)?;
        o.space_returned();
        if let Some(p) = dest {
            // SAFETY: non-null and aligned, so writable (caller).
            unsafe { p.as_ptr().write(size.0) };
        }
        Ok(())
    })())
}
