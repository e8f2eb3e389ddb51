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

/// The range of a `/proc/self/maps` line's first field, `start-end` in hex.
pub(crate) fn parse_range(field: &str) -> Option<Range> {
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

/// Bytes resident (in RAM) in the pages overlapping `range`: those
/// `mincore(2)` reports resident, when every page of it is mapped (a
/// reservation is, inaccessible or not), a page's worth each (a page only
/// read since it was mapped, which maps the kernel's shared zero page,
/// counts too, though it takes no memory of its own); otherwise (a range
/// with holes) the resident bytes of the VMAs overlapping it, from
/// `/proc/self/smaps`, which may count pages outside it (two reservations
/// `mmap` placed side by side share a VMA where runs at their common edge
/// are mapped) and does not count the zero page. An empty range holds
/// nothing.
pub fn resident_in(range: Range) -> io::Result<Size> {
    // An empty range overlaps no page (rounded out, an unaligned one would
    // cover the page it sits in).
    if range.is_empty() {
        return Ok(Size(0));
    }
    if let Some(bytes) = mincore_resident(range) {
        return Ok(bytes);
    }
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

/// The resident bytes of `range` by `mincore(2)`, `None` if it refuses
/// (part of the range not mapped, or not page-aligned).
fn mincore_resident(range: Range) -> Option<Size> {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    // The pages overlapping the range.
    let mut at = range.base().0 & !(page - 1);
    let end = range.limit().0.checked_next_multiple_of(page)?;
    // A chunk at a time, so a reservation of terabytes needs no vector of
    // a byte a page; counted a word (eight pages) at a time.
    const CHUNK: usize = 1 << 16;
    let mut vec = vec![0u64; CHUNK / 8];
    let mut resident = 0usize;
    while at < end {
        let len = (end - at).min(CHUNK * page);
        let pages = len / page;
        // SAFETY: `vec` holds CHUNK bytes, a byte for each page of `len`
        // bytes (at most CHUNK pages), as mincore writes; mincore only
        // looks pages up.
        let rc = unsafe { libc::mincore(at as *mut libc::c_void, len, vec.as_mut_ptr().cast()) };
        if rc != 0 {
            return None;
        }
        // Bit 0 of each byte: resident. Bytes past `pages` are zeroed
        // first, so whole words count.
        let bytes = vec.as_mut_ptr().cast::<u8>();
        // SAFETY: `bytes` is `vec`'s CHUNK bytes, and `pages <= CHUNK`.
        unsafe { bytes.add(pages).write_bytes(0, CHUNK - pages) };
        let words = pages.div_ceil(8);
        resident += vec[..words]
            .iter()
            .map(|w| (w & 0x0101_0101_0101_0101).count_ones() as usize)
            .sum::<usize>();
        at += len;
    }
    Some(Size(resident * page))
}

/// The number of VMAs in this process.
pub fn vma_count() -> io::Result<usize> {
    Ok(fs::read_to_string("/proc/self/maps")?.lines().count())
}
