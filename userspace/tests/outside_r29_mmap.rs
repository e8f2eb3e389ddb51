//! Round 29 (outside reviewer): `MmapBackend::unmap`'s drop-in-place path
//! (a locked run under `mlockall(MCL_FUTURE)` at `RLIMIT_MEMLOCK`) over
//! repeated cycles, part of a run, a run partly unlocked, the caller's own
//! `mlock`, and `procfs::resident_in` across its `mincore` chunks. Tests that
//! lock memory or change limits re-execute this binary as a child.

mod child_reexec;

use vmspace_shim::{PageOps, Range, Size};
use vmspace_user::procfs::{resident_in, vmas_in};
use vmspace_user::{MmapBackend, UnmapStrategy};

use child_reexec::{drop_cap_ipc_lock, r, serial, vmlck_pages};

/// Re-execute this binary to run `name` alone with `var` set to `val`;
/// assert it passed (echoing the child's `r29:` lines).
fn in_child(name: &str, var: &str, val: &str) {
    child_reexec::in_child_echo(name, var, val, "r29:");
}

/// Resident pages of `x` by `mincore`.
fn resident_pages(x: Range, page: usize) -> usize {
    let mut vec = vec![0u8; x.size().0 / page];
    // SAFETY: vec holds a byte a page; mincore only looks pages up.
    let rc = unsafe { libc::mincore(x.base().as_ptr(), x.size().0, vec.as_mut_ptr().cast()) };
    assert_eq!(rc, 0);
    vec.iter().filter(|b| **b & 1 != 0).count()
}

fn perms(x: Range) -> Vec<String> {
    vmas_in(x).unwrap().into_iter().map(|v| v.perms).collect()
}

/// Every byte of the mapped `x` reads `v`.
fn reads(x: Range, v: u8) -> bool {
    // SAFETY: the caller passes a mapped, read-write range of ours.
    let s = unsafe { std::slice::from_raw_parts(x.base().as_ptr::<u8>(), x.size().0) };
    s.iter().all(|b| *b == v)
}

fn fill(x: Range, v: u8) {
    // SAFETY: the caller passes a mapped, read-write range of ours.
    unsafe { std::ptr::write_bytes(x.base().as_ptr::<u8>(), v, x.size().0) };
}

const LIMIT: usize = 256;

/// Set `RLIMIT_MEMLOCK` to `LIMIT` pages (CAP_IPC_LOCK dropped), lock all
/// with `flags`, and reserve a range leaving room for two more pages.
fn at_limit(be: &MmapBackend, flags: i32) -> Range {
    drop_cap_ipc_lock();
    let p = be.page_size().0;
    let rl = libc::rlimit { rlim_cur: (LIMIT * p) as u64, rlim_max: (LIMIT * p) as u64 };
    // SAFETY: plain calls.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl), 0);
        assert!(flags == 0 || libc::mlockall(flags) == 0, "mlockall");
    }
    let before = vmlck_pages(p);
    be.reserve(Size((LIMIT - before - 2) * p), Size(p)).expect("reserve within the limit")
}

fn strategy_of(v: &str) -> (UnmapStrategy, i32) {
    let v = v.split(':').next().unwrap();
    let s = if v.starts_with('r') { UnmapStrategy::Replace } else { UnmapStrategy::Decommit };
    let f = if v.ends_with('n') {
        0
    } else if v.ends_with('o') {
        libc::MCL_FUTURE | libc::MCL_ONFAULT
    } else {
        libc::MCL_FUTURE
    };
    (s, f)
}

/// The unmap docs: "either way the pages read zero when next mapped"; at the
/// limit "the memory is freed, the lock ... stay[s] until release". Over
/// several cycles of map, write, unmap (each dropped in place): every unmap
/// succeeds, frees the run and leaves it inaccessible; every map reads
/// zero; the lock charge does not grow; a neighbouring run keeps its data.
fn cycles_child(v: &str) {
    let (strategy, flags) = strategy_of(v);
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    let x = at_limit(&be, flags);
    let run = r(x.base().0 + 8 * p, 8 * p);
    let keep = r(x.base().0 + 20 * p, 2 * p);
    // SAFETY: our reservation's pages, unmapped.
    unsafe { be.map(keep).unwrap() };
    fill(keep, 0x77);
    let charged = vmlck_pages(p);
    let mut report = Vec::new();
    for cycle in 0..4 {
        // SAFETY: unmapped pages of our reservation.
        unsafe { be.map(run) }.unwrap();
        let zero = reads(run, 0);
        fill(run, 0x55);
        // SAFETY: mapped; not accessed again until mapped.
        let got = unsafe { be.unmap(run) };
        let res = resident_pages(run, p);
        let pm = perms(run);
        let lck = vmlck_pages(p);
        println!("r29: {v} cycle {cycle}: zero {zero}, unmap {got:?}, {res} resident, {pm:?}, VmLck {lck}");
        report.push((zero, got.is_ok(), res, pm.iter().all(|s| s == "---p"), lck));
        if got.is_err() {
            break;
        }
    }
    let kept = reads(keep, 0x77);
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    for (i, (zero, ok, res, none, lck)) in report.into_iter().enumerate() {
        assert!(zero, "{v} cycle {i}: a run mapped again did not read zero");
        assert!(ok, "{v} cycle {i}: unmap failed");
        assert_eq!(res, 0, "{v} cycle {i}: pages left resident");
        assert!(none, "{v} cycle {i}: run left accessible");
        assert!(lck <= charged, "{v} cycle {i}: VmLck grew from {charged} to {lck}");
    }
    assert!(kept, "{v}: the neighbouring run lost its data");
}

#[test]
fn drop_in_place_cycles_under_rlimit() {
    let _serial = serial();
    match std::env::var("R29_CYCLES") {
        Ok(v) => cycles_child(&v),
        Err(_) => {
            for v in ["rf", "ro", "df", "do"] {
                in_child("drop_in_place_cycles_under_rlimit", "R29_CYCLES", v);
            }
        }
    }
}

/// Unmapping part of a run at the limit: the rest stays mapped, read-write,
/// with its data; the part unmapped is freed and reads zero when mapped.
fn half_child(v: &str) {
    let (strategy, flags) = strategy_of(v);
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    let x = at_limit(&be, flags);
    let run = r(x.base().0 + 8 * p, 16 * p);
    let (lo, hi) = (r(run.base().0, 8 * p), r(run.base().0 + 8 * p, 8 * p));
    // SAFETY: our unmapped pages.
    unsafe { be.map(run) }.unwrap();
    fill(run, 0x33);
    // SAFETY: mapped, not accessed until mapped again.
    let got = unsafe { be.unmap(hi) };
    let res = resident_pages(hi, p);
    let lo_ok = reads(lo, 0x33) && perms(lo).iter().all(|s| s == "rw-p");
    let hi_pm = perms(hi);
    // SAFETY: now unmapped (when `got` is Ok).
    let again = got.is_ok() && unsafe { be.map(hi) }.is_ok() && reads(hi, 0);
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    println!("r29: {v}: half unmap {got:?}, {res} resident, lower ok {lo_ok}, {hi_pm:?}");
    assert!(got.is_ok(), "{v}: {got:?}");
    assert_eq!(res, 0, "{v}: unmapped half still resident");
    assert!(hi_pm.iter().all(|s| s == "---p"), "{v}: {hi_pm:?}");
    assert!(lo_ok, "{v}: the half left mapped lost its data or access");
    assert!(again, "{v}: the unmapped half did not read zero when mapped again");
}

#[test]
fn half_run_unmap_under_rlimit() {
    let _serial = serial();
    match std::env::var("R29_HALF") {
        Ok(v) => half_child(&v),
        Err(_) => {
            for v in ["rf", "ro", "df", "do"] {
                in_child("half_run_unmap_under_rlimit", "R29_HALF", v);
            }
        }
    }
}

/// A run half of which the caller unlocked (`munlock`) under
/// `mlockall(MCL_FUTURE)`: the unmap range straddles a
/// locked and an unlocked VMA. Documented as for any unmap: the pages are
/// freed, inaccessible, and read zero when mapped again.
fn straddle_child(v: &str) {
    let (strategy, flags) = strategy_of(v);
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    let x = at_limit(&be, flags);
    let run = r(x.base().0 + 8 * p, 16 * p);
    // SAFETY: our unmapped pages.
    unsafe { be.map(run) }.unwrap();
    fill(run, 0x44);
    let which = if v.contains('2') { 8 * p } else { 0 };
    // SAFETY: plain call on our mapped pages.
    assert_eq!(unsafe { libc::munlock((run.base().0 + which) as *const libc::c_void, 8 * p) }, 0);
    // SAFETY: mapped, not accessed until mapped again.
    let got = unsafe { be.unmap(run) };
    let res = resident_pages(run, p);
    let pm = perms(run);
    // SAFETY: unmapped if `got` is Ok.
    let again = got.is_ok() && unsafe { be.map(run) }.is_ok() && reads(run, 0);
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    println!("r29: {v}: straddling unmap {got:?}, {res} resident, {pm:?}, again {again}");
    assert!(got.is_ok(), "{v}: {got:?}");
    assert_eq!(res, 0, "{v}: pages left resident");
    assert!(pm.iter().all(|s| s == "---p"), "{v}: {pm:?}");
    assert!(again, "{v}: did not read zero when mapped again");
}

#[test]
fn straddling_locked_and_unlocked_under_rlimit() {
    let _serial = serial();
    match std::env::var("R29_STRADDLE") {
        Ok(v) => straddle_child(&v),
        Err(_) => {
            for v in ["rf", "rf2", "df", "df2", "do", "do2"] {
                in_child("straddling_locked_and_unlocked_under_rlimit", "R29_STRADDLE", v);
            }
        }
    }
}

/// The caller's own `mlock` of a run (no `mlockall`): `Decommit`'s docs
/// say its lock ends with the unmap ("unlocked after an `mlock` of the
/// run, whose lock ends with it"); `Replace`'s fresh mapping is unlocked
/// too. Also with only half the run locked (either half).
fn own_mlock_child(v: &str) {
    let strategy =
        if v.starts_with('r') { UnmapStrategy::Replace } else { UnmapStrategy::Decommit };
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    let base_lck = vmlck_pages(p);
    let x = be.reserve(Size(64 * p), Size(p)).unwrap();
    let run = r(x.base().0 + 8 * p, 8 * p);
    // SAFETY: our unmapped pages.
    unsafe { be.map(run) }.unwrap();
    fill(run, 0x66);
    let (off, len) = match &v[1..] {
        "lo" => (0, 4 * p),
        "hi" => (4 * p, 4 * p),
        _ => (0, 8 * p),
    };
    // SAFETY: plain call on our mapped pages.
    assert_eq!(unsafe { libc::mlock((run.base().0 + off) as *const libc::c_void, len) }, 0);
    let locked = vmlck_pages(p);
    // SAFETY: mapped, not accessed until mapped again.
    let got = unsafe { be.unmap(run) };
    let after = vmlck_pages(p);
    let res = resident_pages(run, p);
    let pm = perms(run);
    // SAFETY: unmapped if `got` is Ok.
    let again = got.is_ok() && unsafe { be.map(run) }.is_ok() && reads(run, 0);
    let after_map = vmlck_pages(p);
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    println!(
        "r29: {v}: VmLck {base_lck} -> {locked} -> {after} (mapped again {after_map}), unmap \
         {got:?}, {res} resident, {pm:?}"
    );
    assert!(got.is_ok(), "{v}: {got:?}");
    assert_eq!(locked, base_lck + len / p);
    assert_eq!(after, base_lck, "{v}: the caller's lock outlived the unmap");
    assert_eq!(after_map, base_lck, "{v}: mapped again, the run is locked");
    assert_eq!(res, 0, "{v}: pages left resident");
    assert!(pm.iter().all(|s| s == "---p"), "{v}: {pm:?}");
    assert!(again, "{v}: did not read zero when mapped again");
}

#[test]
fn own_mlock_ends_with_the_unmap() {
    let _serial = serial();
    if under_asan() {
        // AddressSanitizer intercepts `mlock` and locks nothing, so the
        // count this test reads never moves (`make asan`).
        eprintln!("own_mlock_ends_with_the_unmap: skipped, mlock locks nothing here");
        return;
    }
    match std::env::var("R29_OWN") {
        Ok(v) => own_mlock_child(&v),
        Err(_) => {
            for v in ["r", "rlo", "rhi", "d", "dlo", "dhi"] {
                in_child("own_mlock_ends_with_the_unmap", "R29_OWN", v);
            }
        }
    }
}

/// Whether `mlock` is a no-op here: AddressSanitizer intercepts it and
/// locks nothing (it returns 0, and `VmLck` does not move).
fn under_asan() -> bool {
    let p = 4096;
    // SAFETY: a fresh anonymous page of our own, locked, counted, unlocked
    // and unmapped; nothing else refers to it.
    unsafe {
        let pg = libc::mmap(
            std::ptr::null_mut(),
            p,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(pg, libc::MAP_FAILED);
        let before = vmlck_pages(p);
        let locked = libc::mlock(pg, p) == 0;
        let moved = vmlck_pages(p) > before;
        libc::munlock(pg, p);
        libc::munmap(pg, p);
        locked && !moved
    }
}

/// `resident_in` counts the pages overlapping the range a 64 Ki-page chunk
/// at a time: pages on both sides of a chunk boundary, the last page, an
/// unaligned range across a boundary, and a range with a hole (the smaps
/// fallback, which may count more but never fewer).
#[test]
fn resident_in_across_mincore_chunks() {
    let _serial = serial();
    let be = MmapBackend::new();
    let p = be.page_size().0;
    let n = 3 * 65536 + 17;
    let x = be.reserve(Size(n * p), Size(p)).unwrap();
    let at = |i: usize| r(x.base().0 + i * p, p);
    let touched = [0, 65535, 65536, 131071, 131072, n - 1];
    for &i in &touched {
        // SAFETY: our unmapped page.
        unsafe { be.map(at(i)) }.unwrap();
        fill(at(i), 1);
    }
    let whole = resident_in(x).unwrap();
    let across = resident_in(r(x.base().0 + 65535 * p + 1, p)).unwrap();
    let tail = resident_in(r(x.base().0 + (n - 2) * p + 5, 2 * p - 10)).unwrap();
    let window = resident_in(r(x.base().0 + 65000 * p, 70000 * p)).unwrap();
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(whole, Size(touched.len() * p), "whole reservation");
    assert_eq!(across, Size(2 * p), "one page's worth straddling a chunk boundary");
    assert_eq!(tail, Size(p), "the last two pages, one resident");
    assert_eq!(window, Size(4 * p), "pages 65535..=131072 in a window");
}

/// Split `filler` (an unlocked `PROT_NONE` region made before `mlockall`)
/// page by page until the process is at `vm.max_map_count`.
fn fill_map_count(filler: usize, pages: usize, p: usize) -> usize {
    let mut n = 0;
    for i in (1..pages - 1).step_by(2) {
        // SAFETY: our own inaccessible filler region; no memory is touched.
        if unsafe { libc::mprotect((filler + i * p) as *mut libc::c_void, p, libc::PROT_READ) } != 0
        {
            break;
        }
        n += 1;
    }
    n
}

/// At the memlock limit *and* `vm.max_map_count`, an unmap of the middle
/// of a run (two splits): the `MAP_FIXED` replacement is refused
/// (`EAGAIN`) and so is the fallback's `mprotect` (`ENOMEM`). The PageOps
/// contract allows a failed unmap to drop contents; the module docs say a
/// failed `MAP_FIXED` mapping "keeps the old one", and `Replace`'s error
/// is the kernel's. What holds must be: the pages stay mapped read-write
/// (their protection), the rest of the run keeps its data.
fn map_count_child(v: &str) {
    let (strategy, flags) = strategy_of(v);
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    let fpages = 150_000;
    // SAFETY: a fresh anonymous inaccessible mapping of our own.
    let filler = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            fpages * p,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(filler, libc::MAP_FAILED);
    let mut text = String::with_capacity(1 << 16);
    let x = at_limit(&be, flags);
    let run = r(x.base().0 + 8 * p, 24 * p);
    let (lo, mid, hi) =
        (r(run.base().0, 8 * p), r(run.base().0 + 8 * p, 8 * p), r(run.base().0 + 16 * p, 8 * p));
    // SAFETY: our unmapped pages.
    unsafe { be.map(run) }.unwrap();
    fill(run, 0x33);
    let splits = fill_map_count(filler as usize, fpages, p);
    // SAFETY: mapped; not accessed until mapped again (or, on failure,
    // still mapped as the contract says).
    let got = unsafe { be.unmap(mid) };
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    let pm = perms(mid);
    let mid_rw = pm.iter().all(|s| s == "rw-p");
    let mid_kept = mid_rw && reads(mid, 0x33);
    let mid_zero = mid_rw && reads(mid, 0);
    let rest = reads(lo, 0x33) && reads(hi, 0x33);
    use std::fmt::Write;
    let _ = write!(
        text,
        "r29: {v}: {splits} splits; unmap of a run's middle: {got:?}, middle {pm:?} kept {mid_kept} \
         zero {mid_zero}, rest kept {rest}"
    );
    println!("{text}");
    // SAFETY: ours, whole.
    unsafe { libc::munmap(filler, fpages * p) };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    if got.is_ok() {
        return;
    }
    assert!(rest, "{v}: the rest of the run lost its data");
    assert!(mid_rw, "{v}: a failed one-VMA unmap left the middle {pm:?}");
    if v.ends_with(":keep") {
        // The refused `MAP_FIXED` mapping kept the old one; the fallback
        // then drops the pages in place before making them inaccessible
        // (round 54: the other order made inaccessible and read-only pages
        // writable when the drop failed), so the `mprotect` refused here
        // leaves them dropped: mapped read-write, reading zero, as the
        // `PageOps` contract allows a failed unmap (this test asked for
        // the contents kept, as the module docs then said).
        // Where locked pages cannot be dropped (before Linux 5.18) nothing
        // changed: `EAGAIN`, the contents kept.
        match got {
            Err(vmspace_shim::ShimError::Os { errno: libc::ENOMEM, .. }) => {
                assert!(mid_zero, "{v}: refused after the drop, yet not dropped")
            }
            Err(vmspace_shim::ShimError::Os { errno: libc::EAGAIN, .. }) => {
                assert!(mid_kept, "{v}: nothing could be dropped, yet the contents changed")
            }
            _ => panic!("{v}: neither the mprotect's ENOMEM nor EAGAIN: {got:?}"),
        }
        return;
    }
    let errno = match got {
        Err(vmspace_shim::ShimError::Os { errno, .. }) => errno,
        _ => 0,
    };
    assert_eq!(errno, libc::ENOMEM, "{v}: the failure was vm.max_map_count's, reported {got:?}");
}

/// `Replace`'s failed unmap at both limits: the refused `MAP_FIXED`
/// mapping keeps the old one, whose pages the fallback then drops before
/// its `mprotect` is refused (see `map_count_child`).
#[test]
fn replace_failed_unmap_keeps_pages_under_rlimit() {
    let _serial = serial();
    match std::env::var("R29_MAPCOUNT") {
        Ok(v) => map_count_child(&v),
        Err(_) => {
            in_child("replace_failed_unmap_keeps_pages_under_rlimit", "R29_MAPCOUNT", "rf:keep")
        }
    }
}

/// The error of an unmap whose drop-in-place fallback failed at
/// `vm.max_map_count`: `ShimError::Os` carries "the errno it returned",
/// as the same unmap without a lock does (`ENOMEM`).
#[test]
fn fallback_failure_reports_its_errno_under_rlimit() {
    let _serial = serial();
    match std::env::var("R29_MAPCOUNT") {
        Ok(v) => map_count_child(&v),
        Err(_) => {
            // Unlocked controls first (no fallback: the kernel's ENOMEM).
            for v in ["dn:errno", "rn:errno", "df:errno", "rf:errno"] {
                in_child("fallback_failure_reports_its_errno_under_rlimit", "R29_MAPCOUNT", v);
            }
        }
    }
}

/// Under `mlockall(MCL_FUTURE)` every reservation is charged against
/// `RLIMIT_MEMLOCK` (the module docs' `mlockall` cases all assume it fits).
/// An aligned reservation that fits with room to spare: `reserve`
/// over-reserves by the alignment first, and that mapping is charged too.
fn aligned_child() {
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    drop_cap_ipc_lock();
    const LIM: usize = 512;
    let rl = libc::rlimit { rlim_cur: (LIM * p) as u64, rlim_max: (LIM * p) as u64 };
    // SAFETY: plain calls.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl), 0);
        assert_eq!(libc::mlockall(libc::MCL_FUTURE), 0);
    }
    let room = LIM - vmlck_pages(p);
    let unaligned = be.reserve(Size(64 * p), Size(p));
    let aligned = be.reserve(Size(64 * p), Size(1024 * p));
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    println!("r29: room {room} pages; 64 pages: {unaligned:?}; aligned to 1024 pages: {aligned:?}");
    assert!(room > 2 * 64 + 16, "the test needs room: {room}");
    let unaligned = unaligned.expect("64 pages fit");
    // SAFETY: ours.
    unsafe { be.release(unaligned) }.unwrap();
    let aligned = aligned.expect("64 aligned pages fit in the room left");
    assert_eq!(aligned.base().0 % (1024 * p), 0);
    // SAFETY: ours.
    unsafe { be.release(aligned) }.unwrap();
}

#[test]
fn aligned_reserve_under_mlockall_that_fits_under_rlimit() {
    let _serial = serial();
    match std::env::var("R29_ALIGNED") {
        Ok(_) => aligned_child(),
        Err(_) => {
            in_child("aligned_reserve_under_mlockall_that_fits_under_rlimit", "R29_ALIGNED", "1")
        }
    }
}
