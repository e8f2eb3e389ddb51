//! An outside engineer's runtime-shaped program over vmspace: a JIT code
//! cache, a GC heap, an ID allocator, per-thread and per-CPU quantum caches
//! and an arena importing from another, then attacks on each documented
//! promise. Written from README.md, rustdoc and examples only.

mod attacks;
mod claims;
mod code_cache;
mod deferred;
mod gc_heap;
mod releases;
mod threads;

use vmspace::arena::PageStore;
use vmspace::Size;
use vmspace_user::MmapBackend;

/// The store every table here lives in.
pub type Store = PageStore<MmapBackend>;

/// A store of `bytes` reserved address space.
pub fn store(bytes: usize) -> Store {
    PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()
}

/// Lines of /proc/self/maps overlapping `[lo, hi)`.
pub fn vmas_in(lo: usize, hi: usize) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| {
            let r = l.split_whitespace().next().unwrap();
            let (a, b) = r.split_once('-').unwrap();
            let (a, b) =
                (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
            a < hi && lo < b
        })
        .count()
}

/// The protection string ("rw-p", "r--p", "---p") of the VMA holding `addr`.
pub fn prot_at(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let r = it.next().unwrap();
        let (a, b) = r.split_once('-').unwrap();
        let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
        (a <= addr && addr < b).then(|| it.next().unwrap().to_string())
    })
}
