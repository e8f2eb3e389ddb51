//! Introspection (native API): sizes, counters, the free-size histogram,
//! walks, `check`, names; and the library-wide calls.

use core::ffi::{c_char, c_int, c_void};

use vmspace::arena::{Segment, SegmentKind, SegmentKinds, FREE_LISTS};
use vmspace_shim::{Addr, Size};

use super::{fail, obj, out, status, Api};
use crate::ctypes::*;
use crate::errno::{code, strerror_ptr};
use crate::platform::Platform;
use crate::source::Import;

/// The walk kinds of a `VMSPACE_SEG_*` mask (non-empty, known bits only).
fn kinds(mask: c_int) -> Option<SegmentKinds> {
    if mask == 0 || mask & !VMSPACE_SEG_ALL != 0 {
        return None;
    }
    let mut k: Option<SegmentKinds> = None;
    for (bit, kind) in [
        (VMSPACE_SEG_SPAN, SegmentKinds::SPANS),
        (VMSPACE_SEG_FREE, SegmentKinds::FREE),
        (VMSPACE_SEG_ALLOCATED, SegmentKinds::ALLOCATED),
        (VMSPACE_SEG_UNFLUSHED, SegmentKinds::UNFLUSHED),
    ] {
        if mask & bit != 0 {
            k = Some(k.map_or(kind, |k| k.union(kind)));
        }
    }
    k
}

/// A segment as C sees it.
pub(crate) fn segment(s: &Segment) -> vmspace_segment {
    let kind = match s.kind {
        SegmentKind::Span => VMSPACE_SEG_SPAN,
        SegmentKind::Free => VMSPACE_SEG_FREE,
        SegmentKind::Allocated => VMSPACE_SEG_ALLOCATED,
        SegmentKind::Unflushed => VMSPACE_SEG_UNFLUSHED,
    };
    let mut flags = 0;
    if s.imported {
        flags |= VMSPACE_SEG_IMPORTED;
    }
    if s.held {
        flags |= VMSPACE_SEG_HELD;
    }
    vmspace_segment {
        start: s.range.base().0,
        size: s.range.size().0,
        requested: s.requested.0,
        kind,
        flags,
    }
}

impl<P: Platform> Api<P> {
    /// `vmspace_strerror`: the text of a (negative or positive) errno value
    /// as this API uses it; never NULL.
    ///
    /// # Safety
    ///
    /// None: any value is fine (`unsafe` only for the macro's sake).
    pub unsafe fn vmspace_strerror(err: c_int) -> *const c_char {
        strerror_ptr(err)
    }

    /// `vmspace_version`: `VMSPACE_VERSION` of the library.
    ///
    /// # Safety
    ///
    /// None.
    pub unsafe fn vmspace_version() -> c_int {
        VMSPACE_VERSION
    }

    /// `vmspace_arena_name`: the arena's name, or NULL for a bad arena.
    ///
    /// # Safety
    ///
    /// `arena` as usual; the name lives as long as the arena.
    pub unsafe fn vmspace_arena_name(arena: *mut vmspace_arena_t) -> *const c_char {
        // SAFETY: the caller's contract.
        match unsafe { obj::<P, _>(arena) } {
            Ok(o) => o.name_ptr(),
            Err(_) => core::ptr::null(),
        }
    }

    /// `vmspace_arena_quantum`: the arena's quantum, or 0 for a bad arena.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_quantum(arena: *mut vmspace_arena_t) -> vmspace_size_t {
        // SAFETY: the caller's contract.
        match unsafe { obj::<P, _>(arena) } {
            Ok(o) => o.shared.with(|a| a.quantum().0),
            Err(_) => 0,
        }
    }

    /// `vmspace_arena_sizes`.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `sizesp` is NULL or writable.
    pub unsafe fn vmspace_arena_sizes(
        arena: *mut vmspace_arena_t,
        sizesp: *mut vmspace_sizes,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let sizesp = out(sizesp)?;
            let s = o.shared.with(|a| {
                let s = a.sizes();
                vmspace_sizes {
                    allocated: s.allocated.0,
                    free: s.free.0,
                    total: s.total.0,
                    imported: s.imported.0,
                    largest_free: a.largest_free().0,
                    live: a.live(),
                    spans: a.span_count(),
                    fragmentation_permille: a.fragmentation(),
                    reserved: 0,
                    unflushed: s.unflushed.0,
                }
            });
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { sizesp.as_ptr().write(s) };
            Ok(())
        })())
    }

    /// `vmspace_arena_counters`.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `countersp` is NULL or writable.
    pub unsafe fn vmspace_arena_counters(
        arena: *mut vmspace_arena_t,
        countersp: *mut vmspace_counters,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let countersp = out(countersp)?;
            let c = o.shared.with(|a| a.counters());
            let q = o.shared.qcache_stats();
            let v = vmspace_counters {
                allocs: c.allocs,
                frees: c.frees,
                failures: c.failures,
                bad_frees: c.bad_frees.saturating_add(q.bad_frees),
                search_steps: c.search_steps,
                imports: c.imports,
                exports: c.exports,
                injected: c.injected,
                qcache_hits: q.hits,
                qcache_misses: q.misses,
                qcache_slabs: q.slabs as u64,
                qcache_reclaims: q.reclaims,
                deferred_frees: c.deferred_frees,
                flushes: c.flushes,
            };
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { countersp.as_ptr().write(v) };
            Ok(())
        })())
    }

    /// `vmspace_arena_histogram`: free segments with size in `[2^k,
    /// 2^(k+1))` into `bins[k]`, for the first `nbins` (at most
    /// `VMSPACE_HISTOGRAM_BINS`); the number of bins written, or a negative
    /// errno.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `bins` is NULL (with `nbins` 0) or writable for
    /// `nbins` values.
    pub unsafe fn vmspace_arena_histogram(
        arena: *mut vmspace_arena_t,
        bins: *mut u64,
        nbins: vmspace_size_t,
    ) -> c_int {
        // SAFETY: the caller's contract.
        let o = match unsafe { obj::<P, _>(arena) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        let n = nbins.min(FREE_LISTS);
        if n > 0 && out(bins).is_err() {
            return -code::EINVAL;
        }
        let h = o.shared.with(|a| a.free_histogram());
        for (k, &count) in h.iter().enumerate().take(n) {
            // SAFETY: `k < n <= nbins`, inside the caller's writable array.
            unsafe { bins.add(k).write(count as u64) };
        }
        n as c_int
    }

    /// `vmspace_arena_walk`: call `fn` for each span or segment of the
    /// kinds in `kinds`, in address order, with the arena locked; 0, the
    /// callback's non-zero return that stopped the walk, or a negative
    /// errno.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `walk` is NULL or a function of the declared type
    /// that does not call into this arena (it is locked).
    pub unsafe fn vmspace_arena_walk(
        arena: *mut vmspace_arena_t,
        kinds_mask: c_int,
        walk: vmspace_walk_fn,
        arg: *mut c_void,
    ) -> c_int {
        // SAFETY: the caller's contract.
        let o = match unsafe { obj::<P, _>(arena) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        let (Some(k), Some(f)) = (kinds(kinds_mask), walk) else { return -code::EINVAL };
        o.shared.with(|a| {
            for s in a.walk(k) {
                let seg = segment(&s);
                // SAFETY: the caller's function, called as its type says.
                let r = unsafe { f(arg, &seg) };
                if r != 0 {
                    return r;
                }
            }
            0
        })
    }

    /// `vmspace_arena_check`: 0 when every invariant holds, `-EUCLEAN`
    /// (or the error found) otherwise.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_check(arena: *mut vmspace_arena_t) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            o.shared.check().map_err(fail)?;
            o.shared
                .with(|a| match a.source().import {
                    Import::Vm(ref v) => v.check(),
                    _ => Ok(()),
                })
                .map_err(fail)
        })())
    }

    /// `vmspace_arena_vm_info`: the arena's VM (`vmspace_arena_set_vm`)
    /// as `vmspace_vm_info` describes one; `-EINVAL` for an arena that
    /// imports from no VM.
    ///
    /// # Safety
    ///
    /// `arena` as usual; `infop` is NULL or writable.
    pub unsafe fn vmspace_arena_vm_info(
        arena: *mut vmspace_arena_t,
        infop: *mut vmspace_vm_info,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { obj::<P, _>(arena) }?;
            let infop = out(infop)?;
            let i = o.shared.with(|a| match a.source().import {
                Import::Vm(ref v) => Some(super::vm::info(v.vm())),
                _ => None,
            });
            let i = i.ok_or(-code::EINVAL)?;
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { infop.as_ptr().write(i) };
            Ok(())
        })())
    }

    /// `vmspace_arena_contains`: 1 when `[addr, addr + size)` lies inside
    /// one span, 0 when not, or a negative errno.
    ///
    /// # Safety
    ///
    /// `arena` as usual.
    pub unsafe fn vmspace_arena_contains(
        arena: *mut vmspace_arena_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
    ) -> c_int {
        // SAFETY: the caller's contract.
        match unsafe { obj::<P, _>(arena) } {
            Ok(o) => c_int::from(o.shared.with(|a| a.contains(Addr(addr), Size(size)))),
            Err(e) => e,
        }
    }
}
