//! What the tests at the process's VMA limit (`vm.max_map_count`) share:
//! filling the limit, reading a VMA's protection, marking pages not to be
//! copied by fork. Used by `outside_runtime_maxmap.rs` and
//! `outside_shim_maxmap.rs`.

/// The protection string of the VMA holding `addr` in /proc/self/maps.
pub fn perms_at(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (a, b) = it.next().unwrap().split_once('-').unwrap();
        let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
        if a <= addr && addr < b {
            return it.next().unwrap().to_string();
        }
    }
    "unmapped".to_string()
}

/// A region of `pages` pages, filled with one-page VMAs of alternating
/// protection until `mprotect` says `ENOMEM`: this process is then exactly
/// at its VMA limit. Returns the region (to unmap) and whether the limit
/// was reached.
pub fn fill_to_limit(page: usize, pages: usize) -> (usize, usize, bool) {
    let len = page * pages;
    // SAFETY: a fresh anonymous PROT_NONE mapping, owned here.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let base = p as usize;
    for i in 0..pages {
        let prot = if i % 2 == 0 { libc::PROT_READ } else { libc::PROT_READ | libc::PROT_WRITE };
        // SAFETY: page i of our own mapping; each call splits one more VMA
        // off the front of the remaining PROT_NONE one (+1 VMA).
        if unsafe { libc::mprotect((base + i * page) as *mut libc::c_void, page, prot) } != 0 {
            return (base, len, true);
        }
    }
    (base, len, false)
}

pub fn unfill(base: usize, len: usize) {
    // SAFETY: the filler mapping made by fill_to_limit, used by nothing else.
    assert_eq!(unsafe { libc::munmap(base as *mut libc::c_void, len) }, 0);
}

/// `MADV_DONTFORK` on `len` bytes at `addr`, pages of a mapping the caller
/// owns (the runtime's own memory: it marks it not to be copied by fork).
pub fn dontfork(addr: usize, len: usize) {
    // SAFETY: the caller's mapped pages; MADV_DONTFORK changes no contents
    // and no protection, only what fork copies.
    assert_eq!(unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTFORK) }, 0);
}
