//! `vmspace_arena_add` against the model's spans, and calls given pointers
//! that are not arenas.

use core::ffi::c_int;
use core::ptr;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api as lib;

use crate::model::*;

/// The parent's adds go in slots from here, the child's from `CHILD_ADDS`
/// (apart from each other and from the parent's initial span and imports:
/// the header asks that no two arenas of a tree hold one range); the
/// parent's also at the top of the address space.
const PARENT_ADDS: usize = BASE + (1 << 30);
const CHILD_ADDS: usize = BASE + (1 << 31);

/// An add to arena `which`: a fresh span (or one over a span it has:
/// -EEXIST), a zero size or misaligned one or flags (-EINVAL), or one near
/// the top of the address space (-EOVERFLOW if its end is not
/// representable). Success adds just that span; a failure changes nothing.
pub fn add(w: &mut World, input: &mut Input, which: usize) {
    let q = w.q;
    let arena = w.arena(which);
    let slot = |input: &mut Input| {
        let base = if which == 0 { PARENT_ADDS } else { CHILD_ADDS };
        base + 64 * q * (input.byte() as usize % 64)
    };
    let small = |input: &mut Input| q * (1 + input.byte() as usize % 64);
    // The arena's spans: the model's, and for the child its imports too.
    let mut mine = w.books[which].added.clone();
    if which == 0 {
        mine.extend(w.source.out.borrow().iter().copied());
    } else {
        mine = spans(w.child);
    }
    let top = usize::MAX - 64 * q + 1;
    let (addr, size, flags, want) = match input.byte() % 8 {
        0..=2 => (slot(input), small(input), 0, 0),
        3 if !mine.is_empty() => {
            let (a, n) = mine[input.byte() as usize % mine.len()];
            let at = a + q * (input.byte() as usize % (n / q));
            (at, small(input), 0, EEXIST)
        }
        4 => (slot(input), 0, 0, EINVAL),
        5 if q > 1 => match input.byte() % 2 {
            0 => (slot(input) + q / 2, small(input), 0, EINVAL),
            _ => (slot(input), small(input) + q / 2, 0, EINVAL),
        },
        5 => (slot(input), small(input), 1 << (input.byte() % 31), EINVAL),
        6 if which == 0 => (top + q * (input.byte() as usize % 64), small(input), 0, 0),
        _ => {
            let addr = top + q * (input.byte() as usize % 64);
            (addr, usize::MAX - addr + 1 + q * (input.byte() as usize % 4), 0, EOVERFLOW)
        }
    };
    let want = match want {
        0 | EEXIST if addr.checked_add(size).is_none() => EOVERFLOW,
        0 if mine.iter().any(|&s| overlaps(s, (addr, size))) => EEXIST,
        want => want,
    };
    let before = snapshot(w);
    let total = sizes(arena).total;
    // SAFETY: a live arena.
    let e = unsafe { lib::vmspace_arena_add(arena, addr, size, flags) };
    let why = format!("add {addr:#x}+{size:#x} flags {flags:#x} to {which}");
    if e == 0 {
        assert_eq!(want, 0, "{why}: added");
        // SAFETY: a live arena.
        assert_eq!(unsafe { lib::vmspace_arena_contains(arena, addr, size) }, 1, "{why}");
        assert_eq!(sizes(arena).total, total + size, "{why}");
        w.books[which].added.push((addr, size));
        if which == 0 {
            w.source.added.set(w.source.added.get() + size);
        }
        return;
    }
    // Faults are injected into adds too; tags may run out for a good one,
    // or for one over a span it has (the header orders no errors: the
    // tags are reserved before the overlap is looked for).
    let no_tags = (want == 0 || want == EEXIST) && e == ENOSPC;
    let allowed = e == want || w.books[which].mtbf && e == EAGAIN || no_tags;
    assert!(allowed, "{why}: errno {e}, not {want}");
    assert!(before == snapshot(w), "{why}: a failure changed something");
}

/// An arena function given what is not an arena: zeroed storage, a
/// misaligned pointer, a copy of an arena's first word elsewhere, or a VM:
/// -EBADF, nothing written, nothing changed; and a VM function given an
/// arena: -EBADF too.
pub fn not_arenas(w: &mut World, input: &mut Input) {
    let mut words = [0u64; 16];
    let how = input.byte() % 4;
    let bad: *mut vmspace_arena_t = match how {
        0 => words.as_mut_ptr().cast(),
        1 => words.as_mut_ptr().cast::<u8>().wrapping_add(1 + input.byte() as usize % 7).cast(),
        2 => {
            if w.vm.is_null() {
                // SAFETY: a writable out pointer.
                assert_eq!(unsafe { lib::vmspace_vm_create(1 << 16, 0, 0, &mut w.vm) }, 0);
            }
            w.vm.cast()
        }
        _ => {
            // SAFETY: a live arena's first word, which is readable (the
            // magic word the header describes), read while nothing else
            // uses the arena.
            words[0] = unsafe { ptr::read(w.parent.cast::<u64>()) };
            words.as_mut_ptr().cast()
        }
    };
    let kept = words;
    let before = snapshot(w);
    let (q, mut addr, mut size) = (w.q, 0usize, 0usize);
    let h = vmspace_handle { addr: BASE, tag: 1, arena: 1 };
    let op = input.byte() % 22;
    // SAFETY: every pointer is readable for a word (the header's "checked"
    // case), the out-pointers are ours, the walk function is of its type.
    let e = unsafe {
        let mut s: vmspace_sizes = core::mem::zeroed();
        let mut c: vmspace_counters = core::mem::zeroed();
        let mut bins = [0u64; 4];
        match op {
            0 => lib::vmspace_arena_add(bad, PARENT_ADDS, q, 0),
            1 => lib::vmspace_arena_set_import(bad, None, None, ptr::null_mut(), 0),
            2 => lib::vmspace_arena_set_limit(bad, q),
            3 => lib::vmspace_arena_set_mtbf(bad, 1, 2),
            4 => lib::vmspace_arena_alloc(bad, q, 0, &mut addr),
            5 => lib::vmspace_arena_alloc_timed(bad, q, 0, 0, &mut addr),
            6 => lib::vmspace_arena_xalloc(bad, q, 0, 0, 0, 0, 0, 0, 0, &mut addr),
            7 => lib::vmspace_arena_free(bad, BASE, q),
            8 => lib::vmspace_arena_free_deferred(bad, BASE, q),
            9 => {
                let mut h = h;
                lib::vmspace_arena_alloc_handle(bad, q, 0, &mut h)
            }
            10 => lib::vmspace_arena_free_handle(bad, h, &mut size),
            11 => lib::vmspace_arena_free_handle_deferred(bad, h, &mut size),
            12 => lib::vmspace_arena_flushed(bad, &mut size),
            13 => lib::vmspace_arena_reclaim(bad),
            14 => lib::vmspace_arena_sizes(bad, &mut s),
            15 => lib::vmspace_arena_counters(bad, &mut c),
            16 => lib::vmspace_arena_histogram(bad, bins.as_mut_ptr(), 4),
            17 => lib::vmspace_arena_walk(bad, VMSPACE_SEG_ALL, Some(never), ptr::null_mut()),
            18 => lib::vmspace_arena_check(bad),
            19 => lib::vmspace_arena_contains(bad, BASE, q),
            20 => {
                assert!(lib::vmspace_arena_name(bad).is_null(), "name of a non-arena");
                assert_eq!(lib::vmspace_arena_quantum(bad), 0, "quantum of a non-arena");
                lib::vmspace_arena_destroy(bad)
            }
            _ => {
                // The other way round: an arena is not a VM.
                let mut info: vmspace_vm_info = core::mem::zeroed();
                assert_eq!(lib::vmspace_vm_info(w.child.cast(), &mut info), EBADF, "vm_info");
                lib::vmspace_vm_check(w.parent.cast())
            }
        }
    };
    assert_eq!(e, EBADF, "call {op} on a non-arena ({how})");
    assert_eq!((addr, size), (0, 0), "call {op} on a non-arena wrote its out pointer");
    assert!(kept == words, "call {op} wrote to the non-arena");
    assert!(before == snapshot(w), "call {op} on a non-arena changed something");
    if !w.vm.is_null() {
        // SAFETY: a live VM.
        assert_eq!(unsafe { lib::vmspace_vm_check(w.vm) }, 0, "the VM after");
    }
}

/// A walk function no walk of a non-arena may call.
extern "C" fn never(_: *mut core::ffi::c_void, _: *const vmspace_segment) -> c_int {
    panic!("a walk of a non-arena called its function")
}
