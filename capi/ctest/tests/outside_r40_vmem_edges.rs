//! Outside review, round 40 (continued from `outside_r40_vmem.rs`): cached
//! objects at both ends of the address space with vmem(9)'s size rounding,
//! and the exact sizes an import function is asked for.
//!
//! Every test here passed when written.

mod common;

use common::{counters, valloc, vcheck};
use core::ffi::{c_int, c_void};
use std::sync::Mutex;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_vmem_api::{
    vmem_create, vmem_destroy, vmem_free, vmem_set_import, vmem_xalloc,
};

const Q: usize = 4096;

static HOOKED: Mutex<Vec<(usize, usize, c_int)>> = Mutex::new(Vec::new());

unsafe extern "C" fn error_hook(
    _: *mut c_void,
    _: *mut vmem_t,
    _: *const core::ffi::c_char,
    addr: usize,
    size: usize,
    error: c_int,
) {
    HOOKED.lock().unwrap().push((addr, size, error));
}

/// Holds: cached objects of every class at address 0 and at the top of
/// the address space (a span ending one quantum below 2^64), with sizes
/// vmem(9) rounds: `vmem_alloc(k*Q - 5)` is freed by any size that rounds
/// to k quanta and refused (error hook, arena unchanged) with one that
/// rounds to fewer (README vmem table, bad `vmem_free`: "a size that
/// rounds to the same quanta frees"; vmem.h:99-101).
#[test]
fn cached_objects_at_zero_and_at_the_top_with_rounded_sizes() {
    const K: usize = 8;
    for base in [0usize, usize::MAX - (64 << 20) - Q + 1] {
        // SAFETY: a NUL-terminated name.
        let vm = unsafe { vmem_create(c"r40-ends".as_ptr(), base, 64 << 20, Q, K * Q, 0) };
        assert!(!vm.is_null(), "base {base:#x}");
        // SAFETY: a live arena; a hook of the declared type.
        unsafe {
            vmspace_capi_user::vmspace_vmem_api::vmem_set_error_hook(
                vm,
                Some(error_hook),
                core::ptr::null_mut(),
            )
        };
        let mut got = Vec::new();
        for k in 1..=K {
            for _ in 0..70 {
                got.push((valloc(vm, k * Q - 5, M_NOWAIT).unwrap(), k));
            }
        }
        if base == 0 {
            assert!(got.iter().any(|&(a, _)| a == 0), "address 0 is handed out");
        }
        let mut all: Vec<_> = got.iter().map(|&(a, k)| (a, a + k * Q - 1)).collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0].1 < w[1].0), "overlap");
        let before = counters(vm.cast());
        for &(a, k) in &got {
            if k > 1 {
                // Rounds to k - 1 quanta: refused, arena unchanged.
                // SAFETY: a live arena.
                unsafe { vmem_free(vm, a, (k - 1) * Q) };
            }
        }
        let bad = got.iter().filter(|&&(_, k)| k > 1).count();
        assert_eq!(counters(vm.cast()).bad_frees - before.bad_frees, bad as u64);
        vcheck(vm);
        for &(a, k) in &got {
            // SAFETY: a live arena; a live allocation, size rounding to k quanta.
            unsafe { vmem_free(vm, a, (k - 1) * Q + 1) };
        }
        assert_eq!(counters(vm.cast()).bad_frees - before.bad_frees, bad as u64, "all freed");
        vcheck(vm);
        // SAFETY: a live arena.
        unsafe { vmem_destroy(vm) };
    }
    let h = HOOKED.lock().unwrap();
    assert!(h.iter().all(|&(_, _, e)| e == 90), "EMSGSIZE for a wrong size: {:?}", &h[..2]);
}

/// The next address, the imports (address, size) and the releases.
type Asked = (usize, Vec<(usize, usize)>, Vec<(usize, usize)>);

static ASKED: Mutex<Asked> = Mutex::new((3 << 40, Vec::new(), Vec::new()));

unsafe extern "C" fn asked_import(
    _: *mut c_void,
    size: usize,
    _: c_int,
    addrp: *mut usize,
) -> c_int {
    let mut b = ASKED.lock().unwrap();
    // Aligned to the import quantum only (at most 4 quanta here), and
    // deliberately one import quantum past a large power of two.
    let a = b.0 + 4 * Q;
    b.0 += 1 << 30;
    b.1.push((a, size));
    // SAFETY: the arena's out pointer.
    unsafe { addrp.write(a) };
    0
}

unsafe extern "C" fn asked_release(_: *mut c_void, addr: usize, size: usize) {
    ASKED.lock().unwrap().2.push((addr, size));
}

/// Holds: what an import function is asked for (vmspace.h:238-249: "for a
/// request that needs an alignment above the import quantum the arena
/// asks for that much more, less a quantum ... That alignment is `align`,
/// or for `nocross` the size (with its phase) rounded up to a power of
/// two"), checked exactly for vmem_xalloc with align, phase and nocross,
/// import quantum 4Q; each allocation meets its constraints; freeing it
/// releases exactly the span imported for it.
#[test]
fn import_sizes_for_aligned_and_nocross_requests_are_exact() {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r40-asked".as_ptr(), 0, 0, Q, 0, 0) };
    assert!(!vm.is_null());
    let iq = 4 * Q;
    // SAFETY: a live arena; functions of the declared types.
    unsafe {
        vmem_set_import(vm, Some(asked_import), Some(asked_release), core::ptr::null_mut(), iq)
    };
    let up = |x: usize| x.div_ceil(iq) * iq;
    // (size, align, phase, nocross, expected import size)
    let cases = [
        (Q, 0, 0, 0, iq),
        (Q, 16 * Q, 0, 0, iq + 16 * Q - iq),
        (5 * Q, 16 * Q, 3 * Q, 0, up(8 * Q) + 16 * Q - iq),
        (3 * Q, 0, 0, 16 * Q, iq),
        (6 * Q, 0, 0, 16 * Q, up(6 * Q) + 8 * Q - iq),
        (9 * Q, 0, 0, 16 * Q, up(9 * Q) + 16 * Q - iq),
        (2 * Q, 32 * Q, Q, 64 * Q, up(3 * Q) + 32 * Q - iq),
    ];
    for (i, &(size, align, phase, nocross, want)) in cases.iter().enumerate() {
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        let r = unsafe {
            vmem_xalloc(vm, size, align, phase, nocross, 0, VMEM_ADDR_MAX, M_NOWAIT, &mut a)
        };
        assert_eq!(r, 0, "case {i}");
        let (span, asked) = *ASKED.lock().unwrap().1.last().unwrap();
        assert_eq!(asked, want, "case {i}: import size");
        let al = align.max(Q);
        assert_eq!(a % al, phase, "case {i}: phase");
        assert!(nocross == 0 || a / nocross == (a + size - 1) / nocross, "case {i}: nocross");
        assert!(a >= span && a + size <= span + asked, "case {i}: inside its import");
        // SAFETY: a live arena; the allocation just made.
        unsafe { vmspace_capi_user::vmspace_vmem_api::vmem_xfree(vm, a, size) };
        let released = *ASKED.lock().unwrap().2.last().unwrap_or(&(0, 0));
        assert_eq!(released, (span, asked), "case {i}: the span goes back whole");
    }
    vcheck(vm);
    // SAFETY: a live arena.
    unsafe { vmem_destroy(vm) };
}
