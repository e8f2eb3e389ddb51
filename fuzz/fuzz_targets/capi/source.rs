//! The parent's import and release functions (`vmspace_arena_set_import`),
//! handing out ranges from a region of the model's own above everything
//! else (or, when told to, ranges that break the header's contract), and
//! the steps that set them, and the parent's limit, and probe what an
//! import must and must not do.

use core::cell::{Cell, RefCell};
use core::ffi::{c_int, c_void};

use vmspace_capi_user::vmspace_native_api as lib;

use crate::model::*;

/// The import function's ranges start here: far above the parent's spans,
/// its adds and the child's.
pub const IMPORT_BASE: usize = 1 << 44;

/// The largest import the import function grants: its region holds
/// 2^63 - 2^44 units, so no more than 2^40 at once.
pub const MAX_IMPORT: usize = 1 << 40;

/// How the import function breaks its contract (the header: a misaligned
/// range is given back and the allocation fails with -ENOMEM; an unusable
/// one is -EPROTO, given back through the release function unless it
/// overlaps a span the arena holds, then only forgotten).
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub enum Bad {
    /// It keeps it.
    #[default]
    No,
    /// Off the import quantum by half of it (none with a quantum of 1).
    Misaligned,
    /// Ending past the end of the address space.
    Wraps,
    /// Over the parent's initial span, which the parent holds.
    Overlaps,
}

/// What the parent's import functions hand out and know. Shared
/// references only: the functions reach it through their argument while
/// the arena calls them.
#[derive(Default)]
pub struct Source {
    /// Whether the parent imports through `import` (a NULL import stops).
    pub on: Cell<bool>,
    /// Whether the release function was set with it.
    pub release: Cell<bool>,
    /// The import quantum the parent was given (or its own, for 0).
    pub quantum: Cell<usize>,
    /// Whether the import function says no (returns non-zero).
    pub fail: Cell<bool>,
    /// Where the next range starts (rounded up to the import quantum).
    pub next: Cell<usize>,
    /// Ranges handed out and not taken back: start, size.
    pub out: RefCell<Vec<(usize, usize)>>,
    /// The parent's units in added spans (its initial span included).
    pub added: Cell<usize>,
    /// The parent's limit (0: none).
    pub limit: Cell<usize>,
    /// How the import function breaks its contract, if it does.
    pub bad: Cell<Bad>,
    /// The last range it returned out of contract that the arena must give
    /// back (misaligned, or wrapping): the release function takes it.
    pub bad_out: Cell<Option<(usize, usize)>>,
}

impl Source {
    /// Whether every range the import function returns keeps the header's
    /// contract (a misaligned one cannot be made with a quantum of 1).
    pub fn good(&self) -> bool {
        match self.bad.get() {
            Bad::No => true,
            Bad::Misaligned => self.quantum.get() == 1,
            Bad::Wraps | Bad::Overlaps => false,
        }
    }

    /// Whether an allocation that imports may fail with -EPROTO: the
    /// import function is on and returns unusable ranges.
    pub fn proto(&self) -> bool {
        self.on.get() && matches!(self.bad.get(), Bad::Wraps | Bad::Overlaps)
    }
}

/// The parent's import function: never called once stopped, asked for
/// multiples of its quantum with flags 0, never past the parent's limit
/// (its spans, added and imported, with this one).
unsafe extern "C" fn import(
    arg: *mut c_void,
    size: usize,
    flags: c_int,
    addrp: *mut usize,
) -> c_int {
    // SAFETY: `arg` is the world's boxed `Source`, which outlives the
    // parent; `addrp` is valid for the call (the header's contract).
    let (s, addrp) = unsafe { (&*arg.cast::<Source>(), &mut *addrp) };
    assert!(s.on.get(), "import called after a NULL import stopped it");
    assert_eq!(flags, 0, "import flags");
    let iq = s.quantum.get();
    assert!(size != 0 && size % iq == 0, "import of {size:#x}, import quantum {iq:#x}");
    let mut out = s.out.borrow_mut();
    let total = s.added.get() + out.iter().map(|r| r.1).sum::<usize>();
    let limit = s.limit.get();
    let total = total.saturating_add(size);
    assert!(limit == 0 || total <= limit, "import of {size:#x} to {total:#x}, past {limit:#x}");
    if s.fail.get() || size > MAX_IMPORT {
        return 1;
    }
    let bad = match s.bad.get() {
        Bad::Misaligned if iq > 1 => Some(s.next.get().next_multiple_of(iq) + iq / 2),
        Bad::Wraps => Some(usize::MAX & !(iq - 1)),
        Bad::No | Bad::Misaligned => None,
        Bad::Overlaps => {
            *addrp = BASE;
            return 0;
        }
    };
    if let Some(addr) = bad {
        if s.release.get() {
            s.bad_out.set(Some((addr, size)));
        }
        *addrp = addr;
        return 0;
    }
    let addr = s.next.get().next_multiple_of(iq);
    s.next.set(addr + size);
    out.push((addr, size));
    *addrp = addr;
    0
}

/// The parent's release function: takes back exactly a range handed out.
unsafe extern "C" fn release(arg: *mut c_void, addr: usize, size: usize) {
    // SAFETY: as for `import`.
    let s = unsafe { &*arg.cast::<Source>() };
    assert!(s.release.get(), "release called, not set");
    if s.bad_out.get() == Some((addr, size)) {
        s.bad_out.set(None);
        return;
    }
    let mut out = s.out.borrow_mut();
    let Some(i) = out.iter().position(|&r| r == (addr, size)) else {
        panic!("release of {addr:#x}+{size:#x}, never handed out (out: {out:x?})");
    };
    out.swap_remove(i);
}

/// `vmspace_arena_set_import` on arena `which`: -EINVAL for a quantum
/// below the arena's or not a power of two, -EBUSY on the child (it
/// imports from a parent) or on a parent holding imported spans, else
/// done (a NULL import stops importing). Nothing else changes.
pub fn set_import(w: &mut World, input: &mut Input, which: usize) {
    let q = w.q;
    let iq = input.pick(&[0, q, q, 2 * q, 8 * q, q / 2, 3 * q]);
    let valid = iq == 0 || iq.is_power_of_two() && iq >= q;
    let stop = input.byte() % 4 == 0;
    let keep = input.byte() % 4 == 0;
    let busy = which == 1 || !w.source.out.borrow().is_empty();
    let before = snapshot(w);
    let arg: *const Source = &*w.source;
    let imp = if stop { None } else { Some(import as _) };
    let rel = if keep { None } else { Some(release as _) };
    // SAFETY: a live arena; the functions are of the header's types, and
    // their argument, the boxed source, lives until after the parent.
    let e = unsafe { lib::vmspace_arena_set_import(w.arena(which), imp, rel, arg as _, iq) };
    match (valid, busy) {
        (true, false) => assert_eq!(e, 0, "set_import, quantum {iq:#x}"),
        (true, true) => assert_eq!(e, EBUSY, "set_import while busy"),
        (false, false) => assert_eq!(e, EINVAL, "set_import, quantum {iq:#x}"),
        // Both wrong: the header gives no order.
        (false, true) => assert!([EINVAL, EBUSY].contains(&e), "set_import: errno {e}"),
    }
    if e == 0 {
        w.source.on.set(!stop);
        w.source.release.set(!keep);
        w.source.quantum.set(if iq == 0 { q } else { iq });
    }
    assert!(e == 0 || before == snapshot(w), "a failed set_import changed something");
    w.source.fail.set(input.byte() % 4 == 0);
    w.source.bad.set(match input.byte() % 16 {
        0 => Bad::Misaligned,
        1 => Bad::Wraps,
        2 => Bad::Overlaps,
        _ => Bad::No,
    });
}

/// A limit on the parent while the child imports from it, then a child
/// allocation that no free segment of either arena holds (larger than
/// all either has), so an import must supply it: it succeeds exactly when
/// the parent's import function is on and says yes (to no more than
/// `MAX_IMPORT`), and neither arena's limit would be passed; otherwise
/// -ENOMEM, nothing changed.
pub fn limit_probe(w: &mut World, input: &mut Input, flags: c_int) {
    let q = w.q;
    let (ps, cs) = (sizes(w.parent), sizes(w.child));
    let iq = w.source.quantum.get().max(q);
    let size = ps.total.max(cs.total) + q * (1 + input.byte() as usize % 4);
    let size = size + input.byte() as usize % q;
    let child_import = round(size, q);
    let parent_import = round(child_import, iq);
    let limit = match input.byte() % 6 {
        0 => 0,
        1 => ps.total,
        2 => ps.total + parent_import,
        3 => ps.total + parent_import - 1,
        4 => ps.total + parent_import * (1 + input.byte() as usize % 4),
        _ => w.span / 2,
    };
    let before = snapshot(w);
    // SAFETY: a live arena.
    assert_eq!(unsafe { lib::vmspace_arena_set_limit(w.parent, limit) }, 0);
    w.source.limit.set(limit);
    assert!(before == snapshot(w), "set_limit changed something");
    let child_limit = w.books[1].limit;
    let child_ok = child_limit == 0 || cs.total + child_import <= child_limit;
    let parent_ok = w.source.on.get()
        && !w.source.fail.get()
        && w.source.good()
        && parent_import <= MAX_IMPORT
        && (limit == 0 || ps.total + parent_import <= limit);
    let mtbf = w.books[0].mtbf || w.books[1].mtbf;
    if w.books[1].live.len() >= MAX_LIVE {
        return;
    }
    let mut addr = 0;
    // SAFETY: a live arena and a writable out pointer.
    let e = unsafe { lib::vmspace_arena_alloc(w.child, size, flags, &mut addr) };
    let why = format!("probe {size:#x}: limits {limit:#x}/{child_limit:#x}, {ps:?} {cs:?}");
    if e == 0 {
        // With quantum caches, a failed try gives their slabs back (and so
        // perhaps imported spans of both arenas) and tries again: under
        // the limits then, maybe. The import itself must have happened.
        let cached = w.qcache_max != 0;
        let source_ok = w.source.on.get()
            && !w.source.fail.get()
            && w.source.good()
            && parent_import <= MAX_IMPORT;
        assert!(child_ok && parent_ok || cached && source_ok, "{why}: allocated");
        let below = spans(w.child);
        let model = (&w.added(1)[..], &*w.source);
        placed(w.child, q, (addr, size), &[&w.books[1], &w.books[0]], &[], model);
        // The parent imported just this much for it.
        let p = sizes(w.parent);
        let want = ps.total + parent_import;
        assert!(p.total == want || cached, "{why}: the parent's import, {p:?}");
        assert!(below.iter().any(|&s| s.0 <= addr && addr + child_import <= s.0 + s.1));
        w.books[1].live.push((addr, size));
        return;
    }
    let proto = w.source.proto();
    if mtbf {
        alloc_error(e, Allowed { again: true, proto, unsupported: false });
    } else if e != ENOSPC {
        assert!(!(child_ok && parent_ok), "{why}: errno {e}");
        assert!(e == ENOMEM || proto && e == EPROTO, "{why}: errno {e}");
    }
    // Quantum caches may give slabs back on the way to failing.
    assert!(w.qcache_max != 0 || before == snapshot(w), "{why}: a failure changed something");
}
