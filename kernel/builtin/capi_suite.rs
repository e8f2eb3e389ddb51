// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite `vmspace_capi_trees`: arenas of the C API in the built-in
//! kernel, nested the ways C callers nest them, so that `make kunit-debug`'s
//! lockdep sees every way one arena's lock is taken under another's: a
//! child importing from its parent, three levels deep, and an import
//! function allocating from another arena. Each arena's lock has a lockdep
//! class of its own (`KernelMutex::with_own_class`); when one class served
//! them all, lockdep reported "possible recursive locking" at the first
//! import (found by an outside reviewer's Rust tree of shared arenas).
//! Under the plain kernel the cases check only what the calls return.

#[kernel::macros::kunit_tests(vmspace_capi_trees)]
mod tests {
    use core::ffi::{c_int, c_void};
    use core::ptr;

    use vmspace_capi::ctypes::{vmspace_addr_t, vmspace_arena_t, vmspace_params, vmspace_size_t};
    use vmspace_ktest::outcome::ensure;
    use vmspace_ktest::{report, Outcome};

    use crate::capi::vmspace_native_api::{
        vmspace_arena_alloc, vmspace_arena_check, vmspace_arena_create, vmspace_arena_create_ex,
        vmspace_arena_destroy, vmspace_arena_free, vmspace_arena_set_import,
    };

    /// An arena with a span of 16 MiB at 1 GiB and a quantum of 4 KiB.
    fn root() -> *mut vmspace_arena_t {
        // SAFETY: a static NUL-terminated name; plain values.
        unsafe { vmspace_arena_create(c"trees root".as_ptr(), 1 << 30, 16 << 20, 4096, 0, 0) }
    }

    /// A child importing from `parent`, or null.
    fn child(parent: *mut vmspace_arena_t) -> *mut vmspace_arena_t {
        let p = vmspace_params { quantum: 4096, parent, ..Default::default() };
        let mut a = ptr::null_mut();
        // SAFETY: valid params and out pointer; `parent` is live.
        match unsafe { vmspace_arena_create_ex(&p, &mut a) } {
            0 => a,
            _ => ptr::null_mut(),
        }
    }

    /// Allocate 8 KiB of `a` (importing through its tree) and free it.
    fn alloc_free(a: *mut vmspace_arena_t) -> Outcome {
        let mut x: vmspace_addr_t = 0;
        // SAFETY: `a` is live; `x` is writable.
        ensure(unsafe { vmspace_arena_alloc(a, 8192, 0, &mut x) } == 0, "alloc")?;
        // SAFETY: as above; `x` was just allocated with this size.
        ensure(unsafe { vmspace_arena_free(a, x, 8192) } == 0, "free")?;
        // SAFETY: as above.
        ensure(unsafe { vmspace_arena_check(a) } == 0, "check")
    }

    /// A grandchild's allocation imports from its parent, whose import
    /// takes the root's lock: three arena locks nested.
    fn three_levels() -> Outcome {
        let r = root();
        ensure(!r.is_null(), "root")?;
        let c = child(r);
        let g = if c.is_null() { ptr::null_mut() } else { child(c) };
        let result = match g.is_null() {
            true => ensure(false, "children"),
            false => alloc_free(g).and_then(|()| alloc_free(c)),
        };
        for a in [g, c, r] {
            if !a.is_null() {
                // SAFETY: live, and its children went first.
                unsafe { vmspace_arena_destroy(a) };
            }
        }
        result
    }

    /// Import from the arena `arg` through the native API (with the
    /// importing arena's lock held).
    unsafe extern "C" fn import_from(
        arg: *mut c_void,
        size: vmspace_size_t,
        _flags: c_int,
        addrp: *mut vmspace_addr_t,
    ) -> c_int {
        // SAFETY: `arg` is the source arena, live while the importer is;
        // `addrp` is the arena's out pointer.
        unsafe { vmspace_arena_alloc(arg.cast(), size, 0, addrp) }
    }

    /// Give back to the arena `arg`.
    unsafe extern "C" fn release_to(arg: *mut c_void, addr: vmspace_addr_t, size: vmspace_size_t) {
        // SAFETY: as for `import_from`; the range came from it.
        unsafe { vmspace_arena_free(arg.cast(), addr, size) };
    }

    /// An arena importing through functions that allocate from another:
    /// the other's lock under the importer's.
    fn import_functions() -> Outcome {
        let src = root();
        // SAFETY: a static name; plain values.
        let a = unsafe { vmspace_arena_create(c"trees importer".as_ptr(), 0, 0, 4096, 0, 0) };
        let result = match src.is_null() || a.is_null() {
            true => ensure(false, "arenas"),
            false => {
                // SAFETY: `a` is live; the functions' argument is `src`,
                // which outlives `a` (destroyed after it).
                let set = unsafe {
                    vmspace_arena_set_import(a, Some(import_from), Some(release_to), src.cast(), 0)
                };
                ensure(set == 0, "set_import").and_then(|()| alloc_free(a))
            }
        };
        for x in [a, src] {
            if !x.is_null() {
                // SAFETY: live; the importer goes first.
                unsafe { vmspace_arena_destroy(x) };
            }
        }
        result
    }

    #[test]
    fn a_grandchild_imports_through_its_tree() -> Outcome {
        report(three_levels())
    }

    #[test]
    fn an_import_function_allocates_from_another_arena() -> Outcome {
        report(import_functions())
    }

    /// A destroy with allocations left reports it once (a warning naming
    /// the arena); one with everything freed (the per-CPU caches' objects
    /// included, flushed by the destroy) reports nothing.
    #[test]
    fn a_destroy_with_allocations_left_reports_them_once() -> Outcome {
        use core::sync::atomic::Ordering;
        let reports = || crate::capi::LEAK_REPORTS.load(Ordering::Relaxed);
        let before = reports();
        // SAFETY: a static name; plain values; per-CPU caches up to 4 KiB.
        let a = unsafe { vmspace_arena_create(c"leaky".as_ptr(), 1 << 30, 16 << 20, 16, 4096, 0) };
        ensure(!a.is_null(), "create")?;
        let (mut x, mut y): (vmspace_addr_t, vmspace_addr_t) = (0, 0);
        // SAFETY: `a` is live; `x`, `y` writable.
        ensure(unsafe { vmspace_arena_alloc(a, 64, 0, &mut x) } == 0, "alloc (cached)")?;
        // SAFETY: as above.
        ensure(unsafe { vmspace_arena_alloc(a, 1 << 20, 0, &mut y) } == 0, "alloc")?;
        // SAFETY: as above; `x` was allocated with this size.
        ensure(unsafe { vmspace_arena_free(a, x, 64) } == 0, "free")?;
        // SAFETY: `a` is live and used by no one else.
        ensure(unsafe { vmspace_arena_destroy(a) } == 0, "destroy")?;
        ensure(reports() == before + 1, "a destroy with one allocation left did not report it")?;
        // SAFETY: as above.
        let b = unsafe { vmspace_arena_create(c"tidy".as_ptr(), 1 << 30, 16 << 20, 16, 4096, 0) };
        ensure(!b.is_null(), "create")?;
        // SAFETY: `b` is live; `x` writable.
        ensure(unsafe { vmspace_arena_alloc(b, 64, 0, &mut x) } == 0, "alloc (cached)")?;
        // SAFETY: as above.
        ensure(unsafe { vmspace_arena_free(b, x, 64) } == 0, "free")?;
        // SAFETY: `b` is live and used by no one else.
        ensure(unsafe { vmspace_arena_destroy(b) } == 0, "destroy")?;
        ensure(reports() == before + 1, "a destroy with nothing left reported a leak")
    }
}
