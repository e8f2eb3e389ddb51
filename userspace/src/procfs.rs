//! What the kernel says about this process's mappings, read from `/proc/self`:
//! the VMAs overlapping a range and the memory resident in it.

use std::fs;
use std::io;

use vmspace_shim::{Addr, Range, Size};

/// One line of `/proc/self/maps`: a VMA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vma {
    /// Its address range.
    pub range: Range,
    /// Its permissions, as `rwxp`.
    pub perms: String,
}

fn parse_range(field: &str) -> Option<Range> {
    let (a, b) = field.split_once('-')?;
    let a = usize::from_str_radix(a, 16).ok()?;
    let b = usize::from_str_radix(b, 16).ok()?;
    Range::new(Addr(a), Addr(b))
}

/// The VMAs that overlap `range`, in address order.
pub fn vmas_in(range: Range) -> io::Result<Vec<Vma>> {
    let maps = fs::read_to_string("/proc/self/maps")?;
    Ok(maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let r = parse_range(fields.next()?)?;
            let perms = fields.next()?.to_string();
            r.overlaps(&range).then_some(Vma { range: r, perms })
        })
        .collect())
}

/// Bytes resident (in RAM) in the VMAs overlapping `range`, from
/// `/proc/self/smaps`. Exact for ranges that are whole VMAs, such as a
/// reservation.
pub fn resident_in(range: Range) -> io::Result<Size> {
    let smaps = fs::read_to_string("/proc/self/smaps")?;
    let mut inside = false;
    let mut kib = 0usize;
    for line in smaps.lines() {
        if let Some(r) = line.split_whitespace().next().and_then(parse_range) {
            inside = r.overlaps(&range);
        } else if inside {
            if let Some(rest) = line.strip_prefix("Rss:") {
                kib += rest.trim().trim_end_matches("kB").trim().parse::<usize>().unwrap_or(0);
            }
        }
    }
    Ok(Size(kib * 1024))
}

/// The number of VMAs in this process.
pub fn vma_count() -> io::Result<usize> {
    Ok(fs::read_to_string("/proc/self/maps")?.lines().count())
}
