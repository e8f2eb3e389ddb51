//! The model of the `capi` target: the input, what each arena has out
//! (its books), the spans the model gave it, and the checks made of every
//! allocation and after every step.

use core::ffi::{c_int, c_void};
use core::ptr;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api as lib;

use crate::source::Source;

/// The parent's initial span starts here.
pub const BASE: usize = 1 << 32;
/// At most this many live allocations (and as many stale frees) are kept.
pub const MAX_LIVE: usize = 256;

pub const ENOENT: c_int = -2;
pub const EBADF: c_int = -9;
pub const EAGAIN: c_int = -11;
pub const ENOMEM: c_int = -12;
pub const EBUSY: c_int = -16;
pub const EEXIST: c_int = -17;
pub const EINVAL: c_int = -22;
pub const ENOSPC: c_int = -28;
pub const ERANGE: c_int = -34;
pub const EPROTO: c_int = -71;
pub const EOVERFLOW: c_int = -75;
pub const EMSGSIZE: c_int = -90;
pub const EOPNOTSUPP: c_int = -95;
pub const ETIMEDOUT: c_int = -110;

/// Bytes of the input, read in turn (zeros once it runs out).
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }
    /// A size in quanta, mostly small, now and then whole spans or huge.
    pub fn size(&mut self, q: usize) -> usize {
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
pub struct Books {
    /// Allocations by address: start, size asked.
    pub live: Vec<(usize, usize)>,
    /// Allocations by handle, with their size.
    pub handles: Vec<(vmspace_handle, usize)>,
    /// Ranges freed deferred, not flushed yet: start, size rounded.
    pub unflushed: Vec<(usize, usize)>,
    /// Handles freed (stale).
    pub stale: Vec<vmspace_handle>,
    /// Whether faults are injected (then -EAGAIN is allowed).
    pub mtbf: bool,
    /// The arena's handle fingerprint, once a handle told it.
    pub fingerprint: Option<u32>,
    /// The spans the model gave the arena: the parent's initial span, and
    /// every `vmspace_arena_add` that succeeded (not its imports).
    pub added: Vec<(usize, usize)>,
    /// Its limit (`vmspace_arena_set_limit`; 0: none).
    pub limit: usize,
}

/// The two arenas, their books, and the parent's import functions' state.
pub struct World {
    pub parent: *mut vmspace_arena_t,
    pub child: *mut vmspace_arena_t,
    pub child_params: vmspace_params,
    pub q: usize,
    pub qcache_max: usize,
    /// The size of the parent's initial span.
    pub span: usize,
    pub books: [Books; 2],
    /// The parent's import and release functions' state (boxed: the parent
    /// holds its address as their argument).
    pub source: Box<Source>,
    /// A VM, made the first time one is passed as an arena (0 until then).
    pub vm: *mut vmspace_vm_t,
}

impl World {
    pub fn arena(&self, which: usize) -> *mut vmspace_arena_t {
        [self.parent, self.child][which]
    }
    /// The spans added that an allocation of arena `which` may lie in:
    /// the parent's; for the child its own as well (its imports are the
    /// parent's allocations). With what the import function has out, the
    /// model's spans of the arena.
    pub fn added(&self, which: usize) -> Vec<(usize, usize)> {
        let mut v = self.books[0].added.clone();
        if which == 1 {
            v.extend(self.books[1].added.iter().copied());
        }
        v
    }
}

pub fn round(size: usize, q: usize) -> usize {
    size.div_ceil(q) * q
}

pub fn overlaps((a, n): (usize, usize), (b, m): (usize, usize)) -> bool {
    a < b + m && b < a + n
}

/// An arena's sizes (which it must give for a live arena).
pub fn sizes(arena: *mut vmspace_arena_t) -> vmspace_sizes {
    // SAFETY: a live arena and a writable out pointer.
    unsafe {
        let mut s: vmspace_sizes = core::mem::zeroed();
        assert_eq!(lib::vmspace_arena_sizes(arena, &mut s), 0);
        s
    }
}

/// What a failing call must leave as it was: both arenas' sizes and the
/// ranges the import function has out.
pub fn snapshot(w: &World) -> (String, Vec<(usize, usize)>) {
    let sizes = format!("{:?} {:?}", sizes(w.parent), sizes(w.child));
    (sizes, w.source.out.borrow().clone())
}

/// A new allocation of `arena` at `addr` of `size` asked: quantum-aligned,
/// inside one of its spans (the library's, and the model's: `added` and
/// what the import function has out), overlapping
/// nothing live or unflushed anywhere, nor any of `below` (the child's
/// spans, for the parent's allocations: the parent's allocations they are).
pub fn placed(
    arena: *mut vmspace_arena_t,
    q: usize,
    (addr, size): (usize, usize),
    all: &[&Books],
    below: &[(usize, usize)],
    (added, source): (&[(usize, usize)], &Source),
) {
    let r = (addr, round(size, q));
    assert_eq!(addr % q, 0, "{addr:#x} not a multiple of the quantum {q}");
    // SAFETY: a live arena.
    assert_eq!(unsafe { lib::vmspace_arena_contains(arena, addr, r.1) }, 1, "{r:x?} outside");
    let inside = |&(a, n): &(usize, usize)| a <= r.0 && r.0 - a + r.1 <= n;
    let out = source.out.borrow();
    let found = added.iter().chain(out.iter()).any(inside);
    assert!(found, "{r:x?} outside the model's spans {added:x?} {out:x?}");
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

/// The errnos an allocation may fail with beyond those it always may.
pub struct Allowed {
    /// -EAGAIN: faults injected in either arena (the child's imports are
    /// the parent's allocations).
    pub again: bool,
    /// -EPROTO: the parent's import function returns unusable ranges.
    pub proto: bool,
    /// -EOPNOTSUPP: a handle allocation that would wait.
    pub unsupported: bool,
}

/// An errno the header gives for an allocation.
pub fn alloc_error(e: c_int, allowed: Allowed) {
    let ok = [ENOMEM, EINVAL, ERANGE, EOVERFLOW, ENOSPC, ETIMEDOUT];
    assert!(
        ok.contains(&e)
            || (allowed.again && e == EAGAIN)
            || (allowed.proto && e == EPROTO)
            || (allowed.unsupported && e == EOPNOTSUPP),
        "allocation: errno {e}"
    );
}

/// The spans of `arena`, from a walk.
pub fn spans(arena: *mut vmspace_arena_t) -> Vec<(usize, usize)> {
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

/// An arena's check, and a walk that adds up to the sizes.
pub fn verify(arena: *mut vmspace_arena_t) {
    // SAFETY: a live arena; the walk's sums are ours.
    unsafe {
        assert_eq!(lib::vmspace_arena_check(arena), 0, "check");
        let s = sizes(arena);
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

/// Both arenas' checks, and their spans as the model has them: the
/// parent's are what was added and what its import function has out, the
/// child's added spans are its spans less its imports; a range the import
/// function returned misaligned or wrapping was given back at once.
pub fn verify_world(w: &World) {
    verify(w.parent);
    verify(w.child);
    let (p, c) = (sizes(w.parent), sizes(w.child));
    let out: usize = w.source.out.borrow().iter().map(|r| r.1).sum();
    let added = |b: &Books| b.added.iter().map(|r| r.1).sum::<usize>();
    assert_eq!(p.imported, out, "the parent's imports against its import function's");
    assert_eq!(p.total, added(&w.books[0]) + out, "the parent's spans: {p:?}");
    assert_eq!(c.total - c.imported, added(&w.books[1]), "the child's added spans: {c:?}");
    assert_eq!(added(&w.books[0]), w.source.added.get());
    let kept = w.source.bad_out.get();
    assert!(kept.is_none(), "{kept:x?}: returned out of contract, not given back");
}

/// Whether `addr` is in one of the child's spans: its imports, which are
/// allocations of the parent's, by address (a free of one through the
/// parent is taken, the header says: the caller's double free).
pub fn imported(child: *mut vmspace_arena_t, addr: usize, q: usize) -> bool {
    // SAFETY: a live arena.
    unsafe { lib::vmspace_arena_contains(child, addr, q) == 1 }
}

pub fn create(params: &vmspace_params) -> *mut vmspace_arena_t {
    let mut arena = ptr::null_mut();
    // SAFETY: `params` and `arena` are valid for the call.
    let e = unsafe { lib::vmspace_arena_create_ex(params, &mut arena) };
    assert_eq!(e, 0, "create_ex");
    arena
}
