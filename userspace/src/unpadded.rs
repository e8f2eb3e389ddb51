//! An aligned reservation without padding, for when a limit refuses the
//! padding `MmapBackend::reserve` maps and trims: `RLIMIT_AS`, or
//! `RLIMIT_MEMLOCK` under `mlockall(MCL_FUTURE)`, which counts
//! inaccessible mappings too. The kernel places a mapping only by its own
//! alignment (pages), so an aligned place is looked for here: next to where
//! the kernel put an unaligned one (below it: the kernel places top-down,
//! at the top of a gap; above it under the legacy bottom-up layout), then
//! in the gaps `/proc/self/maps` lists, highest first, below the room the
//! main thread's stack grows into (as the kernel keeps it free). Each try
//! is a `MAP_FIXED_NOREPLACE` mapping (Linux 4.17), which another thread's
//! mapping in between makes fail rather than be replaced; an older kernel
//! takes the address as a hint, and a mapping placed elsewhere is given
//! back. A mapping made on the way that cannot be given back (at
//! `vm.max_map_count`) fails the reservation with the `munmap`'s errno,
//! not a refusal: it stays mapped.

use std::fs;

use vmspace_shim::align::{align_down, align_up};

/// Tries at most this many gaps.
const TRIES: usize = 64;

/// The lowest address tried: below it `vm.mmap_min_addr` (64 KiB by
/// default) refuses mappings.
const FLOOR: usize = 1 << 16;

/// Give back a mapping just made, which nothing knows of; the errno where
/// that fails (the mapping stays, ours no more: at `vm.max_map_count`, a
/// mapping that merged with a neighbour needs a split to go).
fn give_back(at: usize, size: usize) -> Result<(), i32> {
    // SAFETY: the mapping just made, which nothing knows of.
    if unsafe { libc::munmap(at as *mut libc::c_void, size) } == 0 {
        Ok(())
    } else {
        Err(crate::mmap::errno())
    }
}

/// A `PROT_NONE` private anonymous mapping of `size` bytes at `at` exactly,
/// over nothing; `false` where something is mapped there, or it cannot be;
/// the errno where a mapping placed elsewhere could not be given back.
fn map_exactly(at: usize, size: usize) -> Result<bool, i32> {
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: a new anonymous mapping where nothing is mapped (the kernel
    // refuses it otherwise, or, before 4.17, maps it elsewhere).
    let q = unsafe { libc::mmap(at as *mut libc::c_void, size, libc::PROT_NONE, flags, -1, 0) };
    if q == libc::MAP_FAILED {
        return Ok(false);
    }
    if q as usize != at {
        give_back(q as usize, size)?;
        return Ok(false);
    }
    Ok(true)
}

/// The first place of `places` where [`map_exactly`] maps.
fn first_mapped(places: impl Iterator<Item = usize>, size: usize) -> Result<Option<usize>, i32> {
    for at in places {
        if map_exactly(at, size)? {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Room kept free below the main thread's stack, for it to grow into: the
/// stack-size limit, at least 128 MiB (as the kernel keeps below it when
/// it places mappings top-down), at most 1 TiB (an unlimited stack), and
/// the kernel's 1 MiB guard gap.
fn stack_room() -> usize {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes the limit into `rl`, which lives across the call.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) } == 0 {
        usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    limit.clamp(128 << 20, 1 << 40) + (1 << 20)
}

/// The gaps between this process's mappings where a mapping may go,
/// `(start, end)`, highest first, and the ceiling they keep below: the
/// bottom of the room below the main thread's stack that the stack grows
/// into (above the stack is the kernel's). No gaps, and no ceiling, if
/// `/proc/self/maps` cannot be read.
fn gaps() -> (Vec<(usize, usize)>, usize) {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else { return (Vec::new(), usize::MAX) };
    let mut stack = None;
    let mut vmas: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|line| {
            let r = crate::procfs::parse_range(line.split_whitespace().next()?)?;
            let vma = (r.base().0, r.limit().0);
            if line.trim_end().ends_with("[stack]") {
                stack = Some(vma.0);
            }
            Some(vma)
        })
        .collect();
    vmas.sort_unstable();
    let ceiling = stack.map_or(usize::MAX, |s| s.saturating_sub(stack_room()));
    let mut gaps: Vec<(usize, usize)> = vmas
        .windows(2)
        .map(|w| (w[0].1, w[1].0.min(ceiling)))
        .filter(|&(start, end)| start < end)
        .collect();
    gaps.reverse();
    (gaps, ceiling)
}

/// A `PROT_NONE` mapping of exactly `size` bytes at a multiple of `align`
/// (a power of two above the page size), or `None` where none could be
/// made. The errno where a mapping made on the way could not be given
/// back (it stays, a change a refusal must not make).
pub(crate) fn map_aligned(size: usize, align: usize) -> Result<Option<usize>, i32> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a new anonymous mapping wherever the kernel puts it.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Ok(None);
    }
    let p = p as usize;
    if p % align == 0 {
        return Ok(Some(p));
    }
    give_back(p, size)?;
    let (gaps, ceiling) = gaps();
    let fits = |at: usize| at >= FLOOR && at.checked_add(size).is_some_and(|end| end <= ceiling);
    // Just below, in the gap the kernel chose (top-down, at its top), or
    // just above (a bottom-up layout, at its bottom), when it is that large.
    let near = [align_down(p, align), align_up(p, align).ok()];
    if let Some(at) = first_mapped(near.into_iter().flatten().filter(|&a| fits(a)), size)? {
        return Ok(Some(at));
    }
    // The highest aligned place in each gap that holds one.
    let places = gaps.into_iter().filter_map(|(start, end)| {
        let at = align_down(end.checked_sub(size)?, align)?;
        let lowest = align_up(start.max(FLOOR), align).ok()?;
        (at >= lowest).then_some(at)
    });
    first_mapped(places.take(TRIES), size)
}
