//! [`DevArena`]: an arena in the kernel, behind `/dev/vmspace`, as an
//! [`ArenaTarget`].

use vmspace::arena::{
    ArenaError, Constraints, Counters, Policy, Segment, SegmentKind, SegmentKinds, Sizes,
};
use vmspace_abi::args::*;
use vmspace_shim::{Addr, Range, Size};
use vmspace_workload::ArenaTarget;

use super::list::read_list;
use super::object::DevObject;
use super::{call, ioctl, Device, KdevError};

/// How to make a [`DevArena`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaConfig {
    /// The quantum.
    pub quantum: Size,
    /// Boundary tags the arena may use.
    pub max_tags: usize,
    /// 0: no source; else the size of a VM the kernel reserves for the
    /// arena to import from.
    pub import_size: usize,
    /// The source VM's grain (0: the page size).
    pub import_quantum: usize,
    /// The policy of requests that ask for the default.
    pub default_policy: Policy,
}

impl ArenaConfig {
    /// An arena of `quantum` with 8192 tags, no source, instant fit.
    pub const fn new(quantum: Size) -> Self {
        ArenaConfig {
            quantum,
            max_tags: 8192,
            import_size: 0,
            import_quantum: 0,
            default_policy: Policy::InstantFit,
        }
    }

    /// With `max_tags` tags.
    pub const fn max_tags(mut self, max_tags: usize) -> Self {
        self.max_tags = max_tags;
        self
    }

    /// Importing from a VM of `size` bytes of its own.
    pub const fn import(mut self, size: usize) -> Self {
        self.import_size = size;
        self
    }
}

/// A handle of a [`DevArena`]: the address and the tag the kernel's arena
/// gave the allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevHandle {
    /// The address.
    pub addr: Addr,
    /// The tag.
    pub tag: u32,
}

/// An arena in the kernel, owned by one open file of the device; destroyed
/// when dropped (in the process that made it: a `fork()` child shares the
/// file, and its copy's drop leaves the arena to the parent).
#[derive(Debug)]
pub struct DevArena {
    obj: DevObject,
    quantum: Size,
}

fn policy_code(p: Policy) -> u32 {
    match p {
        Policy::InstantFit => POLICY_INSTANT_FIT,
        Policy::BestFit => POLICY_BEST_FIT,
        Policy::FirstFit => POLICY_FIRST_FIT,
        Policy::NextFit => POLICY_NEXT_FIT,
    }
}

fn kind_bits(kinds: SegmentKinds) -> u32 {
    [
        (SegmentKind::Span, SEG_SPAN),
        (SegmentKind::Free, SEG_FREE),
        (SegmentKind::Allocated, SEG_ALLOCATED),
        (SegmentKind::Unflushed, SEG_UNFLUSHED),
    ]
    .iter()
    .filter(|(k, _)| kinds.has(*k))
    .fold(0, |b, (_, bit)| b | 1 << bit)
}

fn segment(s: &WireSegment) -> Segment {
    let range =
        Range::new(Addr(s.base as usize), Addr(s.limit as usize)).unwrap_or(Range::empty(Addr(0)));
    Segment {
        kind: match s.kind {
            SEG_SPAN => SegmentKind::Span,
            SEG_FREE => SegmentKind::Free,
            SEG_UNFLUSHED => SegmentKind::Unflushed,
            _ => SegmentKind::Allocated,
        },
        range,
        requested: Size(s.requested as usize),
        imported: s.flags & SEG_IMPORTED != 0,
        held: s.flags & SEG_HELD != 0,
    }
}

impl DevArena {
    pub(super) fn create(dev: Device, c: &ArenaConfig) -> Result<DevArena, KdevError> {
        let mut a = ArenaCreateArgs {
            quantum: c.quantum.0 as u64,
            max_tags: c.max_tags as u64,
            import_size: c.import_size as u64,
            import_quantum: c.import_quantum as u64,
            default_policy: policy_code(c.default_policy),
            ..ArenaCreateArgs::ZERO
        };
        let fd = dev.fd();
        // SAFETY: `p` points to `a`, the command's argument, live for the call.
        call("ARENA_CREATE", &mut a, |a| a.err, |p| unsafe { ioctl::arena_create(fd, p) })?;
        Ok(DevArena { obj: DevObject::new(dev, a.id), quantum: c.quantum })
    }

    /// The arena's id in its file.
    pub fn id(&self) -> u32 {
        self.obj.id()
    }

    /// The device file that owns it.
    pub fn device(&self) -> &Device {
        self.obj.device()
    }

    /// Everything `ARENA_STATS` reports.
    pub fn stats(&self) -> Result<ArenaStatsArgs, KdevError> {
        let mut a = ArenaStatsArgs { id: self.obj.id(), ..ArenaStatsArgs::ZERO };
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the command's argument, live for the call.
        call("ARENA_STATS", &mut a, |a| a.err, |p| unsafe { ioctl::arena_stats(fd, p) })?;
        Ok(a)
    }

    fn stats_or_zero(&self) -> ArenaStatsArgs {
        self.stats().unwrap_or(ArenaStatsArgs::ZERO)
    }

    /// The segments of `kinds` in address order. A count the device
    /// answers above its own bound on tags is refused (`EPROTO`).
    pub fn segments(&self, kinds: SegmentKinds) -> Result<Vec<Segment>, KdevError> {
        // No arena has more tags than the core allows, whatever the device says.
        let most = usize::try_from(self.obj.device().info().max_tags_per_arena)
            .unwrap_or(usize::MAX)
            .min(vmspace::arena::MAX_TAGS);
        let list = read_list("ARENA_WALK", WireSegment::ZERO, 256, 64, most, |buf| {
            let mut a = ListArgs {
                id: self.obj.id(),
                kinds: kind_bits(kinds),
                buf: buf.as_mut_ptr() as u64,
                cap: buf.len() as u64,
                ..ListArgs::ZERO
            };
            let fd = self.obj.fd();
            // SAFETY: `p` points to `a`, whose `buf` has room for `cap` entries.
            call("ARENA_WALK", &mut a, |a| a.err, |p| unsafe { ioctl::arena_walk(fd, p) })?;
            Ok(a.count)
        })?;
        Ok(list.iter().map(segment).collect())
    }

    fn span(&mut self, base: Addr, size: Size, extend: bool) -> Result<(), ArenaError> {
        let mut a = SpanArgs {
            id: self.obj.id(),
            base: base.0 as u64,
            size: size.0 as u64,
            ..SpanArgs::ZERO
        };
        let fd = self.obj.fd();
        let r = if extend {
            // SAFETY: `p` points to `a`, the command's argument.
            call("ARENA_EXTEND", &mut a, |a| a.err, |p| unsafe { ioctl::arena_extend(fd, p) })
        } else {
            // SAFETY: `p` points to `a`, the command's argument.
            call("ARENA_ADD", &mut a, |a| a.err, |p| unsafe { ioctl::arena_add(fd, p) })
        };
        r.map_err(|e| e.arena())
    }

    fn allocate(&mut self, mut a: AllocArgs) -> Result<(Addr, u32), ArenaError> {
        a.id = self.obj.id();
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the command's argument.
        call("ARENA_ALLOC", &mut a, |a| a.err, |p| unsafe { ioctl::arena_alloc(fd, p) })
            .map_err(|e| e.arena())?;
        Ok((Addr(a.addr as usize), a.tag))
    }

    fn plain(size: Size, policy: Policy, held: bool) -> AllocArgs {
        AllocArgs {
            flags: if held { ALLOC_HELD } else { 0 },
            policy: policy_code(policy),
            size: size.0 as u64,
            ..AllocArgs::ZERO
        }
    }

    fn constrained(c: &Constraints, held: bool) -> AllocArgs {
        let p = c.parts();
        let mut flags = ALLOC_CONSTRAINED | if held { ALLOC_HELD } else { 0 };
        let mut opt = |v: Option<Addr>, bit: u32| {
            v.map_or(0, |a| {
                flags |= bit;
                a.0 as u64
            })
        };
        let (min, max, exact) =
            (opt(p.min, ALLOC_MIN), opt(p.max, ALLOC_MAX), opt(p.exact, ALLOC_EXACT));
        if p.top {
            flags |= ALLOC_TOP;
        }
        AllocArgs {
            flags,
            policy: policy_code(p.policy),
            size: p.size.0 as u64,
            align: p.align.0 as u64,
            phase: p.phase.0 as u64,
            nocross: p.nocross.0 as u64,
            min,
            max,
            exact,
            ..AllocArgs::ZERO
        }
    }

    fn free_cmd(
        &mut self,
        name: &'static str,
        mut a: FreeArgs,
        cmd: unsafe fn(libc::c_int, *mut FreeArgs) -> nix::Result<libc::c_int>,
    ) -> Result<u64, ArenaError> {
        a.id = self.obj.id();
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the argument of `cmd`, one of the free
        // commands (which all take a `FreeArgs`).
        call(name, &mut a, |a| a.err, |p| unsafe { cmd(fd, p) }).map_err(|e| e.arena())?;
        Ok(a.size)
    }

    fn lookup_cmd(&self, addr: Addr, tag: u32) -> Option<(Range, Size)> {
        let mut a = LookupArgs { id: self.obj.id(), tag, addr: addr.0 as u64, ..LookupArgs::ZERO };
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the command's argument.
        call("ARENA_LOOKUP", &mut a, |a| a.err, |p| unsafe { ioctl::arena_lookup(fd, p) }).ok()?;
        let range = Range::new(Addr(a.base as usize), Addr(a.limit as usize))?;
        (a.found == 1).then_some((range, Size(a.requested as usize)))
    }

    /// Destroy the arena now; what it still held (allocations and bytes).
    /// The handle's share of the device file goes either way (the file
    /// closes with its last handle); should `DESTROY` fail, the arena goes
    /// when the file closes.
    pub fn destroy(self) -> Result<(u64, u64), KdevError> {
        self.obj.destroy()
    }
}

impl ArenaTarget for DevArena {
    type Handle = DevHandle;
    type Walk<'a> = std::vec::IntoIter<Segment>;

    fn quantum(&self) -> Size {
        self.quantum
    }
    fn walk(&self, kinds: SegmentKinds) -> Self::Walk<'_> {
        // A failed walk lists nothing; `check` reports what is wrong.
        self.segments(kinds).unwrap_or_default().into_iter()
    }
    fn add(&mut self, base: Addr, size: Size) -> Result<(), ArenaError> {
        self.span(base, size, false)
    }
    fn extend(&mut self, base: Addr, size: Size) -> Result<(), ArenaError> {
        self.span(base, size, true)
    }
    fn alloc(&mut self, size: Size, policy: Policy) -> Result<Addr, ArenaError> {
        self.allocate(Self::plain(size, policy, false)).map(|(a, _)| a)
    }
    fn xalloc(&mut self, c: &Constraints) -> Result<Addr, ArenaError> {
        self.allocate(Self::constrained(c, false)).map(|(a, _)| a)
    }
    fn alloc_handle(&mut self, size: Size, policy: Policy) -> Result<DevHandle, ArenaError> {
        self.allocate(Self::plain(size, policy, true)).map(|(addr, tag)| DevHandle { addr, tag })
    }
    fn xalloc_handle(&mut self, c: &Constraints) -> Result<DevHandle, ArenaError> {
        self.allocate(Self::constrained(c, true)).map(|(addr, tag)| DevHandle { addr, tag })
    }
    fn handle_from_parts(&self, addr: Addr, tag: u32) -> Option<DevHandle> {
        (tag != 0).then_some(DevHandle { addr, tag })
    }
    fn handle_parts(h: DevHandle) -> (Addr, u32) {
        (h.addr, h.tag)
    }
    fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let a = FreeArgs { addr: addr.0 as u64, a: size.0 as u64, ..FreeArgs::ZERO };
        self.free_cmd("ARENA_FREE", a, ioctl::arena_free).map(drop)
    }
    fn free_handle(&mut self, h: DevHandle) -> Result<Size, ArenaError> {
        let a = FreeArgs { addr: h.addr.0 as u64, tag: h.tag, ..FreeArgs::ZERO };
        self.free_cmd("ARENA_FREE_HANDLE", a, ioctl::arena_free_handle).map(|s| Size(s as usize))
    }
    fn free_part(&mut self, alloc: Addr, offset: Size, size: Size) -> Result<(), ArenaError> {
        let a = FreeArgs {
            addr: alloc.0 as u64,
            a: offset.0 as u64,
            b: size.0 as u64,
            ..FreeArgs::ZERO
        };
        self.free_cmd("ARENA_FREE_PART", a, ioctl::arena_free_part).map(drop)
    }
    fn resize(&mut self, addr: Addr, old: Size, new: Size) -> Result<(), ArenaError> {
        let a =
            FreeArgs { addr: addr.0 as u64, a: old.0 as u64, b: new.0 as u64, ..FreeArgs::ZERO };
        self.free_cmd("ARENA_RESIZE", a, ioctl::arena_resize).map(drop)
    }
    fn free_deferred(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let a = FreeArgs { addr: addr.0 as u64, a: size.0 as u64, ..FreeArgs::ZERO };
        self.free_cmd("ARENA_FREE_DEFERRED", a, ioctl::arena_free_deferred).map(drop)
    }
    fn free_handle_deferred(&mut self, h: DevHandle) -> Result<Size, ArenaError> {
        let a = FreeArgs { addr: h.addr.0 as u64, tag: h.tag, ..FreeArgs::ZERO };
        let cmd = ioctl::arena_free_handle_deferred;
        self.free_cmd("ARENA_FREE_HANDLE_DEFERRED", a, cmd).map(|s| Size(s as usize))
    }
    fn flushed(&mut self) -> Size {
        // A failed command made nothing free (and the model says otherwise).
        let done = self.free_cmd("ARENA_FLUSHED", FreeArgs::ZERO, ioctl::arena_flushed);
        Size(done.unwrap_or(0) as usize)
    }
    fn lookup(&self, addr: Addr) -> Option<(Range, Size)> {
        self.lookup_cmd(addr, 0)
    }
    fn lookup_handle(&self, h: DevHandle) -> Option<(Range, Size)> {
        self.lookup_cmd(h.addr, h.tag)
    }
    fn sizes(&self) -> Sizes {
        let s = self.stats_or_zero();
        Sizes {
            allocated: Size(s.allocated as usize),
            free: Size(s.free as usize),
            unflushed: Size(s.unflushed as usize),
            total: Size(s.total as usize),
            imported: Size(s.imported as usize),
        }
    }
    fn counters(&self) -> Counters {
        let s = self.stats_or_zero();
        Counters {
            allocs: s.allocs,
            frees: s.frees,
            failures: s.failures,
            bad_frees: s.bad_frees,
            search_steps: s.search_steps,
            lookups: s.lookups,
            imports: s.imports,
            exports: s.exports,
            export_failures: s.export_failures,
            injected: s.injected,
            deferred_frees: s.deferred_frees,
            flushes: s.flushes,
        }
    }
    fn live(&self) -> usize {
        self.stats_or_zero().live as usize
    }
    fn span_count(&self) -> usize {
        self.stats_or_zero().spans as usize
    }
    fn check(&self) -> Result<(), ArenaError> {
        let mut a = CheckArgs { id: self.obj.id(), ..CheckArgs::ZERO };
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the command's argument.
        call("ARENA_CHECK", &mut a, |a| a.err, |p| unsafe { ioctl::arena_check(fd, p) })
            .map_err(|e| e.arena())
    }
}
