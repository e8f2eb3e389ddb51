//! Round 28 (outside reviewer): `MmapBackend`'s `Decommit` (and `Replace`)
//! under locked memory: `mlockall` at and below `RLIMIT_MEMLOCK`,
//! `MCL_CURRENT`, and a kernel without `MADV_DONTNEED_LOCKED`. Each test
//! re-executes this binary with its own name and environment variable
//! (`in_child`), so the child test must stay in this file; this binary's
//! tests run one at a time (`serial`).

mod child_reexec;
mod outside_r28_mmap_common;

use vmspace_shim::{PageOps, Size};
use vmspace_user::procfs::vmas_in;
use vmspace_user::{MmapBackend, UnmapStrategy};

use child_reexec::{drop_cap_ipc_lock, vmas_over_noalloc, vmlck_pages_noalloc};
use outside_r28_mmap_common::{in_child, r, resident_pages, serial};

/// Under `mlockall(MCL_FUTURE)` (with or without `MCL_ONFAULT`) and a
/// `RLIMIT_MEMLOCK` that the reservation nearly fills (no CAP_IPC_LOCK):
/// `Decommit`'s unmap of a mapped run is documented to decommit it
/// ("Locked pages ... are replaced as with `Replace`"). The replacement is
/// a `MAP_FIXED` mmap, and the kernel checks `locked_vm + len` against the
/// limit before it unmaps the old pages, so the unmap fails (`EAGAIN`) and
/// the run stays mapped, read-write, resident and locked.
fn memlock_unmap_child(flags: i32, tag: &str) {
    memlock_unmap_child_with(flags, tag, UnmapStrategy::Decommit)
}

fn memlock_unmap_child_with(flags: i32, tag: &str, strategy: UnmapStrategy) {
    drop_cap_ipc_lock();
    let be = MmapBackend::with_strategy(strategy);
    let p = be.page_size().0;
    const LIMIT: usize = 256;
    let rl = libc::rlimit { rlim_cur: (LIMIT * p) as u64, rlim_max: (LIMIT * p) as u64 };
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) }, 0);
    let mut status = vec![0u8; 1 << 20];
    let mut inc = vec![0u8; 1 << 12];
    println!("r28: {tag}: start");
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::mlockall(flags) }, 0, "{tag}: mlockall");
    let before = vmlck_pages_noalloc(&mut status, p);
    // Leave room for 2 more pages: less than the 4-page run.
    let size = LIMIT - before - 2;
    let x = be.reserve(Size(size * p), Size(p)).expect("reserve within the limit");
    let run = r(x.base().0 + 4 * p, 4 * p);
    // SAFETY: our reservation, mapped before written.
    unsafe {
        be.map(run).unwrap();
        std::ptr::write_bytes(run.base().as_ptr::<u8>(), 0x55, 4 * p);
    }
    // SAFETY: our mapped run, not accessed until mapped again.
    let got = unsafe { be.unmap(run) };
    let resident = resident_pages(run, p, &mut inc);
    println!(
        "r28: {tag}: unmap of a locked run at the memlock limit: {got:?}, {resident} resident"
    );
    if got.is_err() {
        // What the suggested fix would do instead: drop the locked pages in
        // place and make them inaccessible (no new mapping, no charge).
        // SAFETY: our run, mapped, not accessed again until mapped.
        let (a, b) = unsafe {
            (
                libc::madvise(run.base().as_ptr(), run.size().0, libc::MADV_DONTNEED_LOCKED),
                libc::mprotect(run.base().as_ptr(), run.size().0, libc::PROT_NONE),
            )
        };
        let after = resident_pages(run, p, &mut inc);
        let n = vmas_over_noalloc(x, &mut status);
        println!(
            "r28: {tag}: MADV_DONTNEED_LOCKED + PROT_NONE instead: rc {a}/{b}, {after} resident, \
             reservation {n} VMA(s)"
        );
    }
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    let perms: Vec<String> = vmas_in(run).unwrap().into_iter().map(|v| v.perms).collect();
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert!(got.is_ok(), "{tag}: Decommit's unmap of locked pages failed: {got:?}");
    assert_eq!(resident, 0, "{tag}: decommitted pages still resident");
    assert!(perms.iter().all(|p| p == "---p"), "{tag}: {perms:?}");
}

#[test]
fn decommit_unmap_locked_at_memlock_limit_future() {
    let _serial = serial();
    if std::env::var_os("R28_MEMLOCK_F").is_none() {
        return in_child("decommit_unmap_locked_at_memlock_limit_future", "R28_MEMLOCK_F");
    }
    memlock_unmap_child(libc::MCL_FUTURE, "MCL_FUTURE");
}

#[test]
fn decommit_unmap_locked_at_memlock_limit_onfault() {
    let _serial = serial();
    if std::env::var_os("R28_MEMLOCK_O").is_none() {
        return in_child("decommit_unmap_locked_at_memlock_limit_onfault", "R28_MEMLOCK_O");
    }
    memlock_unmap_child(libc::MCL_FUTURE | libc::MCL_ONFAULT, "MCL_FUTURE|MCL_ONFAULT");
}

/// `Replace` (the strategy under strict overcommit) the same way: its
/// every unmap is a `MAP_FIXED` mmap, refused at the memlock limit.
#[test]
fn replace_unmap_locked_at_memlock_limit_future() {
    let _serial = serial();
    if std::env::var_os("R28_MEMLOCK_R").is_none() {
        return in_child("replace_unmap_locked_at_memlock_limit_future", "R28_MEMLOCK_R");
    }
    memlock_unmap_child_with(libc::MCL_FUTURE, "Replace, MCL_FUTURE", UnmapStrategy::Replace);
}

/// The same, with plenty of room under the limit: the replacement works
/// (a control for the test above).
#[test]
fn decommit_unmap_locked_with_room_control() {
    let _serial = serial();
    if std::env::var_os("R28_MEMLOCK_C").is_none() {
        return in_child("decommit_unmap_locked_with_room_control", "R28_MEMLOCK_C");
    }
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let mut inc = vec![0u8; 1 << 12];
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::mlockall(libc::MCL_FUTURE) }, 0);
    let x = be.reserve(Size(64 * p), Size(p)).unwrap();
    let run = r(x.base().0 + 4 * p, 4 * p);
    // SAFETY: ours.
    unsafe {
        be.map(run).unwrap();
        std::ptr::write_bytes(run.base().as_ptr::<u8>(), 0x55, 4 * p);
        be.unmap(run).unwrap();
    }
    assert_eq!(resident_pages(run, p, &mut inc), 0);
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    let n = vmas_in(x).unwrap().len();
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(n, 1, "reservation back to one VMA");
}

/// A reservation made before `mlockall(MCL_CURRENT)` (no `MCL_FUTURE`):
/// the reservation is locked, a fresh mapping is not. The unmap's
/// replacement once claimed (in a code comment) to merge back here; it
/// cannot, and the docs list locked pages among the exceptions to the VMA
/// count. What must hold: the run holds nothing, is inaccessible, reads
/// zero when mapped again, and stays one VMA of its own at most (three in
/// all), however often it is mapped and unmapped.
#[test]
fn mcl_current_replaced_run_stays_one_vma_of_its_own() {
    let _serial = serial();
    if std::env::var_os("R28_CURRENT").is_none() {
        return in_child("mcl_current_replaced_run_stays_one_vma_of_its_own", "R28_CURRENT");
    }
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let mut inc = vec![0u8; 1 << 12];
    let x = be.reserve(Size(64 * p), Size(p)).unwrap();
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::mlockall(libc::MCL_CURRENT) }, 0);
    let run = r(x.base().0 + 4 * p, 4 * p);
    let mut wrong = Vec::new();
    for round in 0..3 {
        // SAFETY: ours.
        unsafe {
            be.map(run).unwrap();
            if (0..4).any(|i| ((run.base().0 + i * p) as *const u8).read_volatile() != 0) {
                wrong.push(format!("round {round}: not zero when mapped again"));
            }
            std::ptr::write_bytes(run.base().as_ptr::<u8>(), 0x55, 4 * p);
            be.unmap(run).unwrap();
        }
        let v = vmas_in(x).unwrap();
        if v.len() > 3 || v.iter().any(|v| v.perms != "---p") {
            wrong.push(format!("round {round}: after unmap: {v:?}"));
        }
        let res = resident_pages(run, p, &mut inc);
        if res != 0 {
            wrong.push(format!("round {round}: {res} pages resident after unmap"));
        }
    }
    // SAFETY: ours.
    unsafe { libc::munlockall() };
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Make `madvise(_, _, MADV_DONTNEED_LOCKED)` fail with `EINVAL` in this
/// process (a seccomp filter), as on a kernel before 5.18.
fn no_dontneed_locked() {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 0),                              // nr
        f(JEQ_K, 0, 3, libc::SYS_madvise as u32),          // madvise?
        f(LD_W_ABS, 0, 0, 32),                             // args[2], low half
        f(JEQ_K, 0, 1, libc::MADV_DONTNEED_LOCKED as u32), // DONTNEED_LOCKED?
        f(RET_K, 0, 0, 0x0005_0000 | libc::EINVAL as u32), // SECCOMP_RET_ERRNO
        f(RET_K, 0, 0, 0x7fff_0000),                       // SECCOMP_RET_ALLOW
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
    // SAFETY: plain prctl calls with a valid filter program that outlives them.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _),
            0
        );
    }
    // SAFETY: a fresh anonymous page, to probe the filter on.
    let pg = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(pg, libc::MAP_FAILED);
    // SAFETY: our fresh page.
    let rc = unsafe { libc::madvise(pg, 4096, libc::MADV_DONTNEED_LOCKED) };
    assert_eq!(rc, -1, "filter not in force");
    // SAFETY: ours.
    unsafe { libc::munmap(pg, 4096) };
}

/// On a kernel without `MADV_DONTNEED_LOCKED` (simulated), under
/// `mlockall(MCL_FUTURE)` and a `RLIMIT_MEMLOCK` the reservation exactly
/// fills: the locked first page cannot be dropped, and its replacement (a
/// `MAP_FIXED` mmap, charged against the limit before the old page goes)
/// is refused. `reserve` used to fail; the docs now say the page stays,
/// inaccessible and resident: the reservation is made, one VMA, with at
/// most that one page resident.
#[test]
fn reserve_without_dontneed_locked_at_memlock_limit() {
    let _serial = serial();
    if std::env::var_os("R28_OLDKERNEL").is_none() {
        return in_child("reserve_without_dontneed_locked_at_memlock_limit", "R28_OLDKERNEL");
    }
    drop_cap_ipc_lock();
    no_dontneed_locked();
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    const LIMIT: usize = 256;
    let rl = libc::rlimit { rlim_cur: (LIMIT * p) as u64, rlim_max: (LIMIT * p) as u64 };
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) }, 0);
    let mut status = vec![0u8; 1 << 20];
    let mut inc = vec![0u8; 1 << 12];
    println!("r28: old kernel: start");
    // SAFETY: plain call.
    assert_eq!(unsafe { libc::mlockall(libc::MCL_FUTURE) }, 0);
    // Control: with a page of room to spare it works.
    let room = LIMIT - vmlck_pages_noalloc(&mut status, p);
    let y = be.reserve(Size((room - 1) * p), Size(p));
    let y_ok = y.is_ok();
    if let Ok(y) = y {
        // SAFETY: ours.
        unsafe { be.release(y) }.unwrap();
    }
    let room = LIMIT - vmlck_pages_noalloc(&mut status, p);
    let x = be.reserve(Size(room * p), Size(p));
    let detail = match x {
        Ok(x) => {
            let res = resident_pages(r(x.base().0, p), p, &mut inc);
            let n = vmas_over_noalloc(x, &mut status);
            // SAFETY: ours.
            unsafe { be.release(x) }.unwrap();
            assert!(res <= 1 && n == 1, "first page resident {res}, {n} VMA(s)");
            format!("ok, first page resident {res}, {n} VMA(s)")
        }
        Err(e) => format!("{e:?}"),
    };
    // SAFETY: plain call.
    unsafe { libc::munlockall() };
    println!(
        "r28: old kernel: reserve with one page to spare: {y_ok}; filling the limit: {detail}"
    );
    assert!(y_ok, "control: reserve with room to spare failed");
    assert!(detail.starts_with("ok"), "reserve filling RLIMIT_MEMLOCK: {detail}");
}
