//! Round 29 outside review: `vmem_add` of a span touching an added span
//! (`vmspace/vmem.h`: "A span touching an added span of an arena without a
//! release function merges with it ...; otherwise a span of its own. No
//! span ends at 2^64 (EINVAL)"), its counters, its fault injection, and
//! its neighbours: imported spans, a third span it overlaps, size 0.

use core::ffi::{c_int, c_void};

use vmspace_capi::ctypes::{
    vmem_addr_t as Addr, vmem_release_t as ReleaseFn, vmem_size_t as Sz, vmem_t as Vmem,
    vmspace_counters as Counters, vmspace_segment as Segment, M_BESTFIT, M_NEXTFIT, M_NOWAIT,
    VMSPACE_SEG_IMPORTED as SEG_IMPORTED, VMSPACE_SEG_SPAN as SEG_SPAN,
};
use vmspace_capi_ctest as _;
// The native calls take the vmem arena cast to a `vmspace_arena_t *`
// (vmem.h: "A vmem_t * is also a vmspace_arena_t *").
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_check, vmspace_arena_counters, vmspace_arena_set_mtbf, vmspace_arena_walk,
};
use vmspace_capi_user::vmspace_vmem_api::{
    vmem_add, vmem_alloc, vmem_create, vmem_destroy, vmem_set_import, vmem_xalloc, vmem_xfree,
};

const EINVAL: c_int = 22;
const EEXIST: c_int = 17;
const EAGAIN: c_int = 11;
const Q: usize = 0x1000;
const B: usize = 0x10_0000;

unsafe extern "C" fn collect(arg: *mut c_void, seg: *const Segment) -> c_int {
    // SAFETY: `arg` is the `Vec` `spans` passed, `seg` a valid segment for
    // the call (the walk's contract).
    unsafe {
        let v = &mut *arg.cast::<Vec<(Addr, Sz, bool)>>();
        v.push(((*seg).start, (*seg).size, (*seg).flags & SEG_IMPORTED != 0));
    }
    0
}

/// The arena's spans: (start, size, imported).
fn spans(vm: *mut Vmem) -> Vec<(Addr, Sz, bool)> {
    let mut v: Vec<(Addr, Sz, bool)> = Vec::new();
    // SAFETY: a live arena; `collect` takes `v` as its argument.
    let rc = unsafe {
        vmspace_arena_walk(vm.cast(), SEG_SPAN, Some(collect), (&mut v as *mut Vec<_>).cast())
    };
    assert_eq!(rc, 0);
    v
}

fn counters(vm: *mut Vmem) -> Counters {
    let mut c = Counters::default();
    // SAFETY: a live arena; `c` is writable.
    assert_eq!(unsafe { vmspace_arena_counters(vm.cast(), &mut c) }, 0);
    c
}

fn check(vm: *mut Vmem) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_check(vm.cast()) }, 0, "arena check");
}

fn create(base: Addr, size: Sz) -> *mut Vmem {
    // SAFETY: a static name; plain arguments.
    let vm = unsafe { vmem_create(c"r29".as_ptr(), base, size, Q, 0, M_BESTFIT) };
    assert!(!vm.is_null());
    vm
}

fn add(vm: *mut Vmem, addr: Addr, size: Sz) -> c_int {
    // SAFETY: a live arena.
    unsafe { vmem_add(vm, addr, size, M_NOWAIT) }
}

/// The whole of `[lo, lo + size)` allocated at once (it straddles seams).
fn take_all(vm: *mut Vmem, lo: Addr, size: Sz) -> bool {
    let mut at = 0;
    // SAFETY: a live arena; `at` is writable.
    let rc = unsafe { vmem_xalloc(vm, size, 0, 0, 0, lo, lo + size - 1, M_NOWAIT, &mut at) };
    if rc == 0 {
        // SAFETY: just allocated.
        unsafe { vmem_xfree(vm, at, size) };
    }
    rc == 0 && at == lo
}

#[test]
fn touching_spans_grow_up_down_and_bridge() {
    let vm = create(B, 16 * Q);
    assert_eq!(add(vm, B + 16 * Q, 16 * Q), 0);
    assert_eq!(spans(vm), vec![(B, 32 * Q, false)], "grown up");
    assert_eq!(add(vm, B - 16 * Q, 16 * Q), 0);
    assert_eq!(spans(vm), vec![(B - 16 * Q, 48 * Q, false)], "grown down");
    assert_eq!(add(vm, B + 48 * Q, 16 * Q), 0);
    assert_eq!(spans(vm).len(), 2, "a gap: a span of its own");
    assert_eq!(add(vm, B + 32 * Q, 16 * Q), 0);
    assert_eq!(spans(vm), vec![(B - 16 * Q, 80 * Q, false)], "bridged");
    check(vm);
    assert!(take_all(vm, B - 16 * Q, 80 * Q), "one allocation across every seam");
    assert_eq!(counters(vm).failures, 0);
    check(vm);
    // SAFETY: ours, nothing live.
    unsafe { vmem_destroy(vm) };
}

#[test]
fn touching_one_span_and_overlapping_a_third_fails_once() {
    let vm = create(B, 16 * Q);
    assert_eq!(add(vm, B + 32 * Q, 16 * Q), 0);
    let before = (spans(vm), counters(vm));
    // Touches the first at its end, overlaps the second.
    assert_eq!(add(vm, B + 16 * Q, 24 * Q), EEXIST);
    // Touches the second at its start, overlaps the first.
    assert_eq!(add(vm, B + 8 * Q, 24 * Q), EEXIST);
    // Touches both, overlapping the second.
    assert_eq!(add(vm, B + 16 * Q, 17 * Q), EEXIST);
    let after = (spans(vm), counters(vm));
    assert_eq!(after.0, before.0, "spans unchanged");
    assert_eq!(after.1.failures, before.1.failures + 3, "one failure a call");
    check(vm);
    // SAFETY: ours.
    unsafe { vmem_destroy(vm) };
}

#[test]
fn size_zero_and_wraparound_touching_spans() {
    let top = usize::MAX - (Q - 1); // the last page's start
    let vm = create(top - 16 * Q, 8 * Q);
    let c0 = counters(vm);
    assert_eq!(add(vm, top - 8 * Q, 0), EINVAL, "size 0 at the end of a span");
    assert_eq!(add(vm, top - 16 * Q, 0), EINVAL, "size 0 at the start of a span");
    // Ends exactly at 2^64: "No span ends at 2^64 (EINVAL)".
    assert_eq!(add(vm, top - 8 * Q, 8 * Q + Q), EINVAL, "ends at 2^64");
    assert_eq!(add(vm, top - 8 * Q, 16 * Q), EINVAL, "wraps");
    let c1 = counters(vm);
    assert_eq!(c1.failures, c0.failures + 4, "one failure a call");
    assert_eq!(spans(vm), vec![(top - 16 * Q, 8 * Q, false)]);
    // Just below the top: fine, and merged.
    assert_eq!(add(vm, top - 8 * Q, 8 * Q), 0);
    assert_eq!(spans(vm), vec![(top - 16 * Q, 16 * Q, false)]);
    check(vm);
    // SAFETY: ours.
    unsafe { vmem_destroy(vm) };
}

#[test]
fn injected_fault_on_a_touching_add_counts_once() {
    let vm = create(B, 16 * Q);
    let c0 = counters(vm);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_mtbf(vm.cast(), 7, 1) }, 0);
    assert_eq!(add(vm, B + 16 * Q, 16 * Q), EAGAIN, "touching");
    let c1 = counters(vm);
    assert_eq!(add(vm, B + 64 * Q, 16 * Q), EAGAIN, "apart");
    let c2 = counters(vm);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_mtbf(vm.cast(), 0, 0) }, 0);
    assert_eq!((c1.failures - c0.failures, c1.injected - c0.injected), (1, 1), "touching");
    assert_eq!((c2.failures - c1.failures, c2.injected - c1.injected), (1, 1), "apart");
    assert_eq!(spans(vm), vec![(B, 16 * Q, false)]);
    check(vm);
    // SAFETY: ours.
    unsafe { vmem_destroy(vm) };
}

static mut NEXT: usize = 0;

unsafe extern "C" fn imp(_arg: *mut c_void, size: Sz, _flags: c_int, addrp: *mut Addr) -> c_int {
    // SAFETY: called under the arena lock of the one arena per test that
    // uses it, tests using it serialized by `IMPORT`; `addrp` writable.
    unsafe {
        let at = NEXT;
        NEXT += size;
        *addrp = at;
    }
    0
}

unsafe extern "C" fn rel(_arg: *mut c_void, _addr: Addr, _size: Sz) {}

static IMPORT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// With a release function every add is a span of its own; without one,
/// an add touching only an imported span is a span of its own too, and
/// one between an imported span and an added one grows the added one.
#[test]
fn imported_spans_and_release_functions() {
    let _one = IMPORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for release in [true, false] {
        let vm = create(0, 0);
        // SAFETY: plain stores under `IMPORT`.
        unsafe { NEXT = 0x8000_0000 };
        let r: ReleaseFn = if release { Some(rel) } else { None };
        // SAFETY: a live arena; functions of the declared types.
        unsafe { vmem_set_import(vm, Some(imp), r, core::ptr::null_mut(), 16 * Q) };
        let mut a = 0;
        // SAFETY: a live arena, `a` writable.
        assert_eq!(unsafe { vmem_alloc(vm, 8 * Q, M_NOWAIT, &mut a) }, 0);
        assert_eq!(spans(vm), vec![(0x8000_0000, 16 * Q, true)], "release {release}");
        let imported_end = 0x8000_0000 + 16 * Q;
        assert_eq!(add(vm, imported_end + 16 * Q, 16 * Q), 0);
        assert_eq!(add(vm, B, 16 * Q), 0);
        assert_eq!(add(vm, B + 16 * Q, 16 * Q), 0, "touching an added span");
        let want_b = if release { 2 } else { 1 };
        let s = spans(vm);
        assert_eq!(s.iter().filter(|x| x.0 >= B && x.0 < 0x8000_0000).count(), want_b, "{s:x?}");
        // Between the imported span and the added one above it.
        assert_eq!(add(vm, imported_end, 16 * Q), 0, "release {release}");
        let s = spans(vm);
        let top = s.iter().filter(|x| x.0 >= imported_end).collect::<Vec<_>>();
        if release {
            assert_eq!(top.len(), 2, "{s:x?}");
        } else {
            assert_eq!(top, vec![&(imported_end, 32 * Q, false)], "{s:x?}");
            assert!(take_all(vm, imported_end, 32 * Q));
        }
        assert!(s.contains(&(0x8000_0000, 16 * Q, true)), "the import untouched: {s:x?}");
        check(vm);
        let c = counters(vm);
        assert_eq!(c.failures, 0, "release {release}");
        // SAFETY: live; freed with its size.
        unsafe { vmem_xfree(vm, a, 8 * Q) };
        check(vm);
        // SAFETY: ours, nothing live.
        unsafe { vmem_destroy(vm) };
    }
}

/// A waiting `vmem_alloc` larger than every span wakes when a touching
/// `vmem_add` grows a span enough (the merge is the only way it fits).
#[test]
fn a_waiter_wakes_when_a_touching_add_makes_room() {
    struct Ptr(*mut Vmem);
    // SAFETY: the arena is thread-safe (vmspace.h); the pointer is only
    // passed to its calls.
    unsafe impl Send for Ptr {}
    let vm = create(B, 16 * Q);
    let (tx, rx) = std::sync::mpsc::channel();
    let p = Ptr(vm);
    let waiter = std::thread::spawn(move || {
        let p = p;
        let mut at = 0;
        // SAFETY: a live arena (destroyed only after this thread ends).
        let rc = unsafe { vmem_alloc(p.0, 24 * Q, M_BESTFIT, &mut at) };
        tx.send((rc, at)).unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(add(vm, B + 16 * Q, 16 * Q), 0);
    let got = rx.recv_timeout(std::time::Duration::from_secs(20));
    if got.is_err() {
        // Unblock the waiter before failing: room it can take at once.
        add(vm, B + 64 * Q, 32 * Q);
    }
    waiter.join().unwrap();
    let (rc, at) = got.expect("the waiter woke within 20 s");
    assert_eq!((rc, at), (0, B), "the merged span serves it");
    // SAFETY: allocated above.
    unsafe { vmem_xfree(vm, at, 24 * Q) };
    check(vm);
    // SAFETY: ours.
    unsafe { vmem_destroy(vm) };
}

/// Next fit across spans grown down and bridged: the rotor keeps walking
/// every free segment, the arena stays consistent, and every quantum is
/// handed out once.
#[test]
fn next_fit_over_grown_and_bridged_spans() {
    // SAFETY: a static name; plain arguments.
    let vm = unsafe { vmem_create(c"r29nf".as_ptr(), B, 8 * Q, Q, 0, M_NEXTFIT) };
    assert!(!vm.is_null());
    let mut got = Vec::new();
    let take = |n: usize, got: &mut Vec<Addr>| {
        for _ in 0..n {
            let mut a = 0;
            // SAFETY: a live arena; `a` writable.
            assert_eq!(unsafe { vmem_alloc(vm, Q, M_NOWAIT | M_NEXTFIT, &mut a) }, 0);
            got.push(a);
        }
    };
    take(4, &mut got);
    assert_eq!(add(vm, B - 8 * Q, 8 * Q), 0, "grown down");
    take(4, &mut got);
    assert_eq!(add(vm, B + 16 * Q, 8 * Q), 0, "apart");
    assert_eq!(add(vm, B + 8 * Q, 8 * Q), 0, "bridge");
    check(vm);
    take(24, &mut got);
    let mut a = 0;
    // SAFETY: a live arena; `a` writable.
    assert_ne!(unsafe { vmem_alloc(vm, Q, M_NOWAIT | M_NEXTFIT, &mut a) }, 0, "full");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 32, "every quantum once");
    assert_eq!((sorted[0], sorted[31]), (B - 8 * Q, B + 23 * Q));
    check(vm);
    for a in got {
        // SAFETY: allocated above.
        unsafe { vmem_xfree(vm, a, Q) };
    }
    check(vm);
    assert_eq!(spans(vm), vec![(B - 8 * Q, 32 * Q, false)]);
    // SAFETY: ours.
    unsafe { vmem_destroy(vm) };
}
