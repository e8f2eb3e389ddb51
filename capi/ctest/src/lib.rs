//! # vmspace-capi-ctest
//!
//! The C tests of `libvmspace`: C files in `c/` (and the vmem(9) example in
//! `examples/c/`), compiled by the build script with the `cc` crate against
//! `vmspace.h` and `vmspace/vmem.h`, linked with the user-space C API
//! ([`vmspace_capi_user`]) and run by `cargo test` (`tests/c_api.rs`). Each
//! C entry point returns the number of checks that failed, having printed
//! each to standard error. The build script also writes and compiles the
//! declaration check (every function assigned to a pointer of its Rust
//! type, layouts and constants asserted), so a header that drifts fails the
//! build.

use core::ffi::c_int;

pub use vmspace_capi_user::UserPlatform;

extern "C" {
    /// The generated declaration check: how many functions and callback
    /// types it referenced.
    pub fn ctest_decls() -> c_int;
    /// Every native call, every flag, on good arguments.
    pub fn ctest_calls() -> c_int;
    /// Every error code, bad frees, bad arenas and pointers.
    pub fn ctest_errors() -> c_int;
    /// Import callbacks, parent arenas, limits.
    pub fn ctest_imports() -> c_int;
    /// Threads from C (pthreads): shared arenas, waiting, racing frees.
    pub fn ctest_threads() -> c_int;
    /// `vmspace_arena_alloc_timed`: timeouts and wake-ups (`timed.c`).
    pub fn ctest_timed() -> c_int;
    /// An outside reviewer's tests of timed and waiting allocations.
    pub fn ctest_outside_fresh() -> c_int;
    /// A seeded random sequence checked against a reference list of live
    /// ranges, for `steps` steps with `seed`.
    pub fn ctest_differential(seed: u64, steps: c_int) -> c_int;
    /// A reviewer's tests from outside: the top of the address space, a
    /// size in the same cache class, a dead child's unflushed range.
    pub fn ctest_outside() -> c_int;
    /// A reviewer's vmem(9) edges from outside: xalloc's constraints as
    /// vmem(9) defines them, best and next fit, bad arguments.
    pub fn ctest_outside_vmem() -> c_int;
    /// Another outside reviewer: statistics, walks and histograms against a
    /// model, dead arenas, forged handles, cache bypasses, huge spans.
    pub fn ctest_outside_more() -> c_int;
    /// An adversarial outside reviewer: bad pointers and foreign arenas,
    /// every rejected flag, xalloc extremes, bad frees, names, buffers,
    /// failing and re-entrant callbacks, tag exhaustion, racing frees.
    pub fn ctest_outside_adversary() -> c_int;
    /// An outside reviewer's C runtime: aligned requests through an import
    /// function, waiting children woken by space in their tree.
    pub fn ctest_outside_runtime() -> c_int;
    /// An outside reviewer holding vmem.h to FreeBSD's vmem(9): frees in
    /// the same quanta, adjacent adds, a span at the top.
    pub fn ctest_outside_vmem_fidelity() -> c_int;
    /// An outside reviewer's arena trees: waiting allocations over import
    /// functions, a raised limit, unflushed ranges up a tree of destroys.
    pub fn ctest_outside_trees() -> c_int;
    /// Every vmem(9) call and flag, the error hook.
    pub fn ctest_vmem_compat() -> c_int;
    /// The VM layer (`vm.c`): map, unmap, errors, an arena over a VM,
    /// threads.
    pub fn ctest_vm() -> c_int;
    /// The vmem(9) example's `main`.
    pub fn vmem_example_main() -> c_int;
    /// How many C samples README.md has.
    pub fn readme_samples() -> c_int;
    /// Run README.md's C sample `i`.
    pub fn readme_run(i: c_int);
}
