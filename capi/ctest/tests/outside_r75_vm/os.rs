//! Failures of the OS, each in a child process: a map under `RLIMIT_DATA`, map, unmap and destroy at `vm.max_map_count`.

use super::*;

// ---------------------------------------------------------------------------
// Failures of the OS (child processes).

fn data_kb() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmData:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_map_refused_under_rlimit_data_is_enomem_and_maps_nothing() {
    if !in_child("a_map_refused_under_rlimit_data_is_enomem_and_maps_nothing") {
        return;
    }
    let page = os_page();
    let vm = create(1 << 30, 0);
    let b = base(vm);
    let before = info(vm);
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on this (child) process.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_DATA, &mut old), 0) };
    let lim = ((data_kb() + 32 * 1024) * 1024) as libc::rlim_t;
    let new = libc::rlimit { rlim_cur: lim.min(old.rlim_max), rlim_max: old.rlim_max };
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_DATA, &new), 0) };
    let e = map(vm, b, 512 << 20);
    let after = info(vm);
    let first = is_mapped(vm, b, page);
    let t = trim(vm);
    let small = map(vm, b + (600 << 20), page);
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_DATA, &old), 0) };
    assert_eq!(e, -ENOMEM, "a map RLIMIT_DATA refuses");
    assert_eq!(after, before, "a failed map changed the VM");
    assert_eq!(first, 0, "a failed map mapped a page");
    assert_eq!(t, 0, "a failed map left a bit-table page behind");
    assert_eq!(small, 0);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

/// What a map the OS refused for want of mappings left behind.
struct Refused {
    /// The page whose map was refused.
    at: usize,
    err: c_int,
    before: Info,
    after: Info,
    state: c_int,
    trimmed: c_int,
}

/// Map every other page of `vm` from page `from` on until the OS refuses
/// one (at `vm.max_map_count`).
fn exhaust_mappings(vm: *mut vmspace_vm_t, from: usize) -> Option<Refused> {
    let (b, s, _, page, ..) = info(vm);
    let mut i = from;
    while i < s / page {
        let before = info(vm);
        let e = map(vm, b + i * page, page);
        if e != 0 {
            let after = info(vm);
            let state = is_mapped(vm, b + i * page, page);
            let trimmed = trim(vm);
            return Some(Refused { at: i, err: e, before, after, state, trimmed });
        }
        i += 2;
    }
    None
}

/// Unmap what `exhaust_mappings` mapped.
fn give_back_mappings(vm: *mut vmspace_vm_t, from: usize, to: usize) {
    let (b, _, _, page, ..) = info(vm);
    for k in (from..to).step_by(2) {
        assert_eq!(unmap(vm, b + k * page, page), 0);
    }
}

#[test]
fn a_map_refused_at_the_vma_limit_is_enomem_and_changes_nothing() {
    if !in_child("a_map_refused_at_the_vma_limit_is_enomem_and_changes_nothing") {
        return;
    }
    let Some(max) = max_map_count() else { return };
    let page = os_page();
    let vm = create((2 * max + 64) * page, 0);
    let r = exhaust_mappings(vm, 0);
    let r = r.expect("max_map_count never reached");
    give_back_mappings(vm, 0, r.at);
    eprintln!("map refused at page {} with {}", r.at, r.err);
    assert_eq!(r.err, -ENOMEM, "a map the OS refuses for want of mappings");
    assert_eq!(r.after, r.before, "a refused map changed the VM's info");
    assert_eq!(r.state, 0, "a refused map mapped its page");
    assert_eq!(r.trimmed, 0, "a refused map left a bit-table page behind");
    assert_eq!(mapped_bytes(vm), 0);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

#[test]
fn an_unmap_refused_at_the_vma_limit_leaves_the_page_mapped_and_writable() {
    // Round 75 found the page's contents dropped by such a failure, where
    // the header then said "a failing call changes nothing". The backend
    // drops pages before it makes them inaccessible (it cannot know a
    // range's old protection to put it back), so the header now says what
    // is kept: the page stays mapped, recorded and read-write (the C API
    // puts the protection back), its contents may be gone.
    if !in_child("an_unmap_refused_at_the_vma_limit_leaves_the_page_mapped_and_writable") {
        return;
    }
    let Some(max) = max_map_count() else { return };
    let page = os_page();
    let vm = create((2 * max + 64) * page, 0);
    let b = base(vm);
    // A run of three pages, the middle one written.
    assert_eq!(map(vm, b, 3 * page), 0);
    fill(b + page, page, 0xab);
    let r = exhaust_mappings(vm, 10).expect("max_map_count never reached");
    // Now the unmap of the middle page, which needs two more VMAs.
    let before = info(vm);
    let e = unmap(vm, b + page, page);
    let after = info(vm);
    let state = is_mapped(vm, b + page, page);
    let held =
        if e != 0 { Some(all(b + page, page, 0xab) || all(b + page, page, 0)) } else { None };
    if e != 0 {
        // Writable (a fault here is the failure), and keeps what is written.
        fill(b + page, page, 0xcd);
        assert!(all(b + page, page, 0xcd));
    }
    // Give the VMAs back before asserting (a panic needs memory).
    give_back_mappings(vm, 10, r.at);
    eprintln!("map refused at page {} with {}; unmap returned {e}", r.at, r.err);
    if e == 0 {
        assert_eq!(state, 0);
    } else {
        assert_eq!(e, -12, "refused for want of a mapping: -ENOMEM");
        assert_eq!(after, before, "a failed unmap changed the VM's info");
        assert_eq!(state, 1, "a failed unmap left its page unrecorded");
        assert_eq!(held, Some(true), "the page holds neither what was written nor zero");
    }
    // The neighbours were not touched.
    assert!(all(b, page, 0) && all(b + 2 * page, page, 0));
    assert_eq!(check(vm), 0);
    destroy(vm);
}

#[test]
fn a_destroy_refused_at_the_vma_limit_keeps_the_vm() {
    // A VM whose reservation shares a kernel mapping with a neighbour (an
    // inaccessible anonymous mapping of the caller's, put right after it,
    // which the kernel merges with it), the process then at
    // vm.max_map_count (alternate pages of a second VM mapped until the OS
    // refuses), and the first VM destroyed: its munmap needs a split the
    // OS refuses. The header: "If the OS refuses the release (-ENOMEM
    // where it has no mapping left to split, -EIO otherwise), the VM is as
    // it was."
    if !in_child("a_destroy_refused_at_the_vma_limit_keeps_the_vm") {
        return;
    }
    let Some(max) = max_map_count() else { return };
    let page = os_page();
    // A grain larger than the page: the reservation's padding, trimmed,
    // leaves room either side.
    let a = create(16 * page, 1 << 20);
    let (ab, _, _, _, _, ar, _) = info(a);
    // Neighbours right before and right after the reservation, where the
    // address space is free (a munmap at the limit fails only where it
    // splits a mapping in the middle).
    let mut neighbours = Vec::new();
    for at in [ab + ar, ab - page] {
        // SAFETY: MAP_FIXED_NOREPLACE maps only where nothing is.
        let p = unsafe {
            libc::mmap(
                at as *mut core::ffi::c_void,
                page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p as usize == at {
            neighbours.push(at);
        }
    }
    let pages = 2 * max + 64;
    let c = create(pages * page, 0);
    assert_eq!(map(a, ab, 2 * page), 0);
    fill(ab, 2 * page, 0x42);
    let r = exhaust_mappings(c, 0).expect("max_map_count never reached");
    let before = info(a);
    // SAFETY: a live VM nobody else uses.
    let e = unsafe { vmspace_vm_destroy(a) };
    let state = if e != 0 {
        Some((info(a), is_mapped(a, ab, 2 * page), all(ab, 2 * page, 0x42), check(a)))
    } else {
        None
    };
    give_back_mappings(c, 0, r.at);
    eprintln!("neighbours {neighbours:x?}; map refused at page {}; destroy returned {e}", r.at);
    if let Some((i, m, kept, chk)) = state {
        assert_eq!((i, m, kept, chk), (before, 1, true, 0), "a refused destroy changed the VM");
        assert!(e == -12 || e == -5, "a refused release is -ENOMEM or -EIO: {e}");
        destroy(a);
    }
    destroy(c);
    for at in neighbours {
        // SAFETY: our own mapping, which nothing uses.
        assert_eq!(unsafe { libc::munmap(at as *mut core::ffi::c_void, page) }, 0);
    }
}
