//! An aligned reservation without padding, for when a limit refuses the
//! padding `MmapBackend::reserve` maps and trims: `RLIMIT_AS`, or
//! `RLIMIT_MEMLOCK` under `mlockall(MCL_FUTURE)`, which counts
//! inaccessible mappings too. The kernel places a mapping only by its own
//! alignment (pages), so an aligned place is looked for here: below where
//! the kernel put an unaligned one (it places top-down, at the top of a
//! gap), then in the gaps `/proc/self/maps` lists, highest first. Each try
//! is a `MAP_FIXED_NOREPLACE` mapping (Linux 4.17), which another thread's
//! mapping in between makes fail rather than be replaced; an older kernel
//! takes the address as a hint, and a mapping placed elsewhere is given
//! back.

use std::fs;

use vmspace_shim::align::{align_down, align_up};

/// Tries at most this many gaps.
const TRIES: usize = 64;

/// The lowest address tried: below it `vm.mmap_min_addr` (64 KiB by
/// default) refuses mappings.
const FLOOR: usize = 1 << 16;

/// A `PROT_NONE` private anonymous mapping of `size` bytes at `at` exactly,
/// over nothing; `false` where something is mapped there, or it cannot be.
fn map_exactly(at: usize, size: usize) -> bool {
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: a new anonymous mapping where nothing is mapped (the kernel
    // refuses it otherwise, or, before 4.17, maps it elsewhere).
    let q = unsafe { libc::mmap(at as *mut libc::c_void, size, libc::PROT_NONE, flags, -1, 0) };
    if q == libc::MAP_FAILED {
        return false;
    }
    if q as usize != at {
        // SAFETY: the mapping just made elsewhere, which nothing knows of.
        unsafe { libc::munmap(q, size) };
        return false;
    }
    true
}

/// The gaps between this process's mappings, `(start, end)`, highest
/// first; empty if `/proc/self/maps` cannot be read.
fn gaps() -> Vec<(usize, usize)> {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else { return Vec::new() };
    let mut vmas: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|line| {
            let (a, b) = line.split_whitespace().next()?.split_once('-')?;
            Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
        })
        .collect();
    vmas.sort_unstable();
    let mut gaps: Vec<(usize, usize)> =
        vmas.windows(2).filter(|w| w[0].1 < w[1].0).map(|w| (w[0].1, w[1].0)).collect();
    gaps.reverse();
    gaps
}

/// A `PROT_NONE` mapping of exactly `size` bytes at a multiple of `align`
/// (a power of two above the page size), or `None` where none could be
/// made.
pub(crate) fn map_aligned(size: usize, align: usize) -> Option<usize> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a new anonymous mapping wherever the kernel puts it.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return None;
    }
    let p = p as usize;
    if p % align == 0 {
        return Some(p);
    }
    // SAFETY: the mapping just made, which nothing knows of.
    unsafe { libc::munmap(p as *mut libc::c_void, size) };
    // Just below, in the gap the kernel chose, when it is that large.
    if let Some(below) = align_down(p, align).filter(|&b| b >= FLOOR) {
        if map_exactly(below, size) {
            return Some(below);
        }
    }
    // The highest aligned place in each gap that holds one.
    gaps()
        .into_iter()
        .filter_map(|(start, end)| {
            let at = align_down(end.checked_sub(size)?, align)?;
            let lowest = align_up(start.max(FLOOR), align).ok()?;
            (at >= lowest).then_some(at)
        })
        .take(TRIES)
        .find(|&at| map_exactly(at, size))
}
