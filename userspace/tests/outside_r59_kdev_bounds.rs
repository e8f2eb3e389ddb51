//! Round 59 (outside reviewer): the bounds `kdev::list::read_list` now puts
//! on `ARENA_WALK` / `VM_RUNS` counts come from the device itself, so a
//! device that lies once more is trusted again:
//!
//! * `DevVm::runs` bounds the count by `pages / 2 + 1` of the VM's range,
//!   and that range is whatever `VM_RESERVE` answered
//!   (userspace/src/kdev/vm.rs `reserve`: `Range::new(a.base, a.limit)`,
//!   unchecked against the size asked for or against VERSION's
//!   `max_reserved_per_file`). A device answering a 2^52-byte range for a
//!   1 GiB request makes `most` 2^39 + 1, and a count of 2^39 then sizes
//!   `vec![WireRange::ZERO; 2^39]` (8 TiB): the allocator aborts.
//! * `DevArena::segments` bounds it by VERSION's `max_tags_per_arena`, which
//!   the core itself caps (`vmspace::arena::MAX_TAGS`); a device reporting
//!   `u64::MAX` there removes the bound.
//!
//! Was a DEFECT (fixed: `DevVm::reserve` refuses a range larger than asked
//! or than a file may reserve, runs are bounded by the pages a file may map
//! too, segments by the core's `MAX_TAGS`, and `read_list` grows its buffer
//! fallibly). FAILED then (children killed by SIGABRT, "memory allocation
//! of ... failed"). Fix proposed: in `DevVm::reserve`, refuse (EPROTO) a range larger
//! than the size asked for rounded up to the grain (or than
//! `max_reserved_per_file`); bound runs also by `max_mapped_per_file /
//! page` (runs never outnumber mapped pages) and segments by
//! `min(max_tags_per_arena, vmspace::arena::MAX_TAGS)`; and have
//! `read_list` grow its buffer with `try_reserve_exact`, answering ENOMEM
//! instead of aborting, whatever bound it was given.
//!
//! Same harness as outside_r58_kdev_counts.rs: this binary's own `ioctl`
//! plays the device on one marked fd; each case runs in a child under
//! RLIMIT_AS = 1 GiB with a 20 s watchdog.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vmspace::arena::SegmentKinds;
use vmspace::Size;
use vmspace_abi::args::{ArenaCreateArgs, ListArgs, VersionArgs, VmReserveArgs};
use vmspace_abi::cmd::nr;
use vmspace_abi::{ABI_VERSION, IOCTL_TYPE};
use vmspace_user::kdev::{ArenaConfig, Device};

static FAKE_FD: AtomicI32 = AtomicI32::new(-1);
static COUNT: AtomicU64 = AtomicU64::new(0);
static MAX_TAGS: AtomicU64 = AtomicU64::new(1 << 16);
static VM_BYTES: AtomicU64 = AtomicU64::new(1 << 30);

/// The executable's `ioctl`: the fake device on `FAKE_FD`, the kernel
/// otherwise.
///
/// # Safety
///
/// As `ioctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(
    fd: libc::c_int,
    req: libc::c_ulong,
    arg: *mut libc::c_void,
) -> libc::c_int {
    let req32 = req as u32;
    if fd != FAKE_FD.load(Ordering::SeqCst) || (req32 >> 8) & 0xff != IOCTL_TYPE {
        // SAFETY: the caller's ioctl, passed on unchanged.
        return unsafe { libc::syscall(libc::SYS_ioctl, fd, req, arg) } as libc::c_int;
    }
    let n = req32 & 0xff;
    // SAFETY: `arg` points to the command's argument struct.
    unsafe {
        match n {
            x if x == nr::VERSION => {
                let v = &mut *arg.cast::<VersionArgs>();
                v.abi_version = ABI_VERSION;
                v.page_size = 4096;
                v.max_objects = 32;
                v.max_tags_per_arena = MAX_TAGS.load(Ordering::SeqCst);
                v.max_tags_per_file = 1 << 18;
                v.max_reserved_per_file = 1 << 30;
                v.max_mapped_per_file = 64 << 20;
                v.max_io = 1 << 20;
            }
            x if x == nr::ARENA_CREATE => (*arg.cast::<ArenaCreateArgs>()).id = 7,
            x if x == nr::VM_RESERVE => {
                let a = &mut *arg.cast::<VmReserveArgs>();
                a.id = 8;
                a.base = 1 << 40;
                a.limit = (1 << 40) + VM_BYTES.load(Ordering::SeqCst);
            }
            x if x == nr::ARENA_WALK || x == nr::VM_RUNS => {
                (*arg.cast::<ListArgs>()).count = COUNT.load(Ordering::SeqCst);
            }
            _ => {}
        }
    }
    0
}

const CHILD: &str = "OUTSIDE_R59_KDEV_BOUNDS_CHILD";
const TEST: &str = "device_supplied_bounds_do_not_size_allocations_under_rlimit";

fn fake_device() -> Device {
    let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    FAKE_FD.store(fd, Ordering::SeqCst);
    // SAFETY: closing the fd we just made, so that Device::open reuses it.
    unsafe { libc::close(fd) };
    let dev = Device::open("/dev/null").expect("the fake device opens");
    assert_eq!(dev.fd(), fd, "the device did not get the marked fd");
    dev
}

fn child(case: &str) {
    let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
    // SAFETY: plain syscall on our own process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    match case {
        "vm-wider-than-asked" => {
            VM_BYTES.store(1 << 52, Ordering::SeqCst);
            COUNT.store(1 << 39, Ordering::SeqCst);
        }
        "arena-unbounded-version" => {
            MAX_TAGS.store(u64::MAX, Ordering::SeqCst);
            COUNT.store(1 << 40, Ordering::SeqCst);
        }
        "vm-control" => COUNT.store(300, Ordering::SeqCst),
        _ => unreachable!(),
    }
    let dev = fake_device();
    if case.starts_with("arena") {
        let a = dev.arena(&ArenaConfig::new(Size(4096))).unwrap();
        let got = a.segments(SegmentKinds::ALL).map(|v| v.len());
        assert!(got.is_err(), "{case}: {got:?}");
        std::mem::forget(a);
    } else {
        // Ask for 1 GiB: whatever range the device answers.
        let got = dev.vm(1 << 30, 4096).and_then(|v| {
            let r = v.runs().map(|r| r.len());
            std::mem::forget(v);
            r
        });
        match case {
            "vm-control" => assert_eq!(got.unwrap(), 300),
            _ => assert!(got.is_err(), "{case}: {got:?}"),
        }
    }
}

#[test]
fn device_supplied_bounds_do_not_size_allocations_under_rlimit() {
    if let Ok(case) = std::env::var(CHILD) {
        return child(&case);
    }
    let mut bad = Vec::new();
    for case in ["vm-control", "vm-wider-than-asked", "arena-unbounded-version"] {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, case)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break Some(st);
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                let _ = c.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = c.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let why = err.lines().find(|l| l.contains("panicked") || l.contains("memory allocation"));
        match st {
            Some(st) if st.success() => {}
            Some(st) => bad.push(format!(
                "{case}: exit {:?} signal {:?}: {}",
                st.code(),
                st.signal(),
                why.unwrap_or("")
            )),
            None => bad.push(format!("{case}: still running after 20 s (killed)")),
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
