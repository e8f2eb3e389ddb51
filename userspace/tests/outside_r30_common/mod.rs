//! Helpers shared by the round 30 tests: re-executing the test binary as a
//! child (through `child_reexec`, which each of these test files declares
//! too), probing placements.
#![allow(dead_code)]

/// Re-execute this binary to run `name` alone with `var` set to `val`;
/// assert it passed (echoing the child's `r30:` lines).
pub fn in_child(name: &str, var: &str, val: &str) {
    crate::child_reexec::in_child_echo(name, var, val, "r30:");
}

/// Where an unpadded `size` lands now, and whether `size` bytes at the
/// aligned address at or below it are free (checked with
/// `MAP_FIXED_NOREPLACE`, given back at once).
pub fn below_is_free(size: usize, align: usize) -> (usize, bool) {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: fresh anonymous mappings, never replacing one
    // (NOREPLACE), given back at once.
    unsafe {
        let q = libc::mmap(std::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0);
        assert_ne!(q, libc::MAP_FAILED);
        libc::munmap(q, size);
        let at = q as usize & !(align - 1);
        let t = libc::mmap(
            at as *mut _,
            size,
            libc::PROT_NONE,
            flags | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        let free = t as usize == at;
        if t != libc::MAP_FAILED {
            libc::munmap(t, size);
        }
        (q as usize, free)
    }
}
