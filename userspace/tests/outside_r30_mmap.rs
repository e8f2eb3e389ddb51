//! Round 30 (outside reviewer): `MmapBackend::reserve`'s unpadded fallback
//! (`aligned_unpadded`) under `RLIMIT_AS` and `RLIMIT_MEMLOCK` with
//! `mlockall(MCL_FUTURE)`. Tests that change limits or lock memory re-execute
//! this binary as a child (their names contain `under_rlimit`).

mod child_reexec;
mod outside_r30_common;

use vmspace_shim::{PageOps, Range, ShimError, Size};
use vmspace_user::procfs::{resident_in, vma_count, vmas_in};
use vmspace_user::{MmapBackend, UnmapStrategy};

use child_reexec::{drop_cap_ipc_lock, r, serial, set_limit, status_bytes};
use outside_r30_common::{below_is_free, in_child};

/// The (size, align) cases, in pages and bytes: sizes not a multiple of
/// 2 MiB (which Linux would align by itself), the typical 2 MiB alignment
/// of `Vm::reserve`, and larger ones.
fn cases(p: usize) -> Vec<(usize, usize)> {
    vec![
        (3 * p, 2 << 20),
        (p, 2 << 20),
        ((1 << 20) + p, 2 << 20),
        (5 * p, 1 << 16),
        (p, 1 << 30),
        (3 * p, 4 << 20),
    ]
}

/// Under `RLIMIT_AS` (or `RLIMIT_MEMLOCK` under `mlockall`) with room for
/// the size but not the padding, reserve each case `tries` times in a row
/// (each kept, so the space fills). Returns the results, limit raised.
fn reserve_under(
    be: &MmapBackend,
    lock: bool,
    tries: usize,
) -> Vec<(usize, usize, Result<Range, ShimError>)> {
    let p = be.page_size().0;
    let mut got = Vec::new();
    for (size, align) in cases(p) {
        for _ in 0..tries {
            let slack = 2 * p;
            if lock {
                set_limit(libc::RLIMIT_MEMLOCK, (status_bytes("VmLck:") + size + slack) as u64);
            } else {
                set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + size + slack) as u64);
            }
            let res = be.reserve(Size(size), Size(align));
            set_limit(
                if lock { libc::RLIMIT_MEMLOCK } else { libc::RLIMIT_AS },
                libc::RLIM_INFINITY,
            );
            got.push((size, align, res));
        }
    }
    got
}

/// CHANGELOG (Fixed): an aligned `reserve` under a limit "that the
/// alignment's padding alone passes ... failed although the reservation
/// fits; it now maps exactly the size at an aligned address instead."
/// Checked with plenty of free, aligned address space (a padded reserve
/// of the same size and alignment succeeds once the limit is raised).
fn fallback_child(v: &str) {
    let strategy =
        if v.starts_with('r') { UnmapStrategy::Replace } else { UnmapStrategy::Decommit };
    let lock = v.ends_with('m');
    let be = MmapBackend::with_strategy(strategy);
    if lock {
        drop_cap_ipc_lock();
        // SAFETY: plain call.
        assert_eq!(unsafe { libc::mlockall(libc::MCL_FUTURE) }, 0);
    }
    let got = reserve_under(&be, lock, 3);
    // SAFETY: plain call.
    unsafe { libc::munlockall() };
    let mut bad = Vec::new();
    for (size, align, res) in &got {
        match res {
            Ok(x) => {
                println!("r30: {v}: size {size:#x} align {align:#x}: {:#x}", x.base().0);
                if x.base().0 % align != 0 || x.size().0 != *size {
                    bad.push(format!("size {size:#x} align {align:#x}: misplaced {x:?}"));
                }
            }
            Err(e) => {
                println!("r30: {v}: size {size:#x} align {align:#x}: {e:?}");
                // Where the kernel puts `size` now, and whether the aligned
                // address at or below it is free (it is, under a top-down
                // layout, where the fallback's candidates above are not).
                let (probe, below) = below_is_free(*size, *align);
                // With the limit raised, the padded reserve fits: the
                // address space has room for it.
                let again = be.reserve(Size(*size), Size(*align));
                bad.push(format!(
                    "size {size:#x} align {align:#x}: {e:?} (first placement {probe:#x}, \
                     aligned address below it free: {below}; unlimited: {again:?})"
                ));
                if let Ok(y) = again {
                    // SAFETY: ours, never mapped.
                    unsafe { be.release(y) }.unwrap();
                }
            }
        }
    }
    for (_, _, res) in got {
        if let Ok(x) = res {
            // SAFETY: ours.
            unsafe { be.release(x) }.unwrap();
        }
    }
    assert!(
        bad.is_empty(),
        "{v}: {} of the reserves that fit failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn aligned_reserve_fits_under_rlimit() {
    let _serial = serial();
    match std::env::var("R30_FALLBACK") {
        Ok(v) => fallback_child(&v),
        Err(_) => {
            let failed: Vec<_> = ["da", "ra", "dm", "rm"]
                .into_iter()
                .filter(|v| {
                    std::panic::catch_unwind(|| {
                        in_child("aligned_reserve_fits_under_rlimit", "R30_FALLBACK", v)
                    })
                    .is_err()
                })
                .collect();
            assert!(failed.is_empty(), "failed under {failed:?}");
        }
    }
}

/// Module docs: with `Decommit`, "VMAs = 2 x runs + 1 exactly" (the listed
/// exceptions: forked children, locked pages, a reservation made at
/// `vm.max_map_count` or the data limit; none applies under `RLIMIT_AS`).
/// A reservation the unpadded fallback made: three runs, each first written
/// apart, then joined by mapping the gaps between them, are one VMA.
fn vmas_child() {
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let size = 64 * p;
    let mut x = None;
    // Try a few alignments; keep the first reservation the fallback made.
    for align in [1usize << 16, 1 << 21, 1 << 30] {
        set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + size + p) as u64);
        let res = be.reserve(Size(size), Size(align));
        set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
        if let Ok(y) = res {
            x = Some(y);
            break;
        }
    }
    let Some(x) = x else {
        println!("r30: no fallback reservation made; nothing to check here");
        return;
    };
    let at = |i: usize, n: usize| r(x.base().0 + i * p, n * p);
    for run in [at(8, 4), at(20, 4), at(32, 4)] {
        // SAFETY: our unmapped pages.
        unsafe { be.map(run) }.unwrap();
        // SAFETY: just mapped read-write.
        unsafe { run.base().as_ptr::<u8>().write_volatile(1) };
    }
    for gap in [at(12, 8), at(24, 8)] {
        // SAFETY: our unmapped pages.
        unsafe { be.map(gap) }.unwrap();
        // SAFETY: just mapped read-write.
        unsafe { gap.base().as_ptr::<u8>().write_volatile(1) };
    }
    let vmas = vmas_in(x).unwrap();
    println!(
        "r30: fallback reservation {x:?}: {} VMAs: {:?}",
        vmas.len(),
        vmas.iter().map(|v| &v.perms).collect::<Vec<_>>()
    );
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(vmas.len(), 3, "one run between two gaps is 3 VMAs: {vmas:?}");
}

#[test]
fn fallback_reservation_keeps_vma_count_under_rlimit() {
    let _serial = serial();
    match std::env::var("R30_VMAS") {
        Ok(_) => vmas_child(),
        Err(_) => in_child("fallback_reservation_keeps_vma_count_under_rlimit", "R30_VMAS", "1"),
    }
}

/// Failed reserves leave nothing: with every aligned candidate above the
/// first placement taken (one-page blockers), the fallback fails with a
/// typed error and the VMA count is what it was; a reserve beyond the
/// address space fails the same way.
fn leak_child() {
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let size = 3 * p;
    let align = 1usize << 21;
    let mut probe = [0usize; 1];
    // Where the kernel would put `size` now.
    // SAFETY: a fresh anonymous mapping, unmapped at once.
    unsafe {
        let q = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(q, libc::MAP_FAILED);
        probe[0] = q as usize;
        libc::munmap(q, size);
    }
    let first = (probe[0] + align - 1) & !(align - 1);
    let mut blockers = Vec::new();
    for k in 0..8 {
        let at = first + k * align;
        // SAFETY: NOREPLACE never replaces a mapping.
        let q = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                p,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if q != libc::MAP_FAILED {
            blockers.push(q as usize);
        }
    }
    let before = vma_count().unwrap();
    set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + size + p) as u64);
    let res = be.reserve(Size(size), Size(align));
    let huge = be.reserve(Size(p), Size(1usize << 47));
    let huger = be.reserve(Size(p), Size(1usize << 63));
    set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
    let after = vma_count().unwrap();
    println!("r30: crowded: {res:?}; 2^47: {huge:?}; 2^63: {huger:?}; VMAs {before} -> {after}");
    for b in blockers {
        // SAFETY: our blockers.
        unsafe { libc::munmap(b as *mut libc::c_void, p) };
    }
    let mut leaked = after - before;
    for x in [&res, &huge, &huger].into_iter().flatten() {
        assert_eq!(x.base().0 % align, 0);
        // SAFETY: ours.
        unsafe { be.release(*x) }.unwrap();
        leaked = leaked.saturating_sub(1);
    }
    for e in [&res, &huge, &huger].into_iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(e, ShimError::OutOfAddressSpace { .. } | ShimError::Os { .. }),
            "untyped error {e:?}"
        );
    }
    assert!(leaked <= 1, "failed reserves left {leaked} VMAs");
}

#[test]
fn failed_fallback_leaves_nothing_under_rlimit() {
    let _serial = serial();
    match std::env::var("R30_LEAK") {
        Ok(_) => leak_child(),
        Err(_) => in_child("failed_fallback_leaves_nothing_under_rlimit", "R30_LEAK", "1"),
    }
}

/// Large alignments under `RLIMIT_AS`: 2^36 and 2^40 in a 2^47-byte
/// address space. The unpadded fallback looks only above the first
/// placement, which Linux's top-down layout puts near the top of the
/// address space, so the next 2^40 boundary is past it.
fn huge_child() {
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let mut bad = Vec::new();
    for align in [1usize << 36, 1 << 40] {
        set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + p) as u64);
        let got = be.reserve(Size(p), Size(align));
        set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
        println!("r30: reserve(1 page, {align:#x}) at RLIMIT_AS: {got:?}");
        match got {
            // SAFETY: ours.
            Ok(x) => unsafe { be.release(x) }.unwrap(),
            Err(e) => {
                let again = be.reserve(Size(p), Size(align));
                bad.push(format!("align {align:#x}: {e:?} (unlimited: {again:?})"));
                if let Ok(y) = again {
                    // SAFETY: ours.
                    unsafe { be.release(y) }.unwrap();
                }
            }
        }
    }
    assert!(bad.is_empty(), "reserves that fit failed:\n{}", bad.join("\n"));
}

#[test]
fn huge_alignment_fits_under_rlimit_as() {
    let _serial = serial();
    match std::env::var("R30_HUGE") {
        Ok(_) => huge_child(),
        Err(_) => in_child("huge_alignment_fits_under_rlimit_as", "R30_HUGE", "1"),
    }
}

/// The limit exactly at the size (no slack), for cases whose aligned
/// candidate is free: the reserve succeeds, is aligned, one VMA with
/// nothing resident, maps and unmaps, and its release brings the VMA count
/// back.
fn exact_child(v: &str) {
    let lock = v.starts_with('m');
    let strategy = if v.ends_with('r') { UnmapStrategy::Replace } else { UnmapStrategy::Decommit };
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    if lock {
        drop_cap_ipc_lock();
        // SAFETY: plain call.
        assert_eq!(unsafe { libc::mlockall(libc::MCL_FUTURE) }, 0);
    }
    let res = if lock { libc::RLIMIT_MEMLOCK } else { libc::RLIMIT_AS };
    let field = if lock { "VmLck:" } else { "VmSize:" };
    let mut bad = Vec::new();
    for (size, align) in
        [(3 * p, 2usize << 20), (2 << 20, 2 << 20), (4 << 20, 4 << 20), (p, 1 << 30)]
    {
        let before = vma_count().unwrap();
        set_limit(res, (status_bytes(field) + size) as u64);
        let got = be.reserve(Size(size), Size(align));
        // `share_anon_vma`: the first page merges back and nothing stays
        // resident ("nothing is left resident either way").
        let shape =
            got.as_ref().ok().map(|x| (vmas_in(*x).unwrap().len(), resident_in(*x).unwrap().0));
        let mapped = got.as_ref().ok().map(|x| {
            let run = r(x.base().0 + (size / p - 1).min(1) * p, p);
            // SAFETY: our reservation's unmapped page, then mapped.
            unsafe { (be.map(run), be.unmap(run)) }
        });
        set_limit(res, libc::RLIM_INFINITY);
        println!("r30: exact {v}: size {size:#x} align {align:#x}: {got:?} map/unmap {mapped:?}");
        match got {
            Ok(x) => {
                // SAFETY: ours.
                unsafe { be.release(x) }.unwrap();
                let (m, u) = mapped.unwrap();
                if x.base().0 % align != 0 || m.is_err() || u.is_err() || shape != Some((1, 0)) {
                    bad.push(format!("{size:#x}/{align:#x}: {x:?} {m:?} {u:?} {shape:?}"));
                }
            }
            Err(e) => bad.push(format!("{size:#x}/{align:#x}: {e:?}")),
        }
        let after = vma_count().unwrap();
        if after > before {
            bad.push(format!("{size:#x}/{align:#x}: VMAs {before} -> {after}"));
        }
    }
    // SAFETY: plain call.
    unsafe { libc::munlockall() };
    assert!(bad.is_empty(), "{v}:\n{}", bad.join("\n"));
}

#[test]
fn limit_exactly_at_the_size_under_rlimit() {
    let _serial = serial();
    match std::env::var("R30_EXACT") {
        Ok(v) => exact_child(&v),
        Err(_) => {
            for v in ["a", "m", "ar", "mr"] {
                in_child("limit_exactly_at_the_size_under_rlimit", "R30_EXACT", v);
            }
        }
    }
}
