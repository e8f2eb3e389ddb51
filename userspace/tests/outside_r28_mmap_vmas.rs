//! Round 28 (outside reviewer): `MmapBackend`'s VMA counts under random
//! map/unmap traffic: in the parent after a `fork`, in a child forked
//! before any run, under `mlockall`, and under `RLIMIT_DATA`. All but
//! `parent_after_fork_keeps_one_vma_per_run` re-execute this binary with
//! their own name and environment variable (`in_child`), so each child
//! test must stay in this file; this binary's tests run one at a time
//! (`serial`).

mod child_reexec;
mod outside_r28_mmap_common;

use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::procfs::vmas_in;
use vmspace_user::{MmapBackend, UnmapStrategy};

use outside_r28_mmap_common::{in_child, r, resident_pages, serial};

/// Random single-page map/unmap traffic over a reservation of `n` pages;
/// returns the page states.
fn traffic(be: &MmapBackend, x: Range, seed: u64, steps: usize) -> Vec<bool> {
    let n = x.size().0 / be.page_size().0;
    traffic_from(be, x, vec![false; n], seed, steps)
}

/// The same from the page states `mapped`.
fn traffic_from(
    be: &MmapBackend,
    x: Range,
    mut mapped: Vec<bool>,
    seed: u64,
    steps: usize,
) -> Vec<bool> {
    let p = be.page_size().0;
    let n = x.size().0 / p;
    let mut s = seed | 1;
    for _ in 0..steps {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let i = (s >> 8) as usize % n;
        let page = r(x.base().0 + i * p, p);
        // SAFETY: a page of our reservation; written only when mapped.
        unsafe {
            if mapped[i] {
                be.unmap(page).unwrap();
            } else {
                be.map(page).unwrap();
                page.base().as_ptr::<u8>().write_volatile(1);
            }
        }
        mapped[i] = !mapped[i];
    }
    mapped
}

/// Maximal runs of equal state: the VMAs a reservation should be made of
/// when every run merges ("VMAs = 2 x runs + 1" with the edges counted).
fn segments(mapped: &[bool]) -> usize {
    1 + mapped.windows(2).filter(|w| w[0] != w[1]).count()
}

/// The VMA claim of the module docs, in the parent after a `fork` (the
/// documented exception is for the child only): runs mapped before the
/// fork, traffic after it (child gone), every run still one VMA.
#[test]
fn parent_after_fork_keeps_one_vma_per_run() {
    let _serial = serial();
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let x = be.reserve(Size(256 * p), Size(p)).unwrap();
    let before = traffic(&be, x, 7, 300);
    // SAFETY: fork in a test process; the child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe exit in the child.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    // More traffic in the parent, over the runs mapped before the fork.
    let after = traffic_from(&be, x, before, 11, 2000);
    let vmas = vmas_in(x).unwrap();
    let mut mapped = Vec::new();
    for i in 0..256 {
        let a = x.base().0 + i * p;
        let v = vmas.iter().find(|v| v.range.contains_addr(Addr(a))).unwrap();
        mapped.push(v.perms == "rw-p");
    }
    let want = segments(&mapped);
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(mapped, after, "protections differ from what was mapped");
    assert_eq!(vmas.len(), want, "parent after fork: VMAs vs runs and gaps");
}

fn locked_traffic_child(flags: i32, tag: &str) {
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::mlockall(flags) }, 0);
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let x = be.reserve(Size(256 * p), Size(p)).unwrap();
    let mapped = traffic(&be, x, 5, 3000);
    let vmas = vmas_in(x).unwrap();
    let want = segments(&mapped);
    let mut inc = vec![0u8; 256];
    let resident_unmapped = (0..256)
        .filter(|&i| !mapped[i] && resident_pages(r(x.base().0 + i * p, p), p, &mut inc[..1]) != 0)
        .count();
    let kernel: Vec<bool> = (0..256)
        .map(|i| {
            let a = Addr(x.base().0 + i * p);
            vmas.iter().find(|v| v.range.contains_addr(a)).unwrap().perms == "rw-p"
        })
        .collect();
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(kernel, mapped, "{tag}: protections differ from what was mapped");
    // Locked pages are the docs' named exception to the VMA count:
    // measured, not asserted.
    println!("r28: {tag}: {} VMAs for {want} runs and gaps (documented exception)", vmas.len());
    assert_eq!(resident_unmapped, 0, "{tag}: unmapped pages still resident");
}

/// Random traffic under mlockall: protections as mapped, no unmapped page
/// resident. The docs name locked pages as an exception to the VMA count:
/// measured (printed), not asserted.
#[test]
fn locked_traffic_onfault() {
    let _serial = serial();
    if std::env::var_os("R28_TRAFFIC_O").is_none() {
        return in_child("locked_traffic_onfault", "R28_TRAFFIC_O");
    }
    locked_traffic_child(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT, "ONFAULT");
}

#[test]
fn locked_traffic_future() {
    let _serial = serial();
    if std::env::var_os("R28_TRAFFIC_F").is_none() {
        return in_child("locked_traffic_future", "R28_TRAFFIC_F");
    }
    locked_traffic_child(libc::MCL_CURRENT | libc::MCL_FUTURE, "FUTURE");
}

/// `VmData` of /proc/self/status in pages.
fn vmdata_pages(page: usize) -> usize {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text.lines().find(|l| l.starts_with("VmData:")).unwrap();
    let kb: usize = line[7..].trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024 / page
}

/// Under a data-size limit with room for 8 pages: a 1 GiB reservation
/// costs nothing (it is `PROT_NONE`), 8 pages map, a ninth is
/// `OutOfMemory` and leaves its range inaccessible, an unmap gives room
/// back, and the reservation merges as documented.
#[test]
fn rlimit_data_reserve_map_unmap() {
    let _serial = serial();
    if std::env::var_os("R28_DATA").is_none() {
        return in_child("rlimit_data_reserve_map_unmap", "R28_DATA");
    }
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    // Preallocate what the test needs after the limit.
    let mut keep = Vec::with_capacity(64);
    let _warm = vmas_in(r(0x1000, p)).unwrap();
    let data = vmdata_pages(p);
    let lim = ((data + 8) * p) as u64;
    let rl = libc::rlimit { rlim_cur: lim, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_DATA, &rl) }, 0);
    let x = be.reserve(Size(1 << 30), Size(p)).expect("a PROT_NONE reservation under RLIMIT_DATA");
    let mut wrong = Vec::new();
    for i in 0..8 {
        // SAFETY: pages of our reservation.
        match unsafe { be.map(r(x.base().0 + 2 * i * p, p)) } {
            Ok(()) => keep.push(i),
            Err(e) => wrong.push(format!("map {i} of 8 within the limit: {e:?}")),
        }
    }
    // SAFETY: ours.
    let ninth = unsafe { be.map(r(x.base().0 + 100 * p, 4 * p)) };
    let after: Vec<String> =
        vmas_in(r(x.base().0 + 100 * p, 4 * p)).unwrap().into_iter().map(|v| v.perms).collect();
    // SAFETY: ours.
    unsafe { be.unmap(r(x.base().0, p)) }.unwrap();
    // SAFETY: ours.
    let again = unsafe { be.map(r(x.base().0 + 200 * p, p)) };
    let n = vmas_in(x).unwrap().len();
    let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain call.
    unsafe { libc::setrlimit(libc::RLIMIT_DATA, &rl) };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert!(wrong.is_empty(), "{wrong:?}");
    assert!(
        matches!(ninth, Err(vmspace_shim::ShimError::OutOfMemory(_))),
        "past the data limit: {ninth:?}"
    );
    assert!(after.iter().all(|p| p == "---p"), "failed map left {after:?}");
    assert!(again.is_ok(), "room given back by an unmap: {again:?}");
    // 8 one-page runs (7 after the unmap, plus one) apart: 2 x 8 + 1.
    assert_eq!(n, 17, "VMAs: 8 runs and their gaps");
}

/// The docs' fork exception is for "a child forked after runs were
/// mapped"; a child forked when the reservation has no run yet inherits
/// one VMA (one `anon_vma` of its own), so its runs merge as documented.
#[test]
fn child_forked_before_runs_keeps_one_vma_per_run() {
    let _serial = serial();
    if std::env::var_os("R28_FORK").is_none() {
        return in_child("child_forked_before_runs_keeps_one_vma_per_run", "R28_FORK");
    }
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let x = be.reserve(Size(256 * p), Size(p)).unwrap();
    // SAFETY: fork in a re-executed single-test process.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mapped = traffic(&be, x, 3, 3000);
        let vmas = vmas_in(x).unwrap();
        let ok = vmas.len() == segments(&mapped);
        println!("r28: forked child: {} VMAs for {} runs and gaps", vmas.len(), segments(&mapped));
        // SAFETY: exit the forked child without running the harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut st = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "child's VMA count: status {st}");
}
