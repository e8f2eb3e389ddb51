//! The argument structures of the commands in [`cmd`](crate::cmd), and the
//! entries the list commands write to user buffers. Fields marked *out* are
//! written by the device; everything else is read by it.

use crate::error::WireError;

/// [`VersionArgs::features`]: the VM backend changes page protection
/// (`VM_PROTECT` works).
pub const FEATURE_PROTECT: u32 = 1;
/// [`VersionArgs::features`]: VM reservations are sparse (address space
/// only; pages are committed when mapped).
pub const FEATURE_SPARSE: u32 = 2;

/// [`AllocArgs::flags`]: hold the allocation by a handle
/// (`alloc_handle`/`xalloc_handle`) rather than by address.
pub const ALLOC_HELD: u32 = 1;
/// [`AllocArgs::flags`]: a constrained allocation (`xalloc`): `align`,
/// `phase`, `nocross` and the flags below apply.
pub const ALLOC_CONSTRAINED: u32 = 2;
/// [`AllocArgs::flags`]: `min` applies.
pub const ALLOC_MIN: u32 = 4;
/// [`AllocArgs::flags`]: `max` applies.
pub const ALLOC_MAX: u32 = 8;
/// [`AllocArgs::flags`]: `exact` applies.
pub const ALLOC_EXACT: u32 = 16;
/// [`AllocArgs::flags`]: place the allocation at the top of the segment.
pub const ALLOC_TOP: u32 = 32;
/// Every [`AllocArgs::flags`] bit defined.
pub const ALLOC_FLAGS: u32 = 63;

/// Policies: instant fit.
pub const POLICY_INSTANT_FIT: u32 = 0;
/// Policies: best fit.
pub const POLICY_BEST_FIT: u32 = 1;
/// Policies: first fit.
pub const POLICY_FIRST_FIT: u32 = 2;
/// Policies: next fit.
pub const POLICY_NEXT_FIT: u32 = 3;
/// Policies: the arena's default, set when it was made.
pub const POLICY_DEFAULT: u32 = u32::MAX;

/// Segment kinds, for [`WireSegment::kind`] and as bits of
/// [`ListArgs::kinds`] (`1 << kind`): a span.
pub const SEG_SPAN: u32 = 0;
/// A free segment.
pub const SEG_FREE: u32 = 1;
/// An allocated segment.
pub const SEG_ALLOCATED: u32 = 2;
/// A segment freed but not yet flushed.
pub const SEG_UNFLUSHED: u32 = 3;
/// [`WireSegment::flags`]: a span imported from the source.
pub const SEG_IMPORTED: u32 = 1;
/// [`WireSegment::flags`]: an allocation held by a handle.
pub const SEG_HELD: u32 = 2;

/// Protections, for [`VmRangeArgs::prot`]: no access.
pub const PROT_NONE: u32 = 0;
/// Read only.
pub const PROT_READ: u32 = 1;
/// Read and write.
pub const PROT_READ_WRITE: u32 = 2;

/// Entries in [`ArenaStatsArgs::histogram`] (the arena's free lists).
pub const HISTOGRAM_LEN: usize = 64;

plain! {
    /// [`VERSION`](crate::cmd::VERSION) (*out*, all of it): what the device
    /// is and the bounds on what one open file may hold.
    pub struct VersionArgs {
        /// [`ABI_VERSION`](crate::ABI_VERSION) of the device.
        pub abi_version: u32,
        /// The kernel's page size.
        pub page_size: u32,
        /// `FEATURE_*` bits.
        pub features: u32,
        /// Objects (arenas and VMs) one file may hold at once.
        pub max_objects: u32,
        /// Boundary tags one arena may have (its `max_tags`).
        pub max_tags_per_arena: u64,
        /// Boundary tags all of one file's arenas may have together.
        pub max_tags_per_file: u64,
        /// Bytes of address space all of one file's VMs (and arena sources)
        /// may reserve together, each counted as its size rounded up to its
        /// grain, plus a grain (what aligning it may take).
        pub max_reserved_per_file: u64,
        /// Bytes all of one file's VMs may have mapped at once.
        pub max_mapped_per_file: u64,
        /// Bytes one `VM_READ`/`VM_WRITE` may move.
        pub max_io: u64,
        /// The page backend of VMs (UTF-8, NUL-padded).
        pub backend: [u8; 48],
    }

    /// [`ARENA_CREATE`](crate::cmd::ARENA_CREATE): a new arena.
    pub struct ArenaCreateArgs {
        /// The quantum (a power of two, at most 2^27).
        pub quantum: u64,
        /// Boundary tags the arena may use (at least the arena's minimum,
        /// at most [`VersionArgs::max_tags_per_arena`]).
        pub max_tags: u64,
        /// 0: no source. Otherwise the size of a VM the device reserves for
        /// the arena to import from (mapping what it imports, unmapping what
        /// it gives back), counted against the file's reserved bytes.
        pub import_size: u64,
        /// The VM's grain and the arena's import quantum (0: the page size).
        pub import_quantum: u64,
        /// The policy of allocations that ask for `POLICY_DEFAULT`.
        pub default_policy: u32,
        /// Must be zero.
        pub flags: u32,
        /// *out*: the arena's id.
        pub id: u32,
        /// Must be zero.
        pub _pad: u32,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`DESTROY`](crate::cmd::DESTROY): destroy an object now (closing the
    /// file destroys all of them).
    pub struct DestroyArgs {
        /// The object.
        pub id: u32,
        /// Must be zero.
        pub _pad: u32,
        /// *out*: live allocations (arena) or mapped pages (VM) it still had.
        pub leaked: u64,
        /// *out*: their bytes.
        pub leaked_bytes: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`ARENA_ADD`](crate::cmd::ARENA_ADD),
    /// [`ARENA_EXTEND`](crate::cmd::ARENA_EXTEND): a span.
    pub struct SpanArgs {
        /// The arena.
        pub id: u32,
        /// Must be zero.
        pub _pad: u32,
        /// First address.
        pub base: u64,
        /// Size.
        pub size: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`ARENA_ALLOC`](crate::cmd::ARENA_ALLOC): `alloc`, `xalloc`,
    /// `alloc_handle` or `xalloc_handle`, as `flags` say.
    pub struct AllocArgs {
        /// The arena.
        pub id: u32,
        /// `ALLOC_*` bits.
        pub flags: u32,
        /// `POLICY_*`.
        pub policy: u32,
        /// *out*: the handle's tag (held allocations), else 0.
        pub tag: u32,
        /// Size asked for.
        pub size: u64,
        /// Alignment (0: the quantum); constrained only.
        pub align: u64,
        /// Phase; constrained only.
        pub phase: u64,
        /// Boundary not to cross (0: none); constrained only.
        pub nocross: u64,
        /// Lowest address, with `ALLOC_MIN`.
        pub min: u64,
        /// Address to end at or below, with `ALLOC_MAX`.
        pub max: u64,
        /// Exact address, with `ALLOC_EXACT`.
        pub exact: u64,
        /// *out*: the address.
        pub addr: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`ARENA_FREE`](crate::cmd::ARENA_FREE) (`addr`, `a` = size),
    /// [`ARENA_FREE_HANDLE`](crate::cmd::ARENA_FREE_HANDLE) (`addr`, `tag`),
    /// [`ARENA_FREE_PART`](crate::cmd::ARENA_FREE_PART) (`addr`, `a` =
    /// offset, `b` = size), [`ARENA_RESIZE`](crate::cmd::ARENA_RESIZE)
    /// (`addr`, `a` = old size, `b` = new size),
    /// [`ARENA_FREE_DEFERRED`](crate::cmd::ARENA_FREE_DEFERRED) (`addr`,
    /// `a` = size),
    /// [`ARENA_FREE_HANDLE_DEFERRED`](crate::cmd::ARENA_FREE_HANDLE_DEFERRED)
    /// (`addr`, `tag`), [`ARENA_FLUSHED`](crate::cmd::ARENA_FLUSHED)
    /// (nothing in; `size` out).
    pub struct FreeArgs {
        /// The arena.
        pub id: u32,
        /// A handle's tag (`ARENA_FREE_HANDLE`, `ARENA_FREE_HANDLE_DEFERRED`),
        /// else zero.
        pub tag: u32,
        /// The address.
        pub addr: u64,
        /// First size (see above).
        pub a: u64,
        /// Second size (see above), else zero.
        pub b: u64,
        /// *out*: `ARENA_FREE_HANDLE`: the size the allocation was asked
        /// with; `ARENA_FLUSHED`: the bytes that became free.
        pub size: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`ARENA_LOOKUP`](crate::cmd::ARENA_LOOKUP): the live allocation at
    /// an address (`tag` 0) or held by a handle.
    pub struct LookupArgs {
        /// The arena.
        pub id: u32,
        /// A handle's tag, or 0 to look up by address.
        pub tag: u32,
        /// The address.
        pub addr: u64,
        /// *out*: 1 if found.
        pub found: u32,
        /// Must be zero.
        pub _pad: u32,
        /// *out*: the allocation's first address.
        pub base: u64,
        /// *out*: its limit (rounded to the quantum).
        pub limit: u64,
        /// *out*: the size asked for.
        pub requested: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`ARENA_WALK`](crate::cmd::ARENA_WALK) ([`WireSegment`]s) and
    /// [`VM_RUNS`](crate::cmd::VM_RUNS) ([`WireRange`]s): a list written to
    /// a user buffer.
    pub struct ListArgs {
        /// The object.
        pub id: u32,
        /// `ARENA_WALK`: the kinds to list, `1 << SEG_*` bits; `VM_RUNS`: 0.
        pub kinds: u32,
        /// The user buffer.
        pub buf: u64,
        /// Entries it has room for.
        pub cap: u64,
        /// *out*: entries there are (only the first `cap` are written).
        pub count: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// One segment of an arena walk.
    pub struct WireSegment {
        /// First address.
        pub base: u64,
        /// Limit.
        pub limit: u64,
        /// Allocated segments: the size asked for; others: the size.
        pub requested: u64,
        /// `SEG_SPAN`, `SEG_FREE`, `SEG_ALLOCATED` or `SEG_UNFLUSHED`.
        pub kind: u32,
        /// `SEG_IMPORTED`, `SEG_HELD`.
        pub flags: u32,
    }

    /// One range (a VM's mapped run).
    pub struct WireRange {
        /// First address.
        pub base: u64,
        /// Limit.
        pub limit: u64,
    }

    /// [`ARENA_STATS`](crate::cmd::ARENA_STATS) (*out* but `id`).
    pub struct ArenaStatsArgs {
        /// The arena.
        pub id: u32,
        /// Fragmentation, per mille.
        pub fragmentation: u32,
        /// The quantum.
        pub quantum: u64,
        /// Bytes in allocated segments.
        pub allocated: u64,
        /// Bytes in free segments.
        pub free: u64,
        /// Bytes in spans.
        pub total: u64,
        /// Bytes in imported spans.
        pub imported: u64,
        /// Counter: allocations.
        pub allocs: u64,
        /// Counter: frees.
        pub frees: u64,
        /// Counter: failures.
        pub failures: u64,
        /// Counter: bad frees.
        pub bad_frees: u64,
        /// Counter: search steps.
        pub search_steps: u64,
        /// Counter: lookups.
        pub lookups: u64,
        /// Counter: imports.
        pub imports: u64,
        /// Counter: exports.
        pub exports: u64,
        /// Counter: export failures.
        pub export_failures: u64,
        /// Counter: injected faults.
        pub injected: u64,
        /// Live allocations.
        pub live: u64,
        /// Spans.
        pub spans: u64,
        /// The largest free segment.
        pub largest_free: u64,
        /// Boundary tags in use.
        pub tags_used: u64,
        /// Boundary tags the arena may use.
        pub tags_max: u64,
        /// Bytes the source VM has mapped (0 without a source).
        pub source_mapped: u64,
        /// Bytes the source VM reserves (0 without a source).
        pub source_reserved: u64,
        /// Free segments per free list (list `i`: sizes in `[2^i, 2^(i+1))`).
        pub histogram: [u64; HISTOGRAM_LEN],
        /// Bytes freed with `ARENA_FREE_DEFERRED` and not yet flushed.
        pub unflushed: u64,
        /// Counter: deferred frees.
        pub deferred_frees: u64,
        /// Counter: flushes that made something free.
        pub flushes: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`ARENA_CHECK`](crate::cmd::ARENA_CHECK),
    /// [`VM_CHECK`](crate::cmd::VM_CHECK): run the object's `check()`.
    pub struct CheckArgs {
        /// The object.
        pub id: u32,
        /// Must be zero.
        pub _pad: u32,
        /// *out*: what `check()` found, or why the command failed.
        pub err: WireError,
    }

    /// [`VM_RESERVE`](crate::cmd::VM_RESERVE): a new VM.
    pub struct VmReserveArgs {
        /// Bytes to reserve (not zero; rounded up to a multiple of the
        /// grain, as `Vm::reserve` does).
        pub size: u64,
        /// The grain (a power of two, at least the page size; 0: the page).
        pub grain: u64,
        /// *out*: the VM's id.
        pub id: u32,
        /// Must be zero.
        pub _pad: u32,
        /// *out*: its first address.
        pub base: u64,
        /// *out*: its limit.
        pub limit: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`VM_MAP`](crate::cmd::VM_MAP), [`VM_UNMAP`](crate::cmd::VM_UNMAP),
    /// [`VM_PROTECT`](crate::cmd::VM_PROTECT): a range of a VM.
    pub struct VmRangeArgs {
        /// The VM.
        pub id: u32,
        /// `VM_PROTECT`: `PROT_*`; others: zero.
        pub prot: u32,
        /// First address.
        pub addr: u64,
        /// Size.
        pub size: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`VM_STATS`](crate::cmd::VM_STATS) (*out* but `id`).
    pub struct VmStatsArgs {
        /// The VM.
        pub id: u32,
        /// Its page size.
        pub page_size: u32,
        /// First address.
        pub base: u64,
        /// Limit.
        pub limit: u64,
        /// Bytes reserved (with its metadata).
        pub reserved: u64,
        /// Bytes mapped for the client.
        pub mapped: u64,
        /// Bytes of metadata mapped.
        pub metadata_mapped: u64,
        /// Runs of mapped pages.
        pub runs: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }

    /// [`VM_READ`](crate::cmd::VM_READ), [`VM_WRITE`](crate::cmd::VM_WRITE):
    /// copy between a user buffer and mapped pages of a VM.
    pub struct VmIoArgs {
        /// The VM.
        pub id: u32,
        /// Must be zero.
        pub _pad: u32,
        /// First address in the VM.
        pub addr: u64,
        /// Bytes (at most [`VersionArgs::max_io`]).
        pub len: u64,
        /// The user buffer.
        pub buf: u64,
        /// *out*: why it failed.
        pub err: WireError,
    }
}
