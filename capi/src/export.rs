//! The `extern "C"` symbols: one list per header, written once, expanded
//! either into `#[no_mangle]` functions for a platform
//! ([`export_native!`](crate::export_native),
//! [`export_vmem!`](crate::export_vmem)) or into the signature lists the
//! header checks compare ([`NATIVE`], [`VMEM`]).

use crate::decl::Signature;

/// Expand a function list: `export [Platform]` makes the symbols, `list []`
/// the signatures.
#[doc(hidden)]
#[macro_export]
macro_rules! __c_fns {
    (export [$p:ty] $( $(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            $(#[$m])*
            ///
            /// # Safety
            ///
            /// The contract of its declaration in the header.
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
                // SAFETY: the caller keeps the header's contract, which is
                // the implementation's.
                unsafe { $crate::Api::<$p>::$name($($arg),*) }
            }
        )*
    };
    (list [] $( $(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        &[$(
            $crate::decl::Signature { name: stringify!($name), ret: stringify!($ret), args: &[$(stringify!($ty)),*] }
        ),*]
    };
}

/// The native API (`vmspace.h`), in `mode` (`export Platform` or `list`).
#[doc(hidden)]
#[macro_export]
macro_rules! __native_fns {
    ($mode:ident $($p:ty)?) => { $crate::__c_fns! { $mode [$($p)?]
        /// The text of an errno value as this API uses it.
        fn vmspace_strerror(err: c_int) -> *const c_char;
        /// The library's `VMSPACE_VERSION`.
        fn vmspace_version() -> c_int;
        /// An arena with one initial span, or NULL.
        fn vmspace_arena_create(name: *const c_char, base: vmspace_addr_t, size: vmspace_size_t, quantum: vmspace_size_t, qcache_max: vmspace_size_t, flags: c_int) -> *mut vmspace_arena_t;
        /// An arena as the parameters ask; 0 or a negative errno.
        fn vmspace_arena_create_ex(params: *const vmspace_params, arenap: *mut *mut vmspace_arena_t) -> c_int;
        /// Destroy an arena.
        fn vmspace_arena_destroy(arena: *mut vmspace_arena_t) -> c_int;
        /// Add a span.
        fn vmspace_arena_add(arena: *mut vmspace_arena_t, addr: vmspace_addr_t, size: vmspace_size_t, flags: c_int) -> c_int;
        /// Import through the caller's functions.
        fn vmspace_arena_set_import(arena: *mut vmspace_arena_t, import: vmspace_import_fn, release: vmspace_release_fn, arg: *mut c_void, quantum: vmspace_size_t) -> c_int;
        /// Import from a VM of the arena's own.
        fn vmspace_arena_set_vm(arena: *mut vmspace_arena_t, size: vmspace_size_t, flags: c_int) -> c_int;
        /// The arena's VM.
        fn vmspace_arena_vm_info(arena: *mut vmspace_arena_t, infop: *mut vmspace_vm_info) -> c_int;
        /// Limit the arena's spans (imports fail past it).
        fn vmspace_arena_set_limit(arena: *mut vmspace_arena_t, limit: vmspace_size_t) -> c_int;
        /// Inject allocation failures.
        fn vmspace_arena_set_mtbf(arena: *mut vmspace_arena_t, seed: u64, mtbf: c_uint) -> c_int;
        /// Allocate.
        fn vmspace_arena_alloc(arena: *mut vmspace_arena_t, size: vmspace_size_t, flags: c_int, addrp: *mut vmspace_addr_t) -> c_int;
        /// Allocate, waiting for space at most this long.
        fn vmspace_arena_alloc_timed(arena: *mut vmspace_arena_t, size: vmspace_size_t, flags: c_int, timeout_ns: u64, addrp: *mut vmspace_addr_t) -> c_int;
        /// Allocate with constraints.
        fn vmspace_arena_xalloc(arena: *mut vmspace_arena_t, size: vmspace_size_t, align: vmspace_size_t, phase: vmspace_size_t, nocross: vmspace_size_t, min: vmspace_addr_t, max: vmspace_addr_t, exact: vmspace_addr_t, flags: c_int, addrp: *mut vmspace_addr_t) -> c_int;
        /// Free (checked).
        fn vmspace_arena_free(arena: *mut vmspace_arena_t, addr: vmspace_addr_t, size: vmspace_size_t) -> c_int;
        /// Free into the freed-but-not-flushed state.
        fn vmspace_arena_free_deferred(arena: *mut vmspace_arena_t, addr: vmspace_addr_t, size: vmspace_size_t) -> c_int;
        /// The caller flushed: what it freed deferred becomes free.
        fn vmspace_arena_flushed(arena: *mut vmspace_arena_t, freedp: *mut vmspace_size_t) -> c_int;
        /// Allocate by handle.
        fn vmspace_arena_alloc_handle(arena: *mut vmspace_arena_t, size: vmspace_size_t, flags: c_int, handlep: *mut vmspace_handle) -> c_int;
        /// Allocate by handle with constraints.
        fn vmspace_arena_xalloc_handle(arena: *mut vmspace_arena_t, size: vmspace_size_t, align: vmspace_size_t, phase: vmspace_size_t, nocross: vmspace_size_t, min: vmspace_addr_t, max: vmspace_addr_t, exact: vmspace_addr_t, flags: c_int, handlep: *mut vmspace_handle) -> c_int;
        /// Free by handle (checked).
        fn vmspace_arena_free_handle(arena: *mut vmspace_arena_t, handle: vmspace_handle, sizep: *mut vmspace_size_t) -> c_int;
        /// Free by handle into the freed-but-not-flushed state.
        fn vmspace_arena_free_handle_deferred(arena: *mut vmspace_arena_t, handle: vmspace_handle, sizep: *mut vmspace_size_t) -> c_int;
        /// Reclaim the quantum caches.
        fn vmspace_arena_reclaim(arena: *mut vmspace_arena_t) -> c_int;
        /// The arena's name.
        fn vmspace_arena_name(arena: *mut vmspace_arena_t) -> *const c_char;
        /// The arena's quantum.
        fn vmspace_arena_quantum(arena: *mut vmspace_arena_t) -> vmspace_size_t;
        /// Sizes.
        fn vmspace_arena_sizes(arena: *mut vmspace_arena_t, sizesp: *mut vmspace_sizes) -> c_int;
        /// Counters.
        fn vmspace_arena_counters(arena: *mut vmspace_arena_t, countersp: *mut vmspace_counters) -> c_int;
        /// The free-size histogram.
        fn vmspace_arena_histogram(arena: *mut vmspace_arena_t, bins: *mut u64, nbins: vmspace_size_t) -> c_int;
        /// Walk spans and segments.
        fn vmspace_arena_walk(arena: *mut vmspace_arena_t, kinds_mask: c_int, walk: vmspace_walk_fn, arg: *mut c_void) -> c_int;
        /// Verify every invariant.
        fn vmspace_arena_check(arena: *mut vmspace_arena_t) -> c_int;
        /// Whether a range lies inside one span.
        fn vmspace_arena_contains(arena: *mut vmspace_arena_t, addr: vmspace_addr_t, size: vmspace_size_t) -> c_int;
        /// Reserve a VM.
        fn vmspace_vm_create(size: vmspace_size_t, grain: vmspace_size_t, flags: c_int, vmp: *mut *mut vmspace_vm_t) -> c_int;
        /// Release a VM and every page in it.
        fn vmspace_vm_destroy(vm: *mut vmspace_vm_t) -> c_int;
        /// Map pages.
        fn vmspace_vm_map(vm: *mut vmspace_vm_t, addr: vmspace_addr_t, size: vmspace_size_t) -> c_int;
        /// Unmap pages.
        fn vmspace_vm_unmap(vm: *mut vmspace_vm_t, addr: vmspace_addr_t, size: vmspace_size_t) -> c_int;
        /// Set the access to mapped pages.
        fn vmspace_vm_protect(vm: *mut vmspace_vm_t, addr: vmspace_addr_t, size: vmspace_size_t, prot: c_int) -> c_int;
        /// Whether a range is wholly mapped.
        fn vmspace_vm_mapped(vm: *mut vmspace_vm_t, addr: vmspace_addr_t, size: vmspace_size_t) -> c_int;
        /// The VM's range and what is mapped.
        fn vmspace_vm_info(vm: *mut vmspace_vm_t, infop: *mut vmspace_vm_info) -> c_int;
        /// Give back bookkeeping pages that record nothing.
        fn vmspace_vm_trim(vm: *mut vmspace_vm_t) -> c_int;
        /// Verify the VM's bookkeeping.
        fn vmspace_vm_check(vm: *mut vmspace_vm_t) -> c_int;
    } };
}

/// The vmem(9) API (`vmspace/vmem.h`), in `mode`.
#[doc(hidden)]
#[macro_export]
macro_rules! __vmem_fns {
    ($mode:ident $($p:ty)?) => { $crate::__c_fns! { $mode [$($p)?]
        /// vmem(9) `vmem_create`.
        fn vmem_create(name: *const c_char, base: vmem_addr_t, size: vmem_size_t, quantum: vmem_size_t, qcache_max: vmem_size_t, flags: c_int) -> *mut vmem_t;
        /// vmem(9) `vmem_init`.
        fn vmem_init(vm: *mut vmem_t, name: *const c_char, base: vmem_addr_t, size: vmem_size_t, quantum: vmem_size_t, qcache_max: vmem_size_t, flags: c_int) -> *mut vmem_t;
        /// vmem(9) `vmem_destroy`.
        fn vmem_destroy(vm: *mut vmem_t) -> ();
        /// vmem(9) `vmem_set_import`.
        fn vmem_set_import(vm: *mut vmem_t, importfn: vmem_import_t, releasefn: vmem_release_t, arg: *mut c_void, import_quantum: vmem_size_t) -> ();
        /// vmem(9) `vmem_set_limit`.
        fn vmem_set_limit(vm: *mut vmem_t, limit: vmem_size_t) -> ();
        /// vmem(9) `vmem_set_reclaim`.
        fn vmem_set_reclaim(vm: *mut vmem_t, reclaimfn: vmem_reclaim_t) -> ();
        /// The error hook of calls that return nothing (not in vmem(9)).
        fn vmem_set_error_hook(vm: *mut vmem_t, hook: vmem_error_hook_t, arg: *mut c_void) -> ();
        /// vmem(9) `vmem_alloc`.
        fn vmem_alloc(vm: *mut vmem_t, size: vmem_size_t, flags: c_int, addrp: *mut vmem_addr_t) -> c_int;
        /// vmem(9) `vmem_free`.
        fn vmem_free(vm: *mut vmem_t, addr: vmem_addr_t, size: vmem_size_t) -> ();
        /// vmem(9) `vmem_xalloc`.
        fn vmem_xalloc(vm: *mut vmem_t, size: vmem_size_t, align: vmem_size_t, phase: vmem_size_t, nocross: vmem_size_t, minaddr: vmem_addr_t, maxaddr: vmem_addr_t, flags: c_int, addrp: *mut vmem_addr_t) -> c_int;
        /// vmem(9) `vmem_xfree`.
        fn vmem_xfree(vm: *mut vmem_t, addr: vmem_addr_t, size: vmem_size_t) -> ();
        /// vmem(9) `vmem_add`.
        fn vmem_add(vm: *mut vmem_t, addr: vmem_addr_t, size: vmem_size_t, flags: c_int) -> c_int;
        /// vmem(9) `vmem_roundup_size`.
        fn vmem_roundup_size(vm: *mut vmem_t, size: vmem_size_t) -> vmem_size_t;
        /// vmem(9) `vmem_size`.
        fn vmem_size(vm: *mut vmem_t, typemask: c_int) -> vmem_size_t;
        /// vmem(9) `vmem_whatis`.
        fn vmem_whatis(addr: vmem_addr_t, pr: vmem_printf_t) -> ();
        /// vmem(9) `vmem_print`.
        fn vmem_print(addr: vmem_addr_t, modif: *const c_char, pr: vmem_printf_t) -> ();
        /// vmem(9) `vmem_printall`.
        fn vmem_printall(modif: *const c_char, pr: vmem_printf_t) -> ();
        /// vmem(9) `vmem_startup`.
        fn vmem_startup() -> ();
    } };
}

/// Make the native API's `extern "C"` symbols (`vmspace.h`) for the
/// platform `$p`, in a module `vmspace_native_api` of the calling crate.
///
/// ```ignore
/// vmspace_capi::export_native!(MyPlatform);
/// ```
#[macro_export]
macro_rules! export_native {
    ($p:ty) => {
        #[doc(hidden)]
        pub(crate) type VmspaceNativePlatform = $p;

        /// The native C API (`vmspace.h`).
        pub mod vmspace_native_api {
            #![allow(non_camel_case_types, clippy::unused_unit)]
            use $crate::ctypes::*;
            $crate::__native_fns!(export super::VmspaceNativePlatform);
        }
    };
}

/// Make the vmem(9) API's `extern "C"` symbols (`vmspace/vmem.h`) for the
/// platform `$p`, in a module `vmspace_vmem_api` of the calling crate.
#[macro_export]
macro_rules! export_vmem {
    ($p:ty) => {
        #[doc(hidden)]
        pub(crate) type VmspaceVmemPlatform = $p;

        /// The vmem(9) C API (`vmspace/vmem.h`).
        pub mod vmspace_vmem_api {
            #![allow(non_camel_case_types, clippy::unused_unit)]
            use $crate::ctypes::*;
            $crate::__vmem_fns!(export super::VmspaceVmemPlatform);
        }
    };
}

/// Every function of `vmspace.h`, as the symbols are defined.
pub const NATIVE: &[Signature] = crate::__native_fns!(list);

/// Every function of `vmspace/vmem.h`, as the symbols are defined.
pub const VMEM: &[Signature] = crate::__vmem_fns!(list);
