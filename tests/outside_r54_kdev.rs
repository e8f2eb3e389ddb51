//! Round 54 (outside reviewer): what the `/dev/vmspace` client owns and
//! gives back. Without a device: a refused open closes what it opened
//! (kdev/mod.rs:94-104), and every error record, whatever its bytes,
//! decodes without a panic as kdev/error.rs documents. With a device
//! (`VMSPACE_DEVICE`, else these return early): `DevVm::destroy` and
//! `DevArena::destroy` close the file with the last handle
//! (kdev/vm.rs:126-129, kdev/arena.rs:255-258), a drop destroys the
//! object in the kernel (kdev/mod.rs:18-20), and a destroyed object is
//! not destroyed a second time (the handle's drop does not run).
//!
//! Tests that count or test file descriptors take one lock, so that no
//! other test of this file opens one meanwhile.

use std::sync::Mutex;

use vmspace::arena::{ArenaError, Policy};
use vmspace::vm::VmError;
use vmspace::CommonError;
use vmspace_abi::args::{DestroyArgs, VmStatsArgs};
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Size};
use vmspace_user::kdev::{
    decode_arena, decode_vm, describe, device_for_tests, ArenaConfig, Device, KdevError, OpenError,
};
use vmspace_workload::{ArenaTarget, VmTarget};

static FDS: Mutex<()> = Mutex::new(());

fn fds() -> std::sync::MutexGuard<'static, ()> {
    FDS.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags != -1
}

#[test]
fn refused_opens_close_what_they_opened() {
    let _g = fds();
    let before = open_fds();
    for _ in 0..200 {
        assert!(matches!(Device::open("/dev/null"), Err(OpenError::Version(_))));
        assert!(matches!(Device::open("/dev/zero"), Err(OpenError::Version(_))));
        // A directory cannot be opened read-write.
        assert!(matches!(Device::open("/proc"), Err(OpenError::Io(_))));
    }
    assert_eq!(open_fds(), before, "refused opens left descriptors open");
}

/// Every known code and a few unknown ones of every layer.
fn codes() -> Vec<u16> {
    let mut v = vec![NONE, 0x0001, 0x00ff, 0x0100, 0x01ff, 0x0200, 0x0300, 0x0400, 0x0500];
    v.extend([DEV_BAD_ID, DEV_BAD_FIELD, DEV_LIMIT, DEV_WRONG_KIND, DEV_NOT_ACCESSIBLE]);
    v.extend(0x0201..=0x0210);
    v.extend([ARENA_OTHER, 0x0211, 0x0305, 0x03ff, 0x0406, COMMON_OTHER, 0x050c, SHIM_OTHER]);
    v.extend(0x0301..=0x0304);
    v.extend(0x0401..=0x0405);
    v.extend(0x0501..=0x050b);
    v.extend([0x0600, 0xffff, 0x8001]);
    v
}

/// Records with every pair of codes at the top, odd payloads (extreme
/// numbers, a message length past the buffer, a message cut inside a
/// UTF-8 character, an unknown op) decode as the docs say: no panic, a
/// VM code at the top of an arena record is the source VM's error
/// (kdev/error.rs:165-169), anything else unknown an `InvalidArgument`
/// naming the device code, and `describe` says something.
#[test]
fn any_record_decodes_without_a_panic() {
    let codes = codes();
    let mut n = 0;
    for &c0 in &codes {
        for &c1 in &codes {
            for variant in 0..3u64 {
                let mut w = WireError::ZERO;
                w.chain = [c0, c1, codes[(variant as usize * 7) % codes.len()], 0xffff];
                w.a = [0, u64::MAX, 1 << 63][variant as usize];
                w.b = [u64::MAX, 0, 0x1000][variant as usize];
                w.c = u64::MAX;
                w.flags = u32::MAX;
                w.op = [0, u32::MAX, 5][variant as usize];
                w.errno = i32::MIN;
                // "é" cut in half at the end, and a length past the buffer.
                w.msg[..3].copy_from_slice(b"ab\xc3");
                w.msg_len = [3, u32::MAX, 81][variant as usize];
                let a = decode_arena(&w);
                let v = decode_vm(&w);
                assert!(!describe(&w).is_empty());
                assert!(!a.to_string().is_empty() && !v.to_string().is_empty());
                if c0 >> 8 == 0x03 {
                    assert_eq!(a, ArenaError::Vm(v), "{:x?}", w.chain);
                }
                if c0 >> 8 != 0x02 && c0 >> 8 != 0x03 {
                    match &a {
                        ArenaError::InvalidArgument(m) => {
                            assert!(m.contains("device code"), "{m}")
                        }
                        other => panic!("{:x?} decoded as {other:?}", w.chain),
                    }
                }
                // DEV_NOT_ACCESSIBLE: the page VM_READ or VM_WRITE could not
                // reach, as `NotMapped` (kdev/error.rs:136-138).
                if c0 == DEV_NOT_ACCESSIBLE {
                    let at = vmspace_shim::Range::from_size(Addr(w.a as usize), Size(1));
                    let want = at.unwrap_or(vmspace_shim::Range::empty(Addr(w.a as usize)));
                    assert!(
                        matches!(v, VmError::NotMapped(r) if r == want || r.base().0 == w.a as usize),
                        "{v:?}"
                    );
                } else if c0 >> 8 != 0x03 {
                    assert!(
                        matches!(v, VmError::Common(CommonError::InvalidArgument(_))),
                        "{:x?} decoded as {v:?}",
                        w.chain
                    );
                }
                let e = KdevError {
                    command: "X",
                    errno: nix::errno::Errno::EINVAL,
                    record: Some(Box::new(w)),
                };
                assert!(e.to_string().starts_with("X: "));
                n += 1;
            }
        }
    }
    assert_eq!(n, codes.len() * codes.len() * 3);
}

// ---- With a device ----------------------------------------------------

/// `VM_STATS` of `id` through the raw descriptor: `Err(innermost code)`.
fn raw_vm_stats(dev: &Device, id: u32) -> Result<VmStatsArgs, u16> {
    let mut a = VmStatsArgs { id, ..VmStatsArgs::ZERO };
    // SAFETY: `a` is the command's argument, live for the call.
    let rc = unsafe {
        libc::ioctl(dev.fd(), vmspace_abi::cmd::VM_STATS as _, &mut a as *mut VmStatsArgs)
    };
    if rc == 0 {
        Ok(a)
    } else {
        Err(a.err.innermost())
    }
}

/// `DESTROY` of `id` through the raw descriptor: `Err(innermost code)`.
fn raw_destroy(dev: &Device, id: u32) -> Result<(u64, u64), u16> {
    let mut a = DestroyArgs { id, ..DestroyArgs::ZERO };
    // SAFETY: `a` is the command's argument, live for the call.
    let rc = unsafe {
        libc::ioctl(dev.fd(), vmspace_abi::cmd::DESTROY as _, &mut a as *mut DestroyArgs)
    };
    if rc == 0 {
        Ok((a.leaked, a.leaked_bytes))
    } else {
        Err(a.err.innermost())
    }
}

#[test]
fn a_destroyed_vm_closes_the_file_with_the_last_handle() {
    let _g = fds();
    let Some(dev) = device_for_tests() else { return };
    let page = dev.page_size();
    let fd = dev.fd();
    let mut vm = dev.vm(16 * page, 0).unwrap();
    let r = vmspace_shim::Range::from_size(vm.base(), Size(2 * page)).unwrap();
    vm.map(r).unwrap();
    drop(dev);
    assert!(is_open(fd), "the VM's handle keeps the file open");
    // kdev/vm.rs:526-529: the handle's share of the file goes with
    // `destroy`, as with the fixed `DevArena::destroy`.
    assert_eq!(vm.destroy().unwrap(), (2, 2 * page as u64), "what it still had mapped");
    assert!(!is_open(fd), "DevVm::destroy left the device file open");
}

#[test]
fn a_destroyed_arena_closes_the_file_and_reports_what_it_held() {
    let _g = fds();
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let mut arena = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    arena.alloc(Size(32), Policy::BestFit).unwrap();
    arena.alloc(Size(48), Policy::FirstFit).unwrap();
    drop(dev);
    assert!(is_open(fd));
    assert_eq!(arena.destroy().unwrap(), (2, 80));
    assert!(!is_open(fd), "DevArena::destroy left the device file open");
}

/// A drop destroys the object in the kernel (kdev/mod.rs:18-20); a
/// `destroy` does it once, the handle's drop never running after it: an
/// object made later in the file (which may get the same id back) lives.
#[test]
fn drop_destroys_and_destroy_is_not_repeated() {
    let _g = fds();
    let Some(dev) = device_for_tests() else { return };
    let page = dev.page_size();
    let vm = dev.vm(8 * page, 0).unwrap();
    let id = vm.id();
    assert!(raw_vm_stats(&dev, id).is_ok());
    drop(vm);
    assert_eq!(raw_vm_stats(&dev, id).map(|_| ()), Err(DEV_BAD_ID), "a dropped VM lives on");
    assert_eq!(raw_destroy(&dev, id), Err(DEV_BAD_ID), "a dropped VM could be destroyed again");
    for _ in 0..8 {
        let a = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
        let first = a.id();
        a.destroy().unwrap();
        let later = dev.vm(4 * page, 0).unwrap();
        assert!(raw_vm_stats(&dev, later.id()).is_ok(), "id {first:#x} then {:#x}", later.id());
        later.check().unwrap();
        drop(later);
    }
}
