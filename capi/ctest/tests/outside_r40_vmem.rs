//! Outside review, round 40: the vmem(9) API against FreeBSD's semantics
//! where the header and README claim them.
//!
//! Contracts (quoted):
//! - README.md (vmem table, `vmem_destroy`): "live allocations otherwise go
//!   with the arena, imported spans are released, as in FreeBSD".
//! - capi/include/vmspace/vmem.h:90-92 (`vmem_set_import`): "importfn is
//!   called with M_NOWAIT | M_FIRSTFIT and the arena locked".
//! - vmem.h:80-82 (`vmem_init`): "NULL also when `vm` holds a live arena
//!   (initialized, not destroyed): destroy it first"; README "use after
//!   `vmem_destroy`": "`EBADF` ... always for `vmem_init` storage".
//! - vmem.h:106-107 (`vmem_xalloc`): "minaddr: the lowest start; maxaddr:
//!   the highest address the allocation may cover (inclusive), as
//!   vmem(9)"; README: "`ENOMEM` (no space, or constraints that can never
//!   be met)".
//!
//! Every test here passed when written unless its comment says DEFECT.

mod common;

use core::ffi::{c_int, c_void};
use std::sync::Mutex;

use common::{counters, sizes, valloc, vcheck, Rng};
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_vmem_api::{
    vmem_alloc, vmem_create, vmem_destroy, vmem_free, vmem_init, vmem_set_import, vmem_xalloc,
};

const Q: usize = 4096;
const ENOMEM: c_int = 12;

/// What the import and release functions of `destroy_...` saw.
struct Book {
    next: usize,
    imports: Vec<(usize, usize, c_int)>,
    releases: Vec<(usize, usize)>,
}

static BOOK: Mutex<Book> =
    Mutex::new(Book { next: 1 << 40, imports: Vec::new(), releases: vec![] });

unsafe extern "C" fn book_import(
    _: *mut c_void,
    size: usize,
    flags: c_int,
    addrp: *mut usize,
) -> c_int {
    let mut b = BOOK.lock().unwrap();
    let a = b.next;
    // Leave a gap of one quantum so no two imports touch.
    b.next += size + Q;
    b.imports.push((a, size, flags));
    // SAFETY: the arena's out pointer.
    unsafe { addrp.write(a) };
    0
}

unsafe extern "C" fn book_release(_: *mut c_void, addr: usize, size: usize) {
    BOOK.lock().unwrap().releases.push((addr, size));
}

/// Holds: an arena importing everything through the caller's functions,
/// destroyed with cached and uncached allocations live (and cached objects
/// in magazines and slabs): every imported span is released exactly once,
/// with the address and size it was imported with; and every import was
/// called with M_NOWAIT | M_FIRSTFIT (vmem.h:90-92).
#[test]
fn destroy_with_live_allocations_releases_every_import_once() {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r40-book".as_ptr(), 0, 0, Q, 4 * Q, 0) };
    assert!(!vm.is_null());
    // SAFETY: a live arena; functions of the declared types.
    unsafe { vmem_set_import(vm, Some(book_import), Some(book_release), core::ptr::null_mut(), 0) };
    let mut rng = Rng(0x40_0001);
    let mut live = Vec::new();
    for i in 0..600 {
        let size = Q * (1 + rng.below(6) as usize);
        let a = valloc(vm, size, M_NOWAIT).unwrap_or_else(|e| panic!("alloc {i}: {e}"));
        live.push((a, size));
        if rng.below(3) == 0 {
            let j = rng.below(live.len() as u64) as usize;
            let (a, s) = live.swap_remove(j);
            // SAFETY: a live arena; freeing a live allocation.
            unsafe { vmem_free(vm, a, s) };
        }
    }
    vcheck(vm);
    let c = counters(vm.cast());
    assert_eq!(c.bad_frees, 0);
    assert!(c.imports > 0);
    // SAFETY: a live arena, not used after.
    unsafe { vmem_destroy(vm) };
    let b = BOOK.lock().unwrap();
    let want = M_NOWAIT | M_FIRSTFIT;
    assert!(b.imports.iter().all(|&(_, _, f)| f == want), "flags: {:?}", &b.imports[..3]);
    let mut imported: Vec<_> = b.imports.iter().map(|&(a, s, _)| (a, s)).collect();
    let mut released = b.releases.clone();
    imported.sort_unstable();
    released.sort_unstable();
    assert_eq!(imported.len() as u64, c.imports, "imports counted");
    assert_eq!(released, imported, "each import released exactly once, as imported");
}

/// Holds: `vmem_init` over storage of a live arena is NULL and changes
/// nothing; after `vmem_destroy` the same storage takes a new arena, with
/// fresh counters, that knows nothing of the old one's allocations.
#[test]
fn vmem_init_reuses_storage_only_after_destroy() {
    // SAFETY: vmem_t is plain bytes; all-zero is valid (and not a live arena).
    let mut storage: Box<vmem_t> = Box::new(unsafe { core::mem::zeroed() });
    let vm: *mut vmem_t = &mut *storage;
    // SAFETY: storage of sizeof(vmem_t), kept in place; a NUL-terminated name.
    let got = unsafe { vmem_init(vm, c"r40-a".as_ptr(), 1 << 30, 1 << 20, Q, 4 * Q, 0) };
    assert_eq!(got, vm);
    let a = valloc(vm, Q, M_NOWAIT).unwrap();
    let b = valloc(vm, 6 * Q, M_NOWAIT).unwrap();
    let before = sizes(vm.cast());
    // SAFETY: as above: a live arena there, so NULL.
    let again = unsafe { vmem_init(vm, c"r40-b".as_ptr(), 1 << 32, 1 << 20, Q, 0, 0) };
    assert!(again.is_null(), "vmem_init over a live arena");
    assert_eq!(sizes(vm.cast()).allocated, before.allocated, "live arena unchanged");
    assert_eq!(valloc(vm, Q, M_NOWAIT).map(|x| x != a), Ok(true));
    vcheck(vm);
    // SAFETY: a live arena.
    unsafe { vmem_destroy(vm) };
    // SAFETY: destroyed storage: a new arena may be made in it.
    let got = unsafe { vmem_init(vm, c"r40-b".as_ptr(), 1 << 32, 1 << 20, Q, 2 * Q, 0) };
    assert_eq!(got, vm, "vmem_init after destroy");
    let c = counters(vm.cast());
    assert_eq!((c.allocs, c.frees, c.bad_frees, c.qcache_hits, c.qcache_misses), (0, 0, 0, 0, 0));
    let s = sizes(vm.cast());
    assert_eq!((s.allocated, s.total), (0, 1 << 20));
    // The old arena's allocations are not this one's: refused, counted.
    // SAFETY: a live arena.
    unsafe { vmem_free(vm, b, 6 * Q) };
    assert_eq!(counters(vm.cast()).bad_frees, 1);
    let x = valloc(vm, Q, M_NOWAIT).unwrap();
    assert!((1 << 32..(1 << 32) + (1 << 20)).contains(&x));
    vcheck(vm);
    // SAFETY: a live arena.
    unsafe { vmem_destroy(vm) };
    drop(storage);
}

unsafe extern "C" fn parent_import(
    arg: *mut c_void,
    size: usize,
    flags: c_int,
    addrp: *mut usize,
) -> c_int {
    // SAFETY: `arg` is the parent arena (set below), `addrp` the arena's.
    unsafe { vmem_alloc(arg.cast(), size, flags, addrp) }
}

unsafe extern "C" fn parent_release(arg: *mut c_void, addr: usize, size: usize) {
    // SAFETY: `arg` is the parent arena.
    unsafe { vmem_free(arg.cast(), addr, size) }
}

/// Holds: FreeBSD's idiom of a child importing through
/// `vmem_set_import(child, vmem_alloc, vmem_free, parent, q)` from a parent
/// whose quantum caches serve the import sizes: no bad free in either,
/// both check, and after the child is destroyed (with live allocations)
/// and the parent reclaimed, the parent holds nothing but slabs whose
/// objects sit in its per-CPU magazines.
#[test]
fn child_through_vmem_alloc_of_a_cached_parent() {
    // SAFETY: NUL-terminated names.
    let parent = unsafe { vmem_create(c"r40-parent".as_ptr(), 1 << 30, 1 << 24, Q, 8 * Q, 0) };
    // SAFETY: as above.
    let child = unsafe { vmem_create(c"r40-child".as_ptr(), 0, 0, Q, 2 * Q, 0) };
    assert!(!parent.is_null() && !child.is_null());
    // SAFETY: live arenas; functions of the declared types.
    unsafe { vmem_set_import(child, Some(parent_import), Some(parent_release), parent.cast(), 0) };
    let mut rng = Rng(0x40_0002);
    let mut live = Vec::new();
    for _ in 0..2000 {
        if live.len() < 300 && rng.below(3) != 0 {
            let size = Q * (1 + rng.below(3) as usize);
            live.push((valloc(child, size, M_NOWAIT).unwrap(), size));
        } else if !live.is_empty() {
            let (a, s) = live.swap_remove(rng.below(live.len() as u64) as usize);
            // SAFETY: a live arena; a live allocation.
            unsafe { vmem_free(child, a, s) };
        }
    }
    vcheck(child);
    vcheck(parent);
    let cc = counters(child.cast());
    assert_eq!(cc.bad_frees, 0);
    assert!(cc.imports > 0 && cc.exports > 0, "{cc:?}");
    // SAFETY: a live arena, not used after.
    unsafe { vmem_destroy(child) };
    vcheck(parent);
    let pc = counters(parent.cast());
    assert_eq!(pc.bad_frees, 0, "the child's releases are all good frees");
    // SAFETY: a live arena.
    unsafe { vmspace_capi_user::vmspace_native_api::vmspace_arena_reclaim(parent.cast()) };
    let ps = sizes(parent.cast());
    let slabs = counters(parent.cast()).qcache_slabs as usize;
    // Objects in magazines keep their slabs; nothing else is allocated.
    let slab_bytes: usize = (1..=8).map(|k| k * Q * 64).max().unwrap();
    assert!(ps.allocated <= slabs * slab_bytes, "{ps:?} slabs {slabs}");
    assert_eq!(ps.live as usize, slabs, "only slabs live: {ps:?}");
    // SAFETY: a live arena, not used after.
    unsafe { vmem_destroy(parent) };
}

/// Brute force: is there a start `s` with `[s, s + size)` inside a free
/// segment, `s >= min`, `s + size - 1 <= max`, `s % align == phase`, not
/// crossing a multiple of `nocross`?
#[allow(clippy::too_many_arguments)]
fn fits(
    free: &[(usize, usize)],
    size: usize,
    align: usize,
    phase: usize,
    nocross: usize,
    min: usize,
    max: usize,
) -> bool {
    free.iter().any(|&(b, e)| {
        let mut s = b;
        while s.checked_add(size).is_some_and(|end| end <= e) {
            let last = s + size - 1;
            let ok = s >= min
                && last <= max
                && s % align == phase
                && (nocross == 0 || s / nocross == last / nocross);
            if ok {
                return true;
            }
            s += 16;
        }
        false
    })
}

/// Holds (or DEFECT if it fails): `vmem_xalloc` with best and first fit
/// against a brute-force model over a span at the top of the address
/// space (quantum 16, 64 quanta, holes made by allocations): it succeeds
/// exactly when a placement exists, and what it gives meets every
/// constraint with `maxaddr` inclusive; else ENOMEM (or EINVAL for
/// arguments vmspace.h calls invalid).
#[test]
fn xalloc_matches_a_brute_force_model_at_the_top() {
    const QQ: usize = 16;
    let base = usize::MAX - 64 * QQ + 1 - QQ; // ends one quantum below 2^64
                                              // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r40-top".as_ptr(), base, 64 * QQ, QQ, 0, M_BESTFIT) };
    assert!(!vm.is_null());
    let end = base + 64 * QQ;
    let mut held = Vec::new();
    // Holes: allocate every third quantum pair.
    for i in (0..64).step_by(5) {
        let mut a = 0;
        let at = base + i * QQ;
        // SAFETY: a live arena; `a` writable.
        let r = unsafe { vmem_xalloc(vm, QQ, 0, 0, 0, at, at + QQ - 1, M_NOWAIT, &mut a) };
        assert_eq!((r, a), (0, at));
        held.push(a);
    }
    let mut rng = Rng(0x40_0003);
    let (mut placed, mut refused) = (0, 0);
    for step in 0..4000 {
        let free: Vec<(usize, usize)> = {
            let mut f = Vec::new();
            let mut s = base;
            for &h in held.iter().chain(core::iter::once(&end)) {
                if h > s {
                    f.push((s, h));
                }
                s = h.wrapping_add(QQ);
            }
            f
        };
        let size = QQ * (1 + rng.below(6) as usize);
        let align = [0, QQ, 2 * QQ, 4 * QQ, 8 * QQ][rng.below(5) as usize];
        let a_eff = align.max(QQ);
        let phase =
            if rng.below(2) == 0 { 0 } else { QQ * rng.below((a_eff / QQ) as u64) as usize };
        let nocross = [0, 4 * QQ, 8 * QQ, 16 * QQ][rng.below(4) as usize];
        let min = if rng.below(2) == 0 { 0 } else { base + QQ * rng.below(64) as usize };
        let max = match rng.below(3) {
            0 => usize::MAX,
            1 => end - 1,
            _ => base + QQ * rng.below(65) as usize + rng.below(2) as usize * (QQ - 1),
        };
        let flags = M_NOWAIT | if rng.below(2) == 0 { M_BESTFIT } else { M_FIRSTFIT };
        let want = fits(&free, size, a_eff, phase, nocross, min, max);
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        let r = unsafe { vmem_xalloc(vm, size, align, phase, nocross, min, max, flags, &mut a) };
        let what = format!(
            "step {step}: size {size:#x} align {align:#x} phase {phase:#x} nocross {nocross:#x} \
             min {min:#x} max {max:#x} flags {flags:#x}: {r} at {a:#x}"
        );
        if want {
            assert_eq!(r, 0, "a placement exists: {what}");
        } else {
            assert_eq!(r, ENOMEM, "no placement: {what}");
            refused += 1;
            continue;
        }
        placed += 1;
        let last = a + size - 1;
        assert!(a >= min && last <= max && a % a_eff == phase, "{what}");
        assert!(nocross == 0 || a / nocross == last / nocross, "{what}");
        assert!(free.iter().any(|&(b, e)| a >= b && a + size <= e), "{what}");
        // Free it again: the same holes every step.
        // SAFETY: a live arena; the allocation just made.
        unsafe { vmspace_capi_user::vmspace_vmem_api::vmem_xfree(vm, a, size) };
    }
    assert!(placed > 500 && refused > 500, "both outcomes: {placed} {refused}");
    vcheck(vm);
    assert_eq!(counters(vm.cast()).bad_frees, 0);
    // SAFETY: a live arena.
    unsafe { vmem_destroy(vm) };
}
