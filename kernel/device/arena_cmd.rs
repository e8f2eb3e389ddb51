// SPDX-License-Identifier: MIT OR Apache-2.0

//! The arena commands: create, spans, allocations (every constraint, by
//! address or by handle), frees, partial frees, resizes, lookups, walks,
//! statistics and `check()`.

use kernel::error::code::EFAULT;
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};
use vmspace::arena::{
    Arena, ArenaError, ConstraintParts, Constraints, NoSource, PageStore, Policy, Segment, SegmentKind, SegmentKinds,
    TAG_BYTES,
};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_abi::args::*;
use vmspace_abi::error::{WireError, DEV_BAD_FIELD};
use vmspace_shim::{Addr, PageOps, Size};

use crate::backends::DevBackends;
use crate::encode;
use crate::objects::{reservation_charge, with_arena, ArenaKind, ArenaObj, Object, Objects};
use crate::wire::{usize_of, Wire};

/// Refuse field `what` (in `w`).
fn bad(w: &mut WireError, what: &str) -> Error {
    encode::device(w, DEV_BAD_FIELD, what, 0, 0)
}

/// A `u64` field as a `usize`, or a refusal naming it.
fn field(w: &mut WireError, v: u64, what: &str) -> Result<usize> {
    usize_of(v).ok_or_else(|| bad(w, what))
}

/// The policy `p` (`POLICY_*`) of `arena`.
fn policy(p: u32, default: Policy) -> Option<Policy> {
    match p {
        POLICY_DEFAULT => Some(default),
        p => Policy::ALL.get(p as usize).copied(),
    }
}

/// `ARENA_CREATE`.
pub(crate) fn create<B: DevBackends>(objs: &mut Objects<B>, a: &mut ArenaCreateArgs) -> Result {
    let w = &mut a.err;
    if a.flags != 0 || a._pad != 0 {
        return Err(bad(w, "flags and _pad must be zero"));
    }
    let default_policy = match a.default_policy {
        POLICY_DEFAULT => return Err(bad(w, "default_policy")),
        p => policy(p, Policy::InstantFit).ok_or_else(|| bad(w, "default_policy"))?,
    };
    let quantum = field(w, a.quantum, "quantum")?;
    let max_tags = field(w, a.max_tags, "max_tags")?;
    let size = field(w, a.import_size, "import_size")?;
    let grain = match a.import_quantum {
        0 => B::vm().page_size().0,
        g => field(w, g, "import_quantum")?,
    };
    // The source VM's address space (what reserving it may take), and its
    // client range, all of which it may map (`Objects::mapped`): its size
    // rounded up to the grain, the charge less the grain aligning may take.
    let (import, client) = match size {
        0 => (0, 0),
        _ => {
            let charge = reservation_charge(size, grain);
            (charge, charge.saturating_sub(grain))
        }
    };
    let slot = objs.admit(w, max_tags, import)?;
    objs.admit_mapping(w, client)?;
    let meta = B::meta();
    let kind = if size == 0 {
        let arena = Arena::on_pages("dev", Size(quantum), meta, max_tags, NoSource);
        ArenaKind::Plain(arena.map_err(|e| encode::arena(w, &e.error()))?)
    } else {
        let vm = Vm::reserve(B::vm(), Size(size), Size(grain)).map_err(|e| encode::vm(w, &e))?;
        // The source's own bookkeeping: a tag per imported span and gap,
        // which the arena's own tags bound.
        let tags = max_tags.saturating_add(256);
        let hash = tags.checked_next_power_of_two().unwrap_or(usize::MAX).saturating_mul(4);
        let source = (|| {
            let store = PageStore::new(meta, Size(tags.saturating_mul(TAG_BYTES)))?;
            VmSource::new(vm, store, PageStore::new(meta, Size(hash))?).map_err(ArenaError::from)
        })();
        let source = source.map_err(|e| encode::arena(w, &e))?;
        let arena = Arena::on_pages("dev", Size(quantum), meta, max_tags, source);
        ArenaKind::Import(arena.map_err(|e| encode::arena(w, &e.error()))?)
    };
    a.id = objs.insert(slot, Object::Arena(ArenaObj { kind, default_policy, tags: max_tags, import }))?;
    Ok(())
}

/// `ARENA_ADD` (`extend` false) and `ARENA_EXTEND`.
pub(crate) fn span<B: DevBackends>(objs: &mut Objects<B>, a: &mut SpanArgs, extend: bool) -> Result {
    let w = &mut a.err;
    if a._pad != 0 {
        return Err(bad(w, "_pad must be zero"));
    }
    let (base, size) = (field(w, a.base, "base")?, field(w, a.size, "size")?);
    let obj = objs.arena(w, a.id)?;
    let r = with_arena!(&mut obj.kind, x => if extend {
        x.extend(Addr(base), Size(size))
    } else {
        x.add(Addr(base), Size(size))
    });
    r.map_err(|e| encode::arena(w, &e))
}

/// `ARENA_ALLOC`: `alloc`, `xalloc`, `alloc_handle` or `xalloc_handle`.
pub(crate) fn alloc<B: DevBackends>(objs: &mut Objects<B>, a: &mut AllocArgs) -> Result {
    let w = &mut a.err;
    let flags = a.flags;
    if flags & !ALLOC_FLAGS != 0 || a.tag != 0 || a.addr != 0 {
        return Err(bad(w, "flags (unknown bits), tag and addr (outputs) must be zero"));
    }
    let constrained = flags & ALLOC_CONSTRAINED != 0;
    let size = field(w, a.size, "size")?;
    let nums = [a.align, a.phase, a.nocross, a.min, a.max, a.exact];
    if !constrained && (flags != flags & ALLOC_HELD || nums.iter().any(|&v| v != 0)) {
        return Err(bad(w, "constraints given without ALLOC_CONSTRAINED"));
    }
    let [align, phase, nocross, min, max, exact] = nums;
    let (align, phase, nocross) = (field(w, align, "align")?, field(w, phase, "phase")?, field(w, nocross, "nocross")?);
    let mut opt = |on: u32, v: u64, what: &str| -> Result<Option<Addr>> {
        match flags & on {
            0 if v != 0 => Err(bad(w, what)),
            0 => Ok(None),
            _ => Ok(Some(Addr(field(w, v, what)?))),
        }
    };
    let min = opt(ALLOC_MIN, min, "min (or ALLOC_MIN)")?;
    let max = opt(ALLOC_MAX, max, "max (or ALLOC_MAX)")?;
    let exact = opt(ALLOC_EXACT, exact, "exact (or ALLOC_EXACT)")?;
    let obj = objs.arena(w, a.id)?;
    let Some(policy) = policy(a.policy, obj.default_policy) else {
        return Err(bad(w, "policy"));
    };
    let held = flags & ALLOC_HELD != 0;
    let c: Constraints = ConstraintParts {
        size: Size(size),
        align: Size(align),
        phase: Size(phase),
        nocross: Size(nocross),
        min,
        max,
        exact,
        policy,
        top: flags & ALLOC_TOP != 0,
    }
    .into();
    let got = with_arena!(&mut obj.kind, x => match (constrained, held) {
        (false, false) => x.alloc(Size(size), policy).map(|at| (at, 0)),
        (true, false) => x.xalloc(&c).map(|at| (at, 0)),
        (false, true) => x.alloc_handle(Size(size), policy).map(|h| (h.addr(), h.tag())),
        (true, true) => x.xalloc_handle(&c).map(|h| (h.addr(), h.tag())),
    });
    let (at, tag) = got.map_err(|e| encode::arena(w, &e))?;
    a.addr = at.0 as u64;
    a.tag = tag;
    Ok(())
}

/// Which free command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreeKind {
    /// `ARENA_FREE`.
    ByAddress,
    /// `ARENA_FREE_HANDLE`.
    Handle,
    /// `ARENA_FREE_PART`.
    Part,
    /// `ARENA_RESIZE`.
    Resize,
    /// `ARENA_FREE_DEFERRED`.
    Deferred,
    /// `ARENA_FLUSHED`.
    Flushed,
    /// `ARENA_FREE_HANDLE_DEFERRED`.
    HandleDeferred,
}

/// The inputs of `FreeArgs` a free command reads.
struct FreeInputs {
    addr: bool,
    tag: bool,
    a: bool,
    b: bool,
}

impl FreeKind {
    /// What the command reads; every other input must be zero, and `tag`
    /// must be non-zero where it is read.
    fn inputs(self) -> FreeInputs {
        let (addr, tag, a, b) = match self {
            FreeKind::ByAddress | FreeKind::Deferred => (true, false, true, false),
            FreeKind::Handle | FreeKind::HandleDeferred => (true, true, false, false),
            FreeKind::Part | FreeKind::Resize => (true, false, true, true),
            FreeKind::Flushed => (false, false, false, false),
        };
        FreeInputs { addr, tag, a, b }
    }
}

/// `ARENA_FREE`, `ARENA_FREE_HANDLE`, `ARENA_FREE_PART`, `ARENA_RESIZE`,
/// `ARENA_FREE_DEFERRED`, `ARENA_FLUSHED`, `ARENA_FREE_HANDLE_DEFERRED`.
pub(crate) fn free<B: DevBackends>(objs: &mut Objects<B>, a: &mut FreeArgs, kind: FreeKind) -> Result {
    let w = &mut a.err;
    let reads = kind.inputs();
    let unread = |read: bool, v: u64| !read && v != 0;
    let extra = unread(reads.addr, a.addr) || unread(reads.a, a.a) || unread(reads.b, a.b);
    if (a.tag != 0) != reads.tag || extra || a.size != 0 {
        return Err(bad(w, "tag, addr, a, b and size do not fit the command"));
    }
    let (addr, x1, x2) = (Addr(field(w, a.addr, "addr")?), Size(field(w, a.a, "a")?), Size(field(w, a.b, "b")?));
    let obj = objs.arena(w, a.id)?;
    let r: Result<usize, ArenaError> = with_arena!(&mut obj.kind, x => match kind {
        FreeKind::ByAddress => x.free(addr, x1).map(|()| 0),
        FreeKind::Handle => match x.handle_from_parts(addr, a.tag) {
            Some(h) => x.free_handle(h).map(|s| s.0),
            None => Err(ArenaError::InvalidArgument("tag 0 names no handle")),
        },
        FreeKind::Part => x.free_part(addr, x1, x2).map(|()| 0),
        FreeKind::Resize => x.resize(addr, x1, x2).map(|()| 0),
        FreeKind::Deferred => x.free_deferred(addr, x1).map(|()| 0),
        FreeKind::Flushed => Ok(x.flushed().0),
        FreeKind::HandleDeferred => match x.handle_from_parts(addr, a.tag) {
            Some(h) => x.free_handle_deferred(h).map(|s| s.0),
            None => Err(ArenaError::InvalidArgument("tag 0 names no handle")),
        },
    });
    a.size = r.map_err(|e| encode::arena(w, &e))? as u64;
    Ok(())
}

/// `ARENA_LOOKUP`.
pub(crate) fn lookup<B: DevBackends>(objs: &mut Objects<B>, a: &mut LookupArgs) -> Result {
    let w = &mut a.err;
    if a._pad != 0 || a.found != 0 || a.base != 0 || a.limit != 0 || a.requested != 0 {
        return Err(bad(w, "_pad and the outputs must be zero"));
    }
    let addr = Addr(field(w, a.addr, "addr")?);
    let tag = a.tag;
    let obj = objs.arena(w, a.id)?;
    let found = with_arena!(&obj.kind, x => match tag {
        0 => x.lookup(addr),
        t => x.handle_from_parts(addr, t).and_then(|h| x.lookup_handle(h)),
    });
    if let Some((range, asked)) = found {
        a.found = 1;
        a.base = range.base().0 as u64;
        a.limit = range.limit().0 as u64;
        a.requested = asked.0 as u64;
    }
    Ok(())
}

/// The segment kinds of `ARENA_WALK`'s `kinds` bits, if they are good.
fn kinds_of(bits: u32) -> Option<SegmentKinds> {
    let all = (1 << SEG_SPAN) | (1 << SEG_FREE) | (1 << SEG_ALLOCATED) | (1 << SEG_UNFLUSHED);
    if bits == 0 || bits & !all != 0 {
        return None;
    }
    let mut k: Option<SegmentKinds> = None;
    for (bit, kind) in [
        (SEG_SPAN, SegmentKinds::SPANS),
        (SEG_FREE, SegmentKinds::FREE),
        (SEG_ALLOCATED, SegmentKinds::ALLOCATED),
        (SEG_UNFLUSHED, SegmentKinds::UNFLUSHED),
    ] {
        if bits & (1 << bit) != 0 {
            k = Some(k.map_or(kind, |k| k.union(kind)));
        }
    }
    k
}

fn wire_segment(s: &Segment) -> WireSegment {
    let kind = match s.kind {
        SegmentKind::Span => SEG_SPAN,
        SegmentKind::Free => SEG_FREE,
        SegmentKind::Allocated => SEG_ALLOCATED,
        SegmentKind::Unflushed => SEG_UNFLUSHED,
    };
    WireSegment {
        base: s.range.base().0 as u64,
        limit: s.range.limit().0 as u64,
        requested: s.requested.0 as u64,
        kind,
        flags: if s.imported { SEG_IMPORTED } else { 0 } | if s.held { SEG_HELD } else { 0 },
    }
}

/// `ARENA_WALK`: the segments of the kinds asked for, in address order, the
/// first `cap` of them written to `buf`; `count` says how many there are.
pub(crate) fn walk<B: DevBackends>(objs: &mut Objects<B>, a: &mut ListArgs) -> Result {
    let w = &mut a.err;
    if a.count != 0 {
        return Err(bad(w, "count (an output) must be zero"));
    }
    let Some(kinds) = kinds_of(a.kinds) else {
        return Err(bad(w, "kinds"));
    };
    let buf = field(w, a.buf, "buf")?;
    let obj = objs.arena(w, a.id)?;
    let count = with_arena!(&obj.kind, x => x.walk(kinds).count());
    let n = usize_of(a.cap).unwrap_or(usize::MAX).min(count);
    a.count = count as u64;
    if n == 0 {
        return Ok(());
    }
    let mut out = UserSlice::new(UserPtr::from_addr(buf), n * core::mem::size_of::<WireSegment>()).writer();
    with_arena!(&obj.kind, x => {
        for s in x.walk(kinds).take(n) {
            out.write(&Wire(wire_segment(&s))).map_err(|_| EFAULT)?;
        }
    });
    Ok(())
}

/// `ARENA_STATS`.
pub(crate) fn stats<B: DevBackends>(objs: &mut Objects<B>, a: &mut ArenaStatsArgs) -> Result {
    let id = a.id;
    let mut err = WireError::ZERO;
    let inputs = ArenaStatsArgs { id: 0, err: WireError::ZERO, ..*a };
    if inputs != ArenaStatsArgs::ZERO {
        let e = bad(&mut err, "the outputs must be zero");
        *a = ArenaStatsArgs { id, err, ..ArenaStatsArgs::ZERO };
        return Err(e);
    }
    let obj = objs.arena(&mut err, id);
    let obj = match obj {
        Ok(o) => o,
        Err(e) => {
            *a = ArenaStatsArgs { id, err, ..ArenaStatsArgs::ZERO };
            return Err(e);
        }
    };
    let mut s = ArenaStatsArgs { id, ..ArenaStatsArgs::ZERO };
    with_arena!(&obj.kind, x => {
        let (sizes, c) = (x.sizes(), x.counters());
        s.quantum = x.quantum().0 as u64;
        s.allocated = sizes.allocated.0 as u64;
        s.free = sizes.free.0 as u64;
        s.total = sizes.total.0 as u64;
        s.imported = sizes.imported.0 as u64;
        s.unflushed = sizes.unflushed.0 as u64;
        s.allocs = c.allocs;
        s.frees = c.frees;
        s.failures = c.failures;
        s.bad_frees = c.bad_frees;
        s.search_steps = c.search_steps;
        s.lookups = c.lookups;
        s.imports = c.imports;
        s.exports = c.exports;
        s.export_failures = c.export_failures;
        s.injected = c.injected;
        s.deferred_frees = c.deferred_frees;
        s.flushes = c.flushes;
        s.live = x.live() as u64;
        s.spans = x.span_count() as u64;
        s.largest_free = x.largest_free().0 as u64;
        s.fragmentation = x.fragmentation();
        let (used, _) = x.tags_in_use();
        s.tags_used = u64::from(used);
        for (out, n) in s.histogram.iter_mut().zip(x.free_histogram()) {
            *out = n as u64;
        }
    });
    s.tags_max = obj.tags as u64;
    if let ArenaKind::Import(x) = &obj.kind {
        s.source_mapped = x.source().vm().mapped().0 as u64;
        s.source_reserved = x.source().vm().reserved().0 as u64;
    }
    *a = s;
    Ok(())
}

/// `ARENA_CHECK`: the arena's `check()`, and its source's.
pub(crate) fn check<B: DevBackends>(objs: &mut Objects<B>, a: &mut CheckArgs) -> Result {
    let w = &mut a.err;
    if a._pad != 0 {
        return Err(bad(w, "_pad must be zero"));
    }
    let obj = objs.arena(w, a.id)?;
    let r = match &obj.kind {
        ArenaKind::Plain(x) => x.check(),
        ArenaKind::Import(x) => x.check().and_then(|()| x.source().check()),
    };
    r.map_err(|e| encode::arena(w, &e))
}
