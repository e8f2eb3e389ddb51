//! The C types of both headers, named as in C, with the lists
//! [`decl`](crate::decl) compares against the headers: callback types
//! ([`CALLBACKS`]), structures ([`STRUCTS`]) and constants ([`CONSTS`]).

#![expect(non_camel_case_types, reason = "the C names")]

pub use core::ffi::{c_char, c_int, c_uint, c_void};

use crate::decl::{Const, Signature, Struct};

/// An address (or any integer the arena hands out): `uintptr_t`.
pub type vmspace_addr_t = usize;
/// A size: `size_t`.
pub type vmspace_size_t = usize;
/// vmem(9)'s address type: `uintptr_t`.
pub type vmem_addr_t = usize;
/// vmem(9)'s size type: `size_t`.
pub type vmem_size_t = usize;

/// An arena, as C sees it: opaque, reached only through a pointer.
#[repr(C)]
pub struct vmspace_arena_t {
    _opaque: [u8; 0],
}

/// A VM (a reservation of address space with pages mapped in it), as C
/// sees it: opaque, reached only through a pointer.
#[repr(C)]
pub struct vmspace_vm_t {
    _opaque: [u8; 0],
}

/// Bytes of caller storage `vmem_init` takes (`sizeof(vmem_t)`).
pub const VMEM_STORAGE_BYTES: usize = 2048;

/// A vmem(9) arena. Complete in C (so `vmem_init` can be given static
/// storage), but opaque: its bytes are the library's.
#[repr(C, align(16))]
pub struct vmem_t {
    _opaque: [u8; VMEM_STORAGE_BYTES],
}

/// Define callback aliases (`Option` of an `extern "C"` function pointer,
/// named as the C function typedef) and record their signatures.
macro_rules! callbacks {
    (
        plain { $( $(#[$m:meta])* $name:ident = fn($($arg:ident: $ty:ty),*) -> $ret:ty; )* }
        variadic { $( $(#[$vm:meta])* $vname:ident = fn($($varg:ident: $vty:ty),*) -> $vret:ty; )* }
    ) => {
        $(
            $(#[$m])*
            pub type $name = Option<unsafe extern "C" fn($($arg: $ty),*) -> $ret>;
        )*
        $(
            $(#[$vm])*
            pub type $vname = Option<unsafe extern "C" fn($($varg: $vty),*, ...) -> $vret>;
        )*
        /// Every callback type of the headers (`...` for a C variadic tail).
        pub const CALLBACKS: &[Signature] = &[
            $( Signature { name: stringify!($name), ret: stringify!($ret), args: &[$(stringify!($ty)),*] }, )*
            $( Signature { name: stringify!($vname), ret: stringify!($vret), args: &[$(stringify!($vty),)* "..."] }, )*
        ];
    };
}

callbacks! {
    plain {
    /// Import `size` units for an arena: store the start at `*addrp` and
    /// return 0, or return non-zero. `flags` is 0 (vmem(9)'s import
    /// functions, through `vmem_set_import`, get `M_NOWAIT | M_FIRSTFIT`).
    vmspace_import_fn = fn(arg: *mut c_void, size: vmspace_size_t, flags: c_int, addrp: *mut vmspace_addr_t) -> c_int;
    /// Take back `[addr, addr + size)`, which the import function returned.
    vmspace_release_fn = fn(arg: *mut c_void, addr: vmspace_addr_t, size: vmspace_size_t) -> ();
    /// Called by `vmspace_arena_walk` for each segment; non-zero stops the walk.
    vmspace_walk_fn = fn(arg: *mut c_void, seg: *const vmspace_segment) -> c_int;
    /// vmem(9)'s import function.
    vmem_import_t = fn(arg: *mut c_void, size: vmem_size_t, flags: c_int, addrp: *mut vmem_addr_t) -> c_int;
    /// vmem(9)'s release function.
    vmem_release_t = fn(arg: *mut c_void, addr: vmem_addr_t, size: vmem_size_t) -> ();
    /// vmem(9)'s reclaim function, called when an allocation finds no space.
    vmem_reclaim_t = fn(vm: *mut vmem_t, flags: c_int) -> ();
    /// The error hook of a vmem arena: called on a bad `vmem_free` or
    /// `vmem_xfree` (which return nothing) with what was passed and why.
    vmem_error_hook_t = fn(arg: *mut c_void, vm: *mut vmem_t, what: *const c_char, addr: vmem_addr_t, size: vmem_size_t, error: c_int) -> ();
    }
    variadic {
        /// vmem(9)'s printf-like output function for `vmem_print`.
        vmem_printf_t = fn(fmt: *const c_char) -> c_int;
    }
}

/// Define `#[repr(C)]` structures named as in C and record their fields.
macro_rules! structs {
    ($( $(#[$m:meta])* struct $name:ident { $( $(#[$fm:meta])* $field:ident: $ty:ty, )* } )*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $name { $( $(#[$fm])* pub $field: $ty, )* }
        )*
        /// Every structure of the headers.
        pub const STRUCTS: &[Struct] = &[$(
            Struct {
                name: stringify!($name),
                size: core::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), stringify!($ty), core::mem::offset_of!($name, $field))),*],
            }
        ),*];
    };
}

structs! {
    /// An allocation made by handle: its address and boundary tag. Pass it
    /// back whole to `vmspace_arena_free_handle`.
    #[derive(Default)]
    struct vmspace_handle {
        /// The allocation's address.
        addr: vmspace_addr_t,
        /// Its boundary tag's index (meaningful to its arena only).
        tag: u32,
        /// The fingerprint of its arena (`Handle::arena`).
        arena: u32,
    }
    /// One span or segment, as `vmspace_arena_walk` reports it.
    #[derive(Default)]
    struct vmspace_segment {
        /// The first unit.
        start: vmspace_addr_t,
        /// Units, a multiple of the quantum.
        size: vmspace_size_t,
        /// Allocated segments: the size asked for; others: `size`.
        requested: vmspace_size_t,
        /// `VMSPACE_SEG_SPAN`, `VMSPACE_SEG_FREE`, `VMSPACE_SEG_ALLOCATED` or
        /// `VMSPACE_SEG_UNFLUSHED`.
        kind: c_int,
        /// `VMSPACE_SEG_IMPORTED` (spans), `VMSPACE_SEG_HELD` (allocations
        /// held by a handle, or slabs of the quantum caches).
        flags: c_int,
    }
    /// Where an arena's units are, and its shape.
    #[derive(Default)]
    struct vmspace_sizes {
        /// In allocated segments (quantum-cache slabs included).
        allocated: vmspace_size_t,
        /// In free segments.
        free: vmspace_size_t,
        /// In spans: `allocated + free` and what was freed deferred and is
        /// not flushed yet.
        total: vmspace_size_t,
        /// In imported spans (part of `total`).
        imported: vmspace_size_t,
        /// The largest free segment.
        largest_free: vmspace_size_t,
        /// Live allocations (handles and slabs included).
        live: vmspace_size_t,
        /// Spans, added and imported.
        spans: vmspace_size_t,
        /// `1000 * (1 - largest_free / free)`, rounded up: 0 only for one
        /// free segment.
        fragmentation_permille: c_uint,
        /// Zero.
        reserved: c_uint,
        /// In segments freed deferred (`vmspace_arena_free_deferred`) and
        /// not flushed yet (part of `total`).
        unflushed: vmspace_size_t,
    }
    /// An arena's event counters (they only increase), with its quantum
    /// caches' when it has them.
    #[derive(Default)]
    struct vmspace_counters {
        /// Successful allocations from the arena (slabs included).
        allocs: u64,
        /// Successful frees to the arena.
        frees: u64,
        /// Failed allocations and adds.
        failures: u64,
        /// Frees refused as bad (arena and caches).
        bad_frees: u64,
        /// Segments or hash entries examined while searching.
        search_steps: u64,
        /// Spans imported.
        imports: u64,
        /// Imported spans given back.
        exports: u64,
        /// Faults injected (`vmspace_arena_set_mtbf`).
        injected: u64,
        /// Quantum-cache allocations served from a magazine. A CPU's hits of
        /// a size class are added at its next miss of that class and when
        /// the arena is destroyed (they are counted in the class's magazine
        /// word of the CPU, not in a shared counter), so they may lag.
        qcache_hits: u64,
        /// Quantum-cache allocations that found the magazines empty.
        qcache_misses: u64,
        /// Quantum-cache slabs now.
        qcache_slabs: u64,
        /// Quantum-cache reclaims run.
        qcache_reclaims: u64,
        /// Frees through `vmspace_arena_free_deferred` (also counted in
        /// `frees`).
        deferred_frees: u64,
        /// Calls of `vmspace_arena_flushed` that made something free.
        flushes: u64,
    }
    /// A VM's range and what is mapped in it (`vmspace_vm_info`).
    #[derive(Default)]
    struct vmspace_vm_info {
        /// The first address of the VM: a multiple of the grain.
        base: vmspace_addr_t,
        /// Its bytes (the limit is `base + size`, a multiple of the grain).
        size: vmspace_size_t,
        /// What the base and limit are multiples of.
        grain: vmspace_size_t,
        /// The page size: what `map` and `unmap` ranges are multiples of.
        page_size: vmspace_size_t,
        /// Bytes mapped by `vmspace_vm_map` now.
        mapped: vmspace_size_t,
        /// Address space reserved, the VM's bookkeeping past its limit
        /// included.
        reserved: vmspace_size_t,
        /// Bytes of the VM's bookkeeping mapped now (`vmspace_vm_trim`
        /// gives back what records nothing mapped).
        metadata: vmspace_size_t,
    }
    /// Everything `vmspace_arena_create_ex` can set. Zero means the default
    /// for every field but `quantum`.
    struct vmspace_params {
        /// A name (copied; up to `VMSPACE_NAME_MAX` bytes kept), or NULL.
        name: *const c_char,
        /// The initial span's start.
        base: vmspace_addr_t,
        /// The initial span's size (0: no initial span).
        size: vmspace_size_t,
        /// The unit of allocation: a power of two, at most 2^27.
        quantum: vmspace_size_t,
        /// Sizes up to this go through per-CPU quantum caches (0: none;
        /// rounded down to at most 8 quanta).
        qcache_max: vmspace_size_t,
        /// The arena's default policy (`VMSPACE_INSTANTFIT` ... ) or 0.
        flags: c_int,
        /// Zero.
        reserved: c_int,
        /// Most boundary tags the arena may use (0: `VMSPACE_DEFAULT_TAGS`).
        max_tags: vmspace_size_t,
        /// Import spans from this arena when out of space, or NULL.
        parent: *mut vmspace_arena_t,
    }
}

impl Default for vmspace_params {
    fn default() -> Self {
        vmspace_params {
            name: core::ptr::null(),
            base: 0,
            size: 0,
            quantum: 0,
            qcache_max: 0,
            flags: 0,
            reserved: 0,
            max_tags: 0,
            parent: core::ptr::null_mut(),
        }
    }
}

/// Define the constants of the headers and record their values.
macro_rules! consts {
    ($( $(#[$m:meta])* $name:ident: $ty:ty = $value:expr; )*) => {
        $( $(#[$m])* pub const $name: $ty = $value; )*
        /// Every constant of the headers.
        pub const CONSTS: &[Const] = &[$( Const { name: stringify!($name), value: $name as u64 } ),*];
    };
}

consts! {
    /// Instant fit (O(1): power-of-two free lists), vmem's default.
    VMSPACE_INSTANTFIT: c_int = 0x01;
    /// The smallest free segment that fits.
    VMSPACE_BESTFIT: c_int = 0x02;
    /// The lowest-addressed free segment that fits.
    VMSPACE_FIRSTFIT: c_int = 0x04;
    /// The first fit at or after a rotor (IDs reused as late as possible).
    VMSPACE_NEXTFIT: c_int = 0x08;
    /// Place at the top of the segment chosen (first fit: the highest one).
    VMSPACE_TOP: c_int = 0x10;
    /// Wait for space until some is freed (never fails for lack of space).
    VMSPACE_WAIT: c_int = 0x20;
    /// `vmspace_arena_xalloc`: the allocation must start at `exact`.
    VMSPACE_EXACT: c_int = 0x40;
    /// A wait ends with `-EINTR` once a fatal signal is pending (kernel).
    VMSPACE_KILLABLE: c_int = 0x80;
    /// Walk span markers.
    VMSPACE_SEG_SPAN: c_int = 0x1;
    /// Walk free segments.
    VMSPACE_SEG_FREE: c_int = 0x2;
    /// Walk allocated segments.
    VMSPACE_SEG_ALLOCATED: c_int = 0x4;
    /// Walk segments freed but not yet flushed (not reusable until then).
    VMSPACE_SEG_UNFLUSHED: c_int = 0x8;
    /// Walk everything.
    VMSPACE_SEG_ALL: c_int = 0xf;
    /// Segment flag: a span imported from the arena's source.
    VMSPACE_SEG_IMPORTED: c_int = 0x1;
    /// Segment flag: an allocation held by a handle (or a quantum-cache slab).
    VMSPACE_SEG_HELD: c_int = 0x2;
    /// `vmspace_vm_protect`: no access (touching the pages faults; they
    /// stay mapped).
    VMSPACE_PROT_NONE: c_int = 0x0;
    /// `vmspace_vm_protect`: readable.
    VMSPACE_PROT_READ: c_int = 0x1;
    /// `vmspace_vm_protect`: writable (with `VMSPACE_PROT_READ` only).
    VMSPACE_PROT_WRITE: c_int = 0x2;
    /// Bytes of an arena's name kept (the rest is cut off).
    VMSPACE_NAME_MAX: usize = 31;
    /// Boundary tags an arena may use unless told otherwise (1M: 32 MiB of
    /// address space, mapped as it is used).
    VMSPACE_DEFAULT_TAGS: usize = 1 << 20;
    /// Buckets of `vmspace_arena_histogram` (one per bit of a size).
    VMSPACE_HISTOGRAM_BINS: usize = vmspace::arena::FREE_LISTS;
    /// The C API's version: major * 10000 + minor * 100 + patch.
    VMSPACE_VERSION: c_int = 100;
    /// vmem(9): no lower address limit.
    VMEM_ADDR_MIN: vmem_addr_t = 0;
    /// vmem(9): the lowest address quantum caches hand out.
    VMEM_ADDR_QCACHE_MIN: vmem_addr_t = 1;
    /// vmem(9): no upper address limit.
    VMEM_ADDR_MAX: vmem_addr_t = !0;
    /// vmem_size(): allocated units.
    VMEM_ALLOC: c_int = 0x01;
    /// vmem_size(): free units.
    VMEM_FREE: c_int = 0x02;
    /// vmem_size(): the largest free segment.
    VMEM_MAXFREE: c_int = 0x10;
    /// Do not wait for space (FreeBSD's user-space value).
    M_NOWAIT: c_int = 0x0800;
    /// Wait for space (FreeBSD's kernel value; any flags without `M_NOWAIT` wait).
    M_WAITOK: c_int = 0x0002;
    /// vmem(9)'s "fast fit": instant fit.
    M_FIRSTFIT: c_int = 0x1000;
    /// Best fit.
    M_BESTFIT: c_int = 0x2000;
    /// Next fit (a rotor).
    M_NEXTFIT: c_int = 0x8000;
    /// Instant fit, by its vmem paper name: the same as `M_FIRSTFIT`.
    M_INSTANTFIT: c_int = 0x1000;
    /// Every strategy flag.
    VMEM_FITMASK: c_int = 0x1000 | 0x2000 | 0x8000;
    /// Bytes of `vmem_t` (the storage `vmem_init` takes).
    VMEM_STORAGE: usize = VMEM_STORAGE_BYTES;
}
