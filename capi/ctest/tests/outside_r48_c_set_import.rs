//! Round 48 outside review: `vmspace_arena_set_import` / `vmem_set_import`
//! and their import quantum at the edges (capi/include/vmspace.h:309-314:
//! "in multiples of `quantum` (a power of two at least the arena's quantum,
//! else -EINVAL; 0: the arena's quantum); a NULL `import` stops importing
//! ... -EBUSY while the arena holds imported spans or imports from a
//! parent"; vmem.h:91-94: "else the error hook's EINVAL and nothing
//! changes").

mod common;

use common::{counters, sizes};
use core::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::Mutex;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_check, vmspace_arena_create_ex, vmspace_arena_destroy,
    vmspace_arena_free, vmspace_arena_set_import, vmspace_arena_xalloc,
};

const EINVAL: c_int = 22;
const EBUSY: c_int = 16;

/// What the import function saw: (size asked) per call; releases.
struct Rec {
    next: usize,
    imports: Vec<usize>,
    releases: Vec<(usize, usize)>,
    /// If set, the address every import returns.
    fixed: Option<usize>,
}

unsafe extern "C" fn import(arg: *mut c_void, size: usize, _f: c_int, addrp: *mut usize) -> c_int {
    // SAFETY: `arg` is a `Mutex<Rec>` that outlives the arena.
    let r = unsafe { &*(arg as *const Mutex<Rec>) };
    let mut r = r.lock().unwrap();
    r.imports.push(size);
    let a = match r.fixed {
        Some(a) => a,
        None => {
            // Aligned to the size's highest power of two at most 2^40 (a
            // quantum-aligned address for every quantum tried here but 2^63).
            let al = size.next_power_of_two().clamp(1 << 12, 1 << 40);
            let a = r.next.next_multiple_of(al);
            r.next = a + size;
            a
        }
    };
    // SAFETY: a writable out pointer (the library's).
    unsafe { *addrp = a };
    0
}

unsafe extern "C" fn release(arg: *mut c_void, addr: usize, size: usize) {
    // SAFETY: as above.
    let r = unsafe { &*(arg as *const Mutex<Rec>) };
    r.lock().unwrap().releases.push((addr, size));
}

fn rec() -> Box<Mutex<Rec>> {
    Box::new(Mutex::new(Rec { next: 1 << 32, imports: vec![], releases: vec![], fixed: None }))
}

fn arena(quantum: usize, parent: *mut vmspace_arena_t) -> *mut vmspace_arena_t {
    let p = vmspace_params { quantum, parent, ..Default::default() };
    let mut a = null_mut();
    // SAFETY: valid parameters and out pointer.
    assert_eq!(unsafe { vmspace_arena_create_ex(&p, &mut a) }, 0);
    a
}

fn set(a: *mut vmspace_arena_t, r: &Mutex<Rec>, q: usize) -> c_int {
    let arg = r as *const Mutex<Rec> as *mut c_void;
    // SAFETY: a live arena; the functions' types as declared; `r` outlives it.
    unsafe { vmspace_arena_set_import(a, Some(import), Some(release), arg, q) }
}

fn alloc(a: *mut vmspace_arena_t, size: usize) -> Result<usize, c_int> {
    let mut x = 0;
    // SAFETY: a live arena.
    match unsafe { vmspace_arena_alloc(a, size, VMSPACE_INSTANTFIT, &mut x) } {
        0 => Ok(x),
        e => Err(e),
    }
}

fn check(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_check(a) }, 0);
}

#[test]
fn quantum_edges_on_a_root_arena() {
    for aq in [1usize, 16, 4096, 1 << 27] {
        let r = rec();
        let a = arena(aq, null_mut());
        // Non-powers of two and anything below the arena's quantum: -EINVAL.
        for bad in [3usize, aq + 1, aq * 3, usize::MAX, (1 << 63) + 1] {
            if bad.is_power_of_two() {
                continue;
            }
            assert_eq!(set(a, &r, bad), -EINVAL, "aq {aq} q {bad}");
        }
        if aq > 1 {
            assert_eq!(set(a, &r, aq / 2), -EINVAL, "aq {aq}: half the quantum");
            assert_eq!(set(a, &r, 1), -EINVAL, "aq {aq}: quantum 1");
        }
        // Refused calls change nothing: no import happens.
        assert_eq!(alloc(a, aq), Err(-12), "aq {aq}: refused set_import left an import on");
        assert!(r.lock().unwrap().imports.is_empty());
        // 0 and equal: accepted; imports of the arena's quantum.
        assert_eq!(set(a, &r, 0), 0);
        let x = alloc(a, aq).unwrap();
        assert_eq!(r.lock().unwrap().imports, vec![aq]);
        // While imported: -EBUSY for a good quantum; a bad one?
        assert_eq!(set(a, &r, aq), -EBUSY);
        // SAFETY: a live arena; an allocation of it.
        assert_eq!(unsafe { vmspace_arena_free(a, x, aq) }, 0);
        assert_eq!(r.lock().unwrap().releases.len(), 1);
        assert_eq!(sizes(a).imported, 0);
        // After the imports went back: set again, larger.
        assert_eq!(set(a, &r, aq * 4), 0, "aq {aq}: after everything went back");
        let x = alloc(a, aq).unwrap();
        assert_eq!(*r.lock().unwrap().imports.last().unwrap(), aq * 4);
        check(a);
        // SAFETY: as above.
        assert_eq!(unsafe { vmspace_arena_free(a, x, aq) }, 0);
        let c = counters(a);
        assert_eq!((c.imports, c.exports), (2, 2));
        check(a);
        // SAFETY: a live arena, used by nobody else.
        assert_eq!(unsafe { vmspace_arena_destroy(a) }, 0);
    }
}

/// Quantum 2^63 (a power of two at least any arena quantum) is accepted:
/// every import asks for 2^63 bytes. An allocation must then either work
/// or fail with an errno; nothing may panic, `check` holds, and the
/// import function's ranges go back.
#[test]
fn quantum_two_to_the_63() {
    let r = rec();
    r.lock().unwrap().fixed = Some(0);
    let a = arena(4096, null_mut());
    assert_eq!(set(a, &r, 1 << 63), 0);
    let x = alloc(a, 4096);
    let imports = r.lock().unwrap().imports.clone();
    assert_eq!(imports, vec![1usize << 63], "{x:?}");
    check(a);
    if let Ok(x) = x {
        assert_eq!(sizes(a).imported, 1 << 63);
        // SAFETY: an allocation of it.
        assert_eq!(unsafe { vmspace_arena_free(a, x, 4096) }, 0);
        assert_eq!(r.lock().unwrap().releases, vec![(0, 1usize << 63)]);
    }
    // A request whose import would pass 2^64: an errno, not a panic.
    let mut y = 0;
    // SAFETY: a live arena.
    let e =
        unsafe { vmspace_arena_xalloc(a, 4096, 0, 4096, 0, 0, 0, 0, VMSPACE_INSTANTFIT, &mut y) };
    let _ = e;
    // SAFETY: as above.
    let e2 = unsafe {
        vmspace_arena_xalloc(a, 1 << 63, 0, 4096, 0, 0, 0, 0, VMSPACE_INSTANTFIT, &mut y)
    };
    assert!(e2 < 0, "an import of more than 2^64 cannot succeed: {e2}");
    check(a);
    // An import at 2^63 of 2^63 bytes ends at 2^64: unusable, given back.
    r.lock().unwrap().fixed = Some(1 << 63);
    let before = r.lock().unwrap().releases.len();
    let z = alloc(a, 4096);
    if z.is_err() {
        assert_eq!(r.lock().unwrap().releases.len(), before + 1, "{z:?}: the range went back");
    }
    check(a);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_destroy(a) }, 0);
}

#[test]
fn child_arenas_and_set_import() {
    let r = rec();
    let parent = arena(4096, null_mut());
    assert_eq!(set(parent, &r, 1 << 16), 0);
    let child = arena(4096, parent);
    // A child importing from its parent: -EBUSY for a good quantum, and
    // for a bad one? (EINVAL is checked first: either is an error.)
    assert_eq!(set(child, &r, 1 << 12), -EBUSY);
    let e = set(child, &r, 1 << 11);
    assert!(e == -EINVAL || e == -EBUSY, "{e}");
    let x = alloc(child, 4096).unwrap();
    check(child);
    check(parent);
    // The parent holds imports now: -EBUSY.
    assert_eq!(set(parent, &r, 1 << 16), -EBUSY);
    // SAFETY: an allocation of it.
    assert_eq!(unsafe { vmspace_arena_free(child, x, 4096) }, 0);
    assert_eq!(sizes(child).imported, 0);
    assert_eq!(sizes(parent).imported, 0);
    // A child with a larger quantum than its parent.
    let big = arena(1 << 14, parent);
    let y = alloc(big, 1 << 14).unwrap();
    assert_eq!(y % (1 << 14), 0);
    // SAFETY: as above.
    assert_eq!(unsafe { vmspace_arena_free(big, y, 1 << 14) }, 0);
    check(big);
    check(parent);
    // SAFETY: live arenas, children first.
    unsafe {
        assert_eq!(vmspace_arena_destroy(big), 0);
        assert_eq!(vmspace_arena_destroy(child), 0);
        assert_eq!(vmspace_arena_destroy(parent), 0);
    }
}

/// A NULL import "stops importing": with quantum 0 it must be accepted;
/// with a nonsense quantum (which no import will use) the header is
/// silent; note what happens.
#[test]
fn null_import_stops_importing() {
    let r = rec();
    let a = arena(4096, null_mut());
    assert_eq!(set(a, &r, 0), 0);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_import(a, None, None, null_mut(), 0) }, 0);
    assert_eq!(alloc(a, 4096), Err(-12));
    assert!(r.lock().unwrap().imports.is_empty());
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_destroy(a) }, 0);
}

mod vmem {
    use super::*;
    use vmspace_capi_user::vmspace_vmem_api::{
        vmem_alloc, vmem_create, vmem_destroy, vmem_free, vmem_set_error_hook, vmem_set_import,
    };

    static HOOKED: Mutex<Vec<(usize, usize, c_int)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn hook(
        _: *mut c_void,
        _: *mut vmem_t,
        _: *const core::ffi::c_char,
        addr: usize,
        size: usize,
        error: c_int,
    ) {
        HOOKED.lock().unwrap().push((addr, size, error));
    }

    unsafe extern "C" fn vimport(
        arg: *mut c_void,
        size: usize,
        _f: c_int,
        addrp: *mut usize,
    ) -> c_int {
        // SAFETY: as the native one.
        unsafe { import(arg, size, 0, addrp) }
    }

    unsafe extern "C" fn vrelease(arg: *mut c_void, addr: usize, size: usize) {
        // SAFETY: as the native one.
        unsafe { release(arg, addr, size) }
    }

    /// vmem.h:91-94: a quantum below the arena's, or not a power of two:
    /// "the error hook's EINVAL and nothing changes".
    #[test]
    fn vmem_set_import_quantum_edges() {
        let r = rec();
        let arg = &*r as *const Mutex<Rec> as *mut c_void;
        // SAFETY: a NUL-terminated name.
        let vm = unsafe { vmem_create(c"r48".as_ptr(), 0, 0, 4096, 0, 0) };
        assert!(!vm.is_null());
        // SAFETY: a live arena, a hook of the declared type.
        unsafe { vmem_set_error_hook(vm, Some(hook), null_mut()) };
        for bad in [2048usize, 1, 3, 4097, 12288, usize::MAX] {
            HOOKED.lock().unwrap().clear();
            // SAFETY: a live arena; functions of the declared types.
            unsafe { vmem_set_import(vm, Some(vimport), Some(vrelease), arg, bad) };
            let h = HOOKED.lock().unwrap().clone();
            assert_eq!(h.len(), 1, "q {bad}: {h:?}");
            assert_eq!(h[0].2, EINVAL, "q {bad}: {h:?}");
            let mut a = 0;
            // SAFETY: a live arena.
            let e = unsafe { vmem_alloc(vm, 4096, M_NOWAIT, &mut a) };
            assert_ne!(e, 0, "q {bad}: nothing changes, yet an import happened");
        }
        assert!(r.lock().unwrap().imports.is_empty());
        // SAFETY: as above.
        unsafe { vmem_set_import(vm, Some(vimport), Some(vrelease), arg, 1 << 20) };
        let mut a = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { vmem_alloc(vm, 4096, M_NOWAIT, &mut a) }, 0);
        assert_eq!(r.lock().unwrap().imports, vec![1 << 20]);
        // SAFETY: as above.
        unsafe { vmem_free(vm, a, 4096) };
        // SAFETY: a live arena, nothing allocated.
        unsafe { vmem_destroy(vm) };
    }
}
