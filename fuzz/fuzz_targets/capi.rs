//! Fuzz the C API (`vmspace.h`) as a C caller meets it, through the
//! user-space library's exported functions: a parent arena and a child
//! importing from it (made with `vmspace_arena_create_ex`, the input's
//! first byte picking the quantum, the quantum caches and the tag limit),
//! then allocations by address and by handle with any flags and
//! constraints, frees good and bad (a double free, a wrong size in the same
//! quantum, a stale or foreign handle, an address never handed out),
//! deferred frees and flushes, reclaims, limits, injected faults, walks,
//! and the child destroyed and made again. Checked against a list of what
//! is live and what waits for its flush: no range is handed out twice, or
//! before its flush, or outside the arena's spans; every good free
//! succeeds and every bad one fails, changing nothing; no call returns an
//! errno the header does not give for it; a walk agrees with the sizes;
//! and `vmspace_arena_check` passes on both arenas after every step.

#![no_main]

use core::ffi::{c_int, c_void};
use core::ptr;

use libfuzzer_sys::fuzz_target;
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api as lib;

const BASE: usize = 1 << 32;
/// At most this many live allocations (and as many stale frees) are kept.
const MAX_LIVE: usize = 256;

const ENOENT: c_int = -2;
const EAGAIN: c_int = -11;
const ENOMEM: c_int = -12;
const EBUSY: c_int = -16;
const EINVAL: c_int = -22;
const ENOSPC: c_int = -28;
const ERANGE: c_int = -34;
const EOVERFLOW: c_int = -75;
const EMSGSIZE: c_int = -90;
const EOPNOTSUPP: c_int = -95;
const ETIMEDOUT: c_int = -110;

/// Bytes of the input, read in turn (zeros once it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }
    /// A size in quanta, mostly small, now and then whole spans or huge.
    fn size(&mut self, q: usize) -> usize {
        match self.byte() {
            0..=199 => (1 + self.byte() as usize % 16) * q,
            200..=239 => q * (1 + self.byte() as usize) + self.byte() as usize % q.max(1),
            240..=251 => self.byte() as usize,
            _ => usize::MAX - self.byte() as usize,
        }
    }
}

/// What one arena has out.
#[derive(Default)]
struct Books {
    /// Allocations by address: start, size asked.
    live: Vec<(usize, usize)>,
    /// Allocations by handle, with their size.
    handles: Vec<(vmspace_handle, usize)>,
    /// Ranges freed deferred, not flushed yet: start, size rounded.
    unflushed: Vec<(usize, usize)>,
    /// Handles freed (stale).
    stale: Vec<vmspace_handle>,
    /// Whether faults are injected (then -EAGAIN is allowed).
    mtbf: bool,
    /// The arena's handle fingerprint, once a handle told it.
    fingerprint: Option<u32>,
}

fn round(size: usize, q: usize) -> usize {
    size.div_ceil(q) * q
}

fn overlaps((a, n): (usize, usize), (b, m): (usize, usize)) -> bool {
    a < b + m && b < a + n
}

/// A new allocation of `arena` at `addr` of `size` asked: quantum-aligned,
/// inside its spans, overlapping nothing live or unflushed anywhere, nor
/// any of `below` (the child's spans, for the parent's allocations: the
/// parent's allocations they are).
fn placed(
    arena: *mut vmspace_arena_t,
    q: usize,
    addr: usize,
    size: usize,
    all: &[&Books],
    below: &[(usize, usize)],
) {
    let r = (addr, round(size, q));
    assert_eq!(addr % q, 0, "{addr:#x} not a multiple of the quantum {q}");
    // SAFETY: a live arena.
    assert_eq!(unsafe { lib::vmspace_arena_contains(arena, addr, r.1) }, 1, "{r:x?} outside");
    for span in below {
        assert!(!overlaps(r, *span), "{r:x?} handed out over the child's span {span:x?}");
    }
    for b in all {
        let held = b.live.iter().map(|&(a, s)| (a, round(s, q)));
        let by_handle = b.handles.iter().map(|(h, s)| (h.addr, round(*s, q)));
        for other in held.chain(by_handle).chain(b.unflushed.iter().copied()) {
            assert!(!overlaps(r, other), "{r:x?} handed out over {other:x?}");
        }
    }
}

/// An errno the header gives for an allocation (with faults injected in
/// either arena, -EAGAIN as well: the child's imports are the parent's
/// allocations; -EOPNOTSUPP only for a handle allocation that would wait).
fn alloc_error(e: c_int, mtbf: bool, handle_wait: bool) {
    let ok = [ENOMEM, EINVAL, ERANGE, EOVERFLOW, ENOSPC, ETIMEDOUT];
    assert!(
        ok.contains(&e) || (mtbf && e == EAGAIN) || (handle_wait && e == EOPNOTSUPP),
        "allocation: errno {e}"
    );
}

/// The spans of `arena`, from a walk.
fn spans(arena: *mut vmspace_arena_t) -> Vec<(usize, usize)> {
    extern "C" fn push(arg: *mut c_void, seg: *const vmspace_segment) -> c_int {
        // SAFETY: `arg` is the vector below; `seg` valid for the call.
        let (v, seg) = unsafe { (&mut *arg.cast::<Vec<(usize, usize)>>(), &*seg) };
        v.push((seg.start, seg.size));
        0
    }
    let mut v: Vec<(usize, usize)> = Vec::new();
    // SAFETY: a live arena; `v` outlives the walk.
    let e = unsafe {
        lib::vmspace_arena_walk(arena, VMSPACE_SEG_SPAN, Some(push), (&raw mut v).cast())
    };
    assert_eq!(e, 0);
    v
}

/// A walk callback that stops the walk at once with 7.
extern "C" fn stop(_: *mut c_void, _: *const vmspace_segment) -> c_int {
    7
}

extern "C" fn count_segment(arg: *mut c_void, seg: *const vmspace_segment) -> c_int {
    // SAFETY: `arg` is the `[usize; 5]` the walk below passes; `seg` is
    // valid for the call (the header's contract).
    let (sums, seg) = unsafe { (&mut *arg.cast::<[usize; 5]>(), &*seg) };
    let i = match seg.kind {
        VMSPACE_SEG_ALLOCATED => 0,
        VMSPACE_SEG_FREE => 1,
        VMSPACE_SEG_UNFLUSHED => 2,
        VMSPACE_SEG_SPAN => 3,
        k => panic!("walk: kind {k}"),
    };
    assert!(seg.start >= sums[4] || i == 3, "walk out of order at {:#x}", seg.start);
    if i != 3 {
        sums[4] = seg.start + seg.size;
    }
    sums[i] += seg.size;
    0
}

/// Both arenas' checks, and a walk that adds up to the sizes.
fn verify(arena: *mut vmspace_arena_t) {
    // SAFETY: a live arena; `sizes` and the walk's sums are ours.
    unsafe {
        assert_eq!(lib::vmspace_arena_check(arena), 0, "check");
        let mut s: vmspace_sizes = core::mem::zeroed();
        assert_eq!(lib::vmspace_arena_sizes(arena, &mut s), 0);
        assert_eq!(s.total, s.allocated + s.free + s.unflushed, "{s:?}");
        let mut sums = [0usize; 5];
        let walk = lib::vmspace_arena_walk(
            arena,
            VMSPACE_SEG_ALL,
            Some(count_segment),
            (&raw mut sums).cast(),
        );
        assert_eq!(walk, 0);
        assert_eq!(
            [sums[0], sums[1], sums[2], sums[3]],
            [s.allocated, s.free, s.unflushed, s.total]
        );
        // A walk the callback stops returns what it returned.
        let stopped = lib::vmspace_arena_walk(arena, VMSPACE_SEG_ALL, Some(stop), ptr::null_mut());
        assert_eq!(stopped, if s.spans == 0 { 0 } else { 7 }, "a stopped walk");
    }
}

/// Whether `addr` is in one of the child's spans: its imports, which are
/// allocations of the parent's, by address (a free of one through the
/// parent is taken, the header says: the caller's double free).
fn imported(child: *mut vmspace_arena_t, addr: usize, q: usize) -> bool {
    // SAFETY: a live arena.
    unsafe { lib::vmspace_arena_contains(child, addr, q) == 1 }
}

fn create(params: &vmspace_params) -> *mut vmspace_arena_t {
    let mut arena = ptr::null_mut();
    // SAFETY: `params` and `arena` are valid for the call.
    let e = unsafe { lib::vmspace_arena_create_ex(params, &mut arena) };
    assert_eq!(e, 0, "create_ex");
    arena
}

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
    let mut child = create(&child_params);
    let mut books = [Books::default(), Books::default()];
    for step in 0..4096 {
        if input.0.is_empty() {
            break;
        }
        let which = input.byte() as usize % 2;
        let arena = [parent, child][which];
        let op = input.byte() % 16;
        let size = input.size(q);
        let policy = input.pick(&[0, 1, 2, 4, 8]) as c_int;
        let top = if input.byte() % 8 == 0 { VMSPACE_TOP } else { 0 };
        let flags = policy | top;
        // The parent's allocations must keep off the child's spans.
        let below = if which == 0 { spans(child) } else { Vec::new() };
        let [b0, b1] = &mut books;
        let (b, other) = if which == 0 { (b0, &*b1) } else { (b1, &*b0) };
        // SAFETY (every call below): `arena` is live, out-pointers are ours.
        unsafe {
            match op {
                0 | 1 if b.live.len() < MAX_LIVE => {
                    let mut addr = 0;
                    let e = if op == 0 {
                        lib::vmspace_arena_alloc(arena, size, flags, &mut addr)
                    } else {
                        lib::vmspace_arena_alloc_timed(arena, size, flags, 0, &mut addr)
                    };
                    match e {
                        0 => {
                            placed(arena, q, addr, size, &[b, other], &below);
                            b.live.push((addr, size));
                        }
                        e => alloc_error(e, b.mtbf || other.mtbf, false),
                    }
                }
                2 if b.live.len() < MAX_LIVE => {
                    let align = [0, q, 4 * q, 64 * q, 3 * q][input.byte() as usize % 5];
                    let phase =
                        if align > q { q * (input.byte() as usize % (align / q)) } else { 0 };
                    let nocross = [0, 64 * q, 256 * q][input.byte() as usize % 3];
                    let lo = BASE + q * input.byte() as usize * 2;
                    let (min, max) = match input.byte() % 4 {
                        0 => (0, 0),
                        1 => (lo, 0),
                        2 => (lo, lo + q * input.byte() as usize * 4),
                        _ => (0, lo),
                    };
                    let exact = if input.byte() % 8 == 0 { VMSPACE_EXACT } else { 0 };
                    let mut addr = 0;
                    let e = lib::vmspace_arena_xalloc(
                        arena,
                        size,
                        align,
                        phase,
                        nocross,
                        min,
                        max,
                        lo,
                        flags | exact,
                        &mut addr,
                    );
                    match e {
                        0 => {
                            placed(arena, q, addr, size, &[b, other], &below);
                            let a = align.max(q);
                            assert_eq!(addr % a, phase, "align {align:#x} phase {phase:#x}");
                            if nocross != 0 {
                                assert_eq!(addr / nocross, (addr + round(size, q) - 1) / nocross);
                            }
                            assert!(addr >= min && (max == 0 || addr + round(size, q) <= max));
                            assert!(exact == 0 || addr == lo);
                            b.live.push((addr, size));
                        }
                        e => alloc_error(e, b.mtbf || other.mtbf, false),
                    }
                }
                3 if !b.live.is_empty() => {
                    let i = size % b.live.len();
                    let (addr, asked) = b.live.swap_remove(i);
                    assert_eq!(lib::vmspace_arena_free(arena, addr, asked), 0, "good free");
                    if input.byte() % 4 == 0 {
                        // At once a double free: refused, from a quantum
                        // cache's magazine as from the arena.
                        let e = lib::vmspace_arena_free(arena, addr, asked);
                        assert!([ENOENT, EMSGSIZE].contains(&e), "double free: errno {e}");
                    }
                }
                4 if !b.live.is_empty() => {
                    // A wrong size (in the same quantum, or not), a double
                    // free, or an address inside an allocation: refused,
                    // nothing changed (the good free after still works).
                    let (addr, asked) = b.live[size % b.live.len()];
                    let (bad_addr, bad_size) = match input.byte() % 4 {
                        0 => (addr, asked + 1),
                        1 => (addr, asked.saturating_sub(1)),
                        2 => (addr + q, asked),
                        _ => (addr ^ (q << (input.byte() % 8)), asked),
                    };
                    if bad_size == asked && bad_addr == addr {
                        continue;
                    }
                    let live = |a: usize, s: usize| b.live.contains(&(a, s));
                    if live(bad_addr, bad_size) || which == 0 && imported(child, bad_addr, q) {
                        continue;
                    }
                    let e = lib::vmspace_arena_free(arena, bad_addr, bad_size);
                    // Another live allocation at the bad address (freed
                    // with the wrong size) is refused the same way.
                    assert!([ENOENT, EMSGSIZE].contains(&e), "bad free: errno {e}");
                }
                5 if b.handles.len() < MAX_LIVE => {
                    let mut h = vmspace_handle { addr: 0, tag: 0, arena: 0 };
                    let wait = if input.byte() % 16 == 0 { VMSPACE_WAIT } else { 0 };
                    let align = [0, q, 8 * q][input.byte() as usize % 3];
                    let e = if align == 0 {
                        lib::vmspace_arena_alloc_handle(arena, size, flags | wait, &mut h)
                    } else {
                        lib::vmspace_arena_xalloc_handle(
                            arena,
                            size,
                            align,
                            0,
                            0,
                            0,
                            0,
                            0,
                            flags | wait,
                            &mut h,
                        )
                    };
                    match e {
                        0 => {
                            assert_eq!(wait, 0, "a waiting handle allocation is -EOPNOTSUPP");
                            placed(arena, q, h.addr, size, &[b, other], &below);
                            assert_eq!(h.addr % align.max(q), 0, "xalloc_handle's alignment");
                            assert_eq!(*b.fingerprint.get_or_insert(h.arena), h.arena);
                            b.stale.retain(|s| (s.addr, s.tag) != (h.addr, h.tag));
                            b.handles.push((h, size));
                        }
                        e => alloc_error(e, b.mtbf || other.mtbf, wait != 0),
                    }
                }
                6 if !b.handles.is_empty() => {
                    let (h, asked) = b.handles.swap_remove(size % b.handles.len());
                    let mut got = 0;
                    let deferred = input.byte() % 4 == 0;
                    let e = if deferred {
                        lib::vmspace_arena_free_handle_deferred(arena, h, &mut got)
                    } else {
                        lib::vmspace_arena_free_handle(arena, h, &mut got)
                    };
                    assert_eq!((e, got), (0, asked), "good free by handle");
                    if deferred {
                        b.unflushed.push((h.addr, round(asked, q)));
                    }
                    if b.stale.len() < MAX_LIVE {
                        b.stale.push(h);
                    }
                }
                7 if !b.stale.is_empty() || !other.handles.is_empty() => {
                    // A stale handle, or the other arena's live one (when
                    // the two fingerprints are known to differ: the header
                    // allows a mix-up once in about 2^32 otherwise).
                    let foreign = other.handles.get(size % other.handles.len().max(1)).map(|h| h.0);
                    let apart = foreign.zip(b.fingerprint).is_some_and(|(h, f)| h.arena != f);
                    let h = match (foreign, b.stale.get(size % b.stale.len().max(1))) {
                        (Some(h), None) if apart => h,
                        (Some(h), Some(_)) if apart && input.byte() % 2 == 0 => h,
                        (_, Some(&h)) => h,
                        _ => continue,
                    };
                    let e = lib::vmspace_arena_free_handle(arena, h, ptr::null_mut());
                    assert_eq!(e, ENOENT, "stale or foreign handle {h:x?}");
                }
                8 if !b.live.is_empty() => {
                    let (addr, asked) = b.live[size % b.live.len()];
                    match lib::vmspace_arena_free_deferred(arena, addr, asked) {
                        0 => {
                            b.live.retain(|&l| l != (addr, asked));
                            b.unflushed.push((addr, round(asked, q)));
                        }
                        // A quantum-cache object (documented: refused).
                        e => {
                            assert!(qcache_max != 0 && which == 1 && e == ENOENT, "errno {e}");
                        }
                    }
                }
                9 => {
                    let mut freed = 0;
                    assert_eq!(lib::vmspace_arena_flushed(arena, &mut freed), 0);
                    let waiting: usize = b.unflushed.iter().map(|u| u.1).sum();
                    assert_eq!(freed, waiting, "flushed");
                    b.unflushed.clear();
                }
                10 => {
                    assert!(lib::vmspace_arena_reclaim(arena) >= 0);
                }
                11 => {
                    let mtbf = input.pick(&[0u32, 0, 2, 7]);
                    assert_eq!(lib::vmspace_arena_set_mtbf(arena, step, mtbf), 0);
                    b.mtbf = mtbf != 0;
                }
                12 if which == 1 => {
                    let limit = input.pick(&[0, span / 4, span]);
                    assert_eq!(lib::vmspace_arena_set_limit(arena, limit), 0);
                }
                13 => {
                    // An address never handed out, or freed already.
                    let addr = BASE + q * input.byte() as usize;
                    let held = |&(a, s): &(usize, usize)| overlaps((a, round(s, q)), (addr, q));
                    if b.live.iter().any(held)
                        || b.handles.iter().any(|(h, s)| held(&(h.addr, *s)))
                        || which == 0 && imported(child, addr, q)
                    {
                        continue;
                    }
                    let e = lib::vmspace_arena_free(arena, addr, q);
                    assert!([ENOENT, EMSGSIZE].contains(&e), "free of nothing: errno {e}");
                }
                14 if which == 0 => {
                    // The parent while the child imports from it: refused,
                    // nothing changed (the checks after this step).
                    assert_eq!(lib::vmspace_arena_destroy(parent), EBUSY, "parent destroyed");
                }
                14 if which == 1 && b.unflushed.is_empty() => {
                    // The child destroyed with what it has out, and made
                    // again: its imports go back to the parent.
                    assert_eq!(lib::vmspace_arena_destroy(child), 0, "destroy");
                    child = create(&child_params);
                    books[1] = Books::default();
                }
                _ => {
                    for &(addr, asked) in &b.live {
                        assert_eq!(lib::vmspace_arena_contains(arena, addr, round(asked, q)), 1);
                    }
                }
            }
        }
        verify(parent);
        verify(child);
    }
    // SAFETY: live arenas, the child first (it imports from the parent).
    unsafe {
        assert_eq!(lib::vmspace_arena_destroy(child), 0);
        assert_eq!(lib::vmspace_arena_destroy(parent), 0);
    }
});
