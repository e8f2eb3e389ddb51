//! Fuzz the C API (`vmspace.h`) as a C caller meets it, through the
//! user-space library's exported functions: a parent arena and a child
//! importing from it (made with `vmspace_arena_create_ex`, the input's
//! first byte picking the quantum, the quantum caches and the tag limit),
//! then allocations by address and by handle with any flags and
//! constraints, frees good and bad (a double free, a wrong size in the same
//! quantum, a stale or foreign handle, an address never handed out, a
//! handle freed deferred after a free of it, deferred or not), deferred
//! frees and flushes, reclaims, limits, injected faults, walks, and the
//! child destroyed and made again (`capi/ops.rs`); spans added to either
//! arena, good, overlapping, empty, misaligned and past the end of the
//! address space, and calls given what is not an arena (zeroed storage, a
//! misaligned pointer, a copy of an arena's first word, a VM;
//! `capi/spans.rs`); import and release functions of the parent's, set,
//! replaced and stopped, refused on the child and while the parent holds
//! imported spans, returning ranges misaligned, past the end of the
//! address space or over a span the parent holds, and limits on the parent
//! probed with child allocations only an import can supply
//! (`capi/source.rs`). Checked against the
//! model (`capi/model.rs`): a list of what is live and what waits for its
//! flush, and the spans each arena was given: no range is handed out
//! twice, or before its flush, or outside the arena's spans; every good
//! free succeeds and every bad one fails, changing nothing; no call
//! returns an errno the header does not give for it; the parent's spans
//! are what was added and what its import function has out, and no import
//! passes its limit; a walk agrees with the sizes; and
//! `vmspace_arena_check` passes on both arenas after every step.

#![no_main]

#[path = "capi/model.rs"]
mod model;
#[path = "capi/ops.rs"]
mod ops;
#[path = "capi/source.rs"]
mod source;
#[path = "capi/spans.rs"]
mod spans;

use core::ffi::c_int;

use libfuzzer_sys::fuzz_target;
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api as lib;

use model::*;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let head = input.byte();
    let q = [1usize, 16, 4096][head as usize % 3];
    let qcache_max = [0, 4, 8][(head as usize / 3) % 3] * q;
    let max_tags = [0usize, 256, 4096][(head as usize / 9) % 3];
    let span = 512 * q;
    let parent = create(&vmspace_params {
        name: c"parent".as_ptr(),
        base: BASE,
        size: span,
        quantum: q,
        max_tags: 4096,
        ..Default::default()
    });
    let child_params = vmspace_params {
        name: c"child".as_ptr(),
        quantum: q,
        qcache_max,
        max_tags,
        parent,
        ..Default::default()
    };
    let child = create(&child_params);
    let src = source::Source::default();
    src.next.set(source::IMPORT_BASE);
    src.added.set(span);
    src.quantum.set(q);
    let mut w = World {
        parent,
        child,
        child_params,
        q,
        qcache_max,
        span,
        books: [Books::default(), Books::default()],
        source: Box::new(src),
        vm: core::ptr::null_mut(),
    };
    w.books[0].added.push((BASE, span));
    for step in 0..4096 {
        if input.0.is_empty() {
            break;
        }
        let which = input.byte() as usize % 2;
        let op = input.byte() % 22;
        let size = input.size(q);
        let policy = input.pick(&[0, 1, 2, 4, 8]) as c_int;
        let top = if input.byte() % 8 == 0 { VMSPACE_TOP } else { 0 };
        let flags = policy | top;
        match op {
            0..=15 => ops::step(&mut w, &mut input, (which, op, size, flags), step),
            16 | 17 => spans::add(&mut w, &mut input, which),
            18 => source::set_import(&mut w, &mut input, which),
            19 | 20 => source::limit_probe(&mut w, &mut input, flags),
            _ => spans::not_arenas(&mut w, &mut input),
        }
        verify_world(&w);
    }
    // SAFETY: live arenas, the child first (it imports from the parent),
    // and the VM made for `not_arenas`, if any.
    unsafe {
        assert_eq!(lib::vmspace_arena_destroy(w.child), 0);
        assert_eq!(lib::vmspace_arena_destroy(w.parent), 0);
        if !w.vm.is_null() {
            assert_eq!(lib::vmspace_vm_destroy(w.vm), 0);
        }
    }
    // What the parent's import function still has out holds a range freed
    // deferred and never flushed (kept for good, the header says), unless
    // no release function was set.
    let unflushed = w.books.iter().flat_map(|b| b.unflushed.iter().copied()).collect::<Vec<_>>();
    for &r in w.source.out.borrow().iter() {
        let held = unflushed.iter().any(|&u| overlaps(u, r));
        assert!(!w.source.release.get() || held, "{r:x?} never given back");
    }
});
