//! `/dev/vmspace` itself, when `VMSPACE_DEVICE` names it (`make
//! kernel-proptest`; skipped otherwise, saying so): every command refuses
//! what it must (unknown commands, wrong sizes, bad pointers, ids of
//! another file, overflowing and out-of-domain values, reserved fields,
//! resource bounds) with the errno and record it documents; reads and
//! writes of VM pages go through the file and honour mapping and
//! protection; destroying reports what was still held.

use std::os::fd::RawFd;

use nix::errno::Errno;
use vmspace::arena::{ArenaError, Policy};
use vmspace::vm::VmError;
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Protection, Range, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig, Device};
use vmspace_workload::{ArenaTarget, VmTarget};

/// `ioctl(fd, cmd, arg)`: the errno it failed with, if it did.
fn raw<T>(fd: RawFd, cmd: u32, arg: *mut T) -> Result<(), Errno> {
    // SAFETY: `arg` is null, bogus (the kernel must refuse it) or points to
    // a live `T`, the size the command names or a deliberately wrong one.
    let rc = unsafe { libc::ioctl(fd, cmd as _, arg) };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

#[test]
fn version_names_the_device_and_its_bounds() {
    let Some(dev) = device_for_tests() else { return };
    let v = dev.info();
    assert_eq!(v.abi_version, vmspace_abi::ABI_VERSION);
    assert!(v.page_size.is_power_of_two() && v.page_size >= 4096);
    assert!(v.max_objects >= 8 && v.max_tags_per_arena >= 8192);
    assert!(v.max_reserved_per_file >= 16 << 20 && v.max_mapped_per_file >= 16 << 20);
    assert!(!dev.backend().is_empty());
    eprintln!(
        "device: backend {:?}, protect {}, bounds per file: {} objects, {} tags ({} per arena), \
         {} MiB reserved, {} MiB mapped",
        dev.backend(),
        dev.can_protect(),
        v.max_objects,
        v.max_tags_per_file,
        v.max_tags_per_arena,
        v.max_reserved_per_file >> 20,
        v.max_mapped_per_file >> 20
    );
}

#[test]
fn unknown_commands_wrong_sizes_and_bad_pointers_are_refused() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let mut big = [0u8; 4096];
    let p = big.as_mut_ptr();
    // An unused number, another type, another size, another direction.
    let unused = vmspace_abi::ioc::iowr::<CheckArgs>(0x3f);
    assert_eq!(raw(fd, unused, p), Err(Errno::ENOTTY));
    assert_eq!(raw(fd, cmd::ARENA_CHECK ^ 0x0100, p), Err(Errno::ENOTTY));
    assert_eq!(raw(fd, cmd::ARENA_CHECK + (8 << 16), p), Err(Errno::ENOTTY));
    assert_eq!(raw(fd, cmd::ARENA_CHECK & !(3 << 30), p), Err(Errno::ENOTTY));
    // Bad pointers: null, low, past the end of what is mapped, the kernel's.
    for bad in [0usize, 8, usize::MAX - 4095, 0xffff_ffff_8000_0000] {
        assert_eq!(raw(fd, cmd::ARENA_CREATE, bad as *mut u8), Err(Errno::EFAULT), "{bad:#x}");
        assert_eq!(raw(fd, cmd::VERSION, bad as *mut u8), Err(Errno::EFAULT), "{bad:#x}");
    }
}

/// `value` in a page of its own, then write-protected: an argument the
/// kernel can read but cannot write back. The page is never unmapped (a
/// page a call; the test process is short-lived).
fn read_only<T: Copy>(value: T) -> *mut T {
    assert!(core::mem::size_of::<T>() <= 4096);
    // SAFETY: a fresh private anonymous mapping of one page (checked), so
    // the write is to memory this function owns, aligned to a page; then
    // only its protection changes.
    unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        p.cast::<T>().write(value);
        assert_eq!(libc::mprotect(p, 4096, libc::PROT_READ), 0);
        p.cast()
    }
}

/// A command whose argument is readable but not writable fails with
/// `EFAULT` before it does anything: no allocation made whose address the
/// caller never learns, no free, no object made or destroyed behind its
/// back.
#[test]
fn an_argument_that_cannot_be_written_back_changes_nothing() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    // Small tag budgets, so that the file's objects bound is reached before
    // its tags bound (the module's is 2^17 tags).
    let c = ArenaConfig::new(Size(16)).max_tags(1024);
    let mut arena = dev.arena(&c).unwrap();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let id = arena.id();

    let alloc = AllocArgs { id, policy: POLICY_INSTANT_FIT, size: 64, ..AllocArgs::ZERO };
    let held = AllocArgs { flags: ALLOC_HELD, ..alloc };
    assert_eq!(raw(fd, cmd::ARENA_ALLOC, read_only(alloc)), Err(Errno::EFAULT));
    assert_eq!(raw(fd, cmd::ARENA_ALLOC, read_only(held)), Err(Errno::EFAULT));
    let s = arena.stats().unwrap();
    assert_eq!((s.allocated, s.allocs, s.failures), (0, 0, 0));

    let a = arena.alloc(Size(64), Policy::InstantFit).unwrap();
    let free = FreeArgs { id, addr: a.0 as u64, a: 64, ..FreeArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_FREE, read_only(free)), Err(Errno::EFAULT));
    assert_eq!(raw(fd, cmd::ARENA_FREE_DEFERRED, read_only(free)), Err(Errno::EFAULT));
    let s = arena.stats().unwrap();
    assert_eq!((s.allocated, s.frees), (64, 0));
    arena.free(a, Size(64)).unwrap();

    let destroy = DestroyArgs { id, ..DestroyArgs::ZERO };
    assert_eq!(raw(fd, cmd::DESTROY, read_only(destroy)), Err(Errno::EFAULT));
    assert_eq!(arena.alloc(Size(16), Policy::InstantFit).unwrap(), Addr(1 << 40));

    // Creations that fail so make no object: more of them than the file
    // may hold objects, and then one that is written back still succeeds.
    let create = ArenaCreateArgs {
        quantum: c.quantum.0 as u64,
        max_tags: c.max_tags as u64,
        default_policy: POLICY_INSTANT_FIT,
        ..ArenaCreateArgs::ZERO
    };
    for _ in 0..=dev.info().max_objects {
        assert_eq!(raw(fd, cmd::ARENA_CREATE, read_only(create)), Err(Errno::EFAULT));
    }
    let mut more = Vec::new();
    for _ in 1..dev.info().max_objects {
        more.push(dev.arena(&c).unwrap());
    }
    assert_eq!(more.len() + 1, dev.info().max_objects as usize);
}

#[test]
fn ids_and_handles_of_another_file_are_refused() {
    let Some(a) = device_for_tests() else { return };
    let b = device_for_tests().unwrap();
    let mut arena = a.arena(&ArenaConfig::new(Size(16))).unwrap();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let h = arena.alloc_handle(Size(64), Policy::FirstFit).unwrap();
    // A's arena id on B's file.
    let mut f = FreeArgs { id: arena.id(), tag: h.tag, addr: h.addr.0 as u64, ..FreeArgs::ZERO };
    assert_eq!(raw(b.fd(), cmd::ARENA_FREE_HANDLE, &mut f), Err(Errno::EINVAL));
    assert_eq!(f.err.chain, [DEV_BAD_ID, 0, 0, 0]);
    // A's handle on an arena of B's built alike: not one of B's.
    let mut other = b.arena(&ArenaConfig::new(Size(16))).unwrap();
    other.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let e = other.free_handle(h).unwrap_err();
    assert!(matches!(e, ArenaError::BadHandle { .. }), "{e:?}");
    // Still A's to free, once.
    assert_eq!(arena.free_handle(h), Ok(Size(64)));
    assert!(matches!(arena.free_handle(h), Err(ArenaError::BadHandle { .. })));
    // A destroyed object's id is stale.
    let id = other.id();
    other.destroy().unwrap();
    let mut c = CheckArgs { id, ..CheckArgs::ZERO };
    assert_eq!(raw(b.fd(), cmd::ARENA_CHECK, &mut c), Err(Errno::EINVAL));
    assert_eq!(c.err.innermost(), DEV_BAD_ID);
}

#[test]
fn every_field_is_checked() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let mut arena = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let id = arena.id();
    let field = |args: &mut AllocArgs| {
        let r = raw(fd, cmd::ARENA_ALLOC, args);
        (r, args.err.innermost())
    };
    let good = AllocArgs { id, size: 64, ..AllocArgs::ZERO };
    let cases = [
        AllocArgs { flags: 1 << 20, ..good },
        AllocArgs { policy: 7, ..good },
        AllocArgs { align: 64, ..good },
        AllocArgs { flags: ALLOC_CONSTRAINED, min: 5, ..good },
        AllocArgs { tag: 3, ..good },
        AllocArgs { addr: 3, ..good },
    ];
    for mut c in cases {
        assert_eq!(field(&mut c), (Err(Errno::EINVAL), DEV_BAD_FIELD), "{c:?}");
    }
    // Values the arena refuses: its own verdict, variant for variant.
    let mut zero = AllocArgs { size: 0, ..good };
    assert_eq!(field(&mut zero), (Err(Errno::EINVAL), ARENA_INVALID_ARGUMENT));
    let mut huge = AllocArgs { size: u64::MAX, ..good };
    assert_eq!(field(&mut huge).0, Err(Errno::EINVAL));
    let mut nocross =
        AllocArgs { flags: ALLOC_CONSTRAINED, size: 64, nocross: 32, ..AllocArgs::ZERO };
    nocross.id = id;
    assert_eq!(field(&mut nocross), (Err(Errno::EINVAL), ARENA_OVER_CONSTRAINED));
    let mut none = AllocArgs { size: 2 << 20, ..good };
    assert_eq!(field(&mut none), (Err(Errno::ENOSPC), ARENA_NO_SPACE));
    // Padding, overflowing ranges, bad kinds and protections.
    let mut span = SpanArgs { id, _pad: 1, base: 0, size: 16, ..SpanArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_ADD, &mut span), Err(Errno::EINVAL));
    let mut walk = ListArgs { id, kinds: 1 << 7, ..ListArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_WALK, &mut walk), Err(Errno::EINVAL));
    // Deferred frees: only the fields each command names, and a deferred
    // free is checked as a free is (a wrong size changes nothing).
    let at = arena.alloc(Size(64), Policy::InstantFit).unwrap();
    let deferred = FreeArgs { id, addr: at.0 as u64, a: 64, ..FreeArgs::ZERO };
    for mut c in [FreeArgs { b: 64, ..deferred }, FreeArgs { tag: 1, ..deferred }] {
        assert_eq!(raw(fd, cmd::ARENA_FREE_DEFERRED, &mut c), Err(Errno::EINVAL), "{c:?}");
        assert_eq!(c.err.innermost(), DEV_BAD_FIELD);
    }
    let mut wrong_size = FreeArgs { a: 48, ..deferred };
    assert_eq!(raw(fd, cmd::ARENA_FREE_DEFERRED, &mut wrong_size), Err(Errno::EINVAL));
    assert_eq!(wrong_size.err.innermost(), ARENA_BAD_FREE);
    for mut c in
        [FreeArgs { id, addr: 16, ..FreeArgs::ZERO }, FreeArgs { id, a: 16, ..FreeArgs::ZERO }]
    {
        assert_eq!(raw(fd, cmd::ARENA_FLUSHED, &mut c), Err(Errno::EINVAL), "{c:?}");
        assert_eq!(c.err.innermost(), DEV_BAD_FIELD);
    }
    let mut d = deferred;
    assert_eq!(raw(fd, cmd::ARENA_FREE_DEFERRED, &mut d), Ok(()));
    assert_eq!(arena.stats().unwrap().unflushed, 64);
    assert_eq!(arena.lookup(at), None);
    let mut f = FreeArgs { id, ..FreeArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_FLUSHED, &mut f), Ok(()));
    assert_eq!(f.size, 64);
    let s = arena.stats().unwrap();
    assert_eq!((s.unflushed, s.deferred_frees, s.flushes), (0, 1, 1));
    // A deferred free by handle reads the address and the tag, nothing
    // else; a stale handle changes nothing.
    let h = arena.alloc_handle(Size(48), Policy::InstantFit).unwrap();
    let (haddr, htag) = <vmspace_user::kdev::DevArena as ArenaTarget>::handle_parts(h);
    let by_handle = FreeArgs { id, addr: haddr.0 as u64, tag: htag, ..FreeArgs::ZERO };
    for mut c in [FreeArgs { a: 48, ..by_handle }, FreeArgs { tag: 0, ..by_handle }] {
        assert_eq!(raw(fd, cmd::ARENA_FREE_HANDLE_DEFERRED, &mut c), Err(Errno::EINVAL), "{c:?}");
        assert_eq!(c.err.innermost(), DEV_BAD_FIELD);
    }
    let mut d = by_handle;
    assert_eq!(raw(fd, cmd::ARENA_FREE_HANDLE_DEFERRED, &mut d), Ok(()));
    assert_eq!(d.size, 48);
    let mut again = by_handle;
    assert_eq!(raw(fd, cmd::ARENA_FREE_HANDLE_DEFERRED, &mut again), Err(Errno::EINVAL));
    assert_eq!(again.err.innermost(), ARENA_BAD_HANDLE);
    assert_eq!(arena.stats().unwrap().unflushed, 48);
    assert_eq!(arena.flushed(), Size(48));
    let mut vm = dev.vm(16 * dev.page_size(), 0).unwrap();
    let over = VmRangeArgs { id: vm.id(), addr: u64::MAX - 4095, size: 8192, ..VmRangeArgs::ZERO };
    let mut o = over;
    assert_eq!(raw(fd, cmd::VM_MAP, &mut o), Err(Errno::EINVAL));
    assert_eq!(o.err.innermost(), DEV_BAD_FIELD);
    let mut prot = VmRangeArgs { id: vm.id(), prot: 9, ..over };
    assert_eq!(raw(fd, cmd::VM_PROTECT, &mut prot), Err(Errno::EINVAL));
    let mut map_prot = VmRangeArgs { id: vm.id(), prot: PROT_READ, ..over };
    assert_eq!(raw(fd, cmd::VM_MAP, &mut map_prot), Err(Errno::EINVAL));
    // The statistics commands read the id alone: an output that is not
    // zero on input is refused, as every other command's is.
    let mut stats = ArenaStatsArgs { id, allocated: 1, ..ArenaStatsArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_STATS, &mut stats), Err(Errno::EINVAL));
    assert_eq!((stats.err.innermost(), stats.allocated), (DEV_BAD_FIELD, 0));
    let mut vstats = VmStatsArgs { id: vm.id(), runs: 1, ..VmStatsArgs::ZERO };
    assert_eq!(raw(fd, cmd::VM_STATS, &mut vstats), Err(Errno::EINVAL));
    assert_eq!(vstats.err.innermost(), DEV_BAD_FIELD);
    let mut vstats = VmStatsArgs { id: vm.id(), ..VmStatsArgs::ZERO };
    assert_eq!(raw(fd, cmd::VM_STATS, &mut vstats), Ok(()));
    assert_eq!(vstats.base, vm.base().0 as u64);
    // An arena id for a VM command and the reverse.
    let mut wrong = CheckArgs { id, ..CheckArgs::ZERO };
    assert_eq!(raw(fd, cmd::VM_CHECK, &mut wrong), Err(Errno::EINVAL));
    assert_eq!(wrong.err.innermost(), DEV_WRONG_KIND);
    // Misaligned and out-of-range VM ranges are the VM's to refuse.
    let page = dev.page_size();
    let r = Range::from_size(Addr(vm.base().0 + 1), Size(page)).unwrap();
    assert!(matches!(vm.map(r), Err(VmError::Common(_))));
    let out = Range::from_size(vm.range().limit(), Size(page)).unwrap();
    assert!(matches!(vm.map(out), Err(VmError::Common(_))));
    assert!(vm.check().is_ok() && arena.check().is_ok());
}

#[test]
fn bounds_per_file_hold() {
    let Some(dev) = device_for_tests() else { return };
    let v = *dev.info();
    // Tags per arena.
    let too_many = ArenaConfig::new(Size(16)).max_tags(v.max_tags_per_arena as usize + 1);
    let e = dev.arena(&too_many).unwrap_err();
    assert_eq!(
        (e.errno, e.record.as_ref().map(|r| r.innermost())),
        (Errno::ENOSPC, Some(DEV_LIMIT))
    );
    // Reserved bytes, counting what a grain may take: one page with a grain
    // as large as the bound takes more than the bound.
    let e = dev.vm(v.max_reserved_per_file as usize + dev.page_size(), 0).unwrap_err();
    assert_eq!(e.record.as_ref().map(|r| r.innermost()), Some(DEV_LIMIT), "{e}");
    let grain = (v.max_reserved_per_file as usize).next_power_of_two();
    let e = dev.vm(dev.page_size(), grain).unwrap_err();
    assert_eq!(e.record.as_ref().map(|r| r.innermost()), Some(DEV_LIMIT), "{e}");
    // Objects.
    let mut held = Vec::new();
    let e = loop {
        match dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)) {
            Ok(a) => held.push(a),
            Err(e) => break e,
        }
    };
    assert_eq!(held.len(), v.max_objects as usize, "{e}");
    assert_eq!(e.record.as_ref().map(|r| r.innermost()), Some(DEV_LIMIT));
    held.clear();
    // Mapped bytes: a VM as large as the bound, mapped whole, then one page
    // more (where reservations may exceed it: on a committed backend the
    // reserved bound is the mapped one).
    let page = dev.page_size();
    let mapped = v.max_mapped_per_file as usize;
    if v.max_reserved_per_file as usize <= mapped {
        return;
    }
    let mut a = dev.vm(mapped, 0).unwrap();
    let mut b = dev.vm(page, 0).unwrap();
    a.map(a.range()).unwrap();
    let e = b.map(b.range()).unwrap_err();
    assert!(format!("{e}").contains("mapped bytes per file"), "{e}");
    a.unmap(a.range()).unwrap();
    b.map(b.range()).unwrap();
}

#[test]
fn pages_are_read_and_written_through_the_file() {
    let Some(dev) = device_for_tests() else { return };
    let page = dev.page_size();
    let mut vm = dev.vm(8 * page, 0).unwrap();
    let first = Range::from_size(vm.base(), Size(4 * page)).unwrap();
    vm.map(first).unwrap();
    let data: Vec<u8> = (0..4 * page).map(|i| (i * 7 + 3) as u8).collect();
    vm.write(vm.base(), &data).unwrap();
    let mut back = vec![0u8; 4 * page];
    vm.read(vm.base(), &mut back).unwrap();
    assert_eq!(back, data);
    // Unmapped pages, and ranges reaching into them, are refused.
    let e = vm.read(Addr(vm.base().0 + 3 * page + 8), &mut back[..page]).unwrap_err();
    assert_eq!(
        (e.errno, e.record.as_ref().map(|r| r.innermost())),
        (Errno::EFAULT, Some(DEV_NOT_ACCESSIBLE))
    );
    // A user buffer that is not there.
    let mut io =
        VmIoArgs { id: vm.id(), addr: vm.base().0 as u64, len: 64, buf: 8, ..VmIoArgs::ZERO };
    assert_eq!(raw(dev.fd(), cmd::VM_READ, &mut io), Err(Errno::EFAULT));
    // Remapped pages read zero.
    vm.unmap(first).unwrap();
    vm.map(first).unwrap();
    vm.read(vm.base(), &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0));
}

#[test]
fn protection_is_honoured_or_refused() {
    let Some(dev) = device_for_tests() else { return };
    let page = dev.page_size();
    let mut vm = dev.vm(8 * page, 0).unwrap();
    let r = Range::from_size(vm.base(), Size(2 * page)).unwrap();
    vm.map(r).unwrap();
    vm.write(vm.base(), b"kept across protection").unwrap();
    let mut buf = [0u8; 22];
    if !dev.can_protect() {
        let e = vm.protect(r, Protection::Read).unwrap_err();
        assert!(matches!(e, VmError::Backend(_)), "{e:?}");
        vm.read(vm.base(), &mut buf).unwrap();
        return;
    }
    vm.protect(r, Protection::None).unwrap();
    let e = vm.read(vm.base(), &mut buf).unwrap_err();
    assert_eq!(e.errno, Errno::EFAULT, "{e}");
    vm.protect(r, Protection::Read).unwrap();
    vm.read(vm.base(), &mut buf).unwrap();
    assert_eq!(&buf, b"kept across protection");
    assert_eq!(vm.write(vm.base(), b"x").unwrap_err().errno, Errno::EFAULT);
    vm.protect(r, Protection::ReadWrite).unwrap();
    vm.write(vm.base(), b"K").unwrap();
    vm.read(vm.base(), &mut buf).unwrap();
    assert_eq!(&buf, b"Kept across protection");
    // Protected pages are unmapped and released like any other.
    vm.protect(r, Protection::None).unwrap();
    vm.unmap(r).unwrap();
    vm.check().unwrap();
}

#[test]
fn destroy_reports_what_was_held() {
    let Some(dev) = device_for_tests() else { return };
    let mut arena = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    arena.alloc(Size(100), Policy::InstantFit).unwrap();
    arena.alloc_handle(Size(16), Policy::BestFit).unwrap();
    assert_eq!(arena.destroy().unwrap(), (2, 112 + 16));
    let page = dev.page_size();
    let mut vm = dev.vm(8 * page, 0).unwrap();
    vm.map(Range::from_size(vm.base(), Size(3 * page)).unwrap()).unwrap();
    assert_eq!(vm.destroy().unwrap(), (3, 3 * page as u64));
    // Left for the file's close, which logs it.
    let mut left = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
    left.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    left.alloc(Size(48), Policy::InstantFit).unwrap();
    std::mem::forget(left);
    drop(dev);
    assert!(Device::from_env().is_some());
}

/// `open` asks for `CAP_SYS_ADMIN`, whatever the node's mode: a child that
/// keeps root's uid but drops the capability from its effective set is
/// refused with `EPERM`.
#[test]
fn opening_needs_cap_sys_admin() {
    let Some(dev) = device_for_tests() else { return };
    drop(dev);
    let path = std::env::var_os(vmspace_user::kdev::DEVICE_ENV).expect("set: the device opened");
    let path =
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())).unwrap();
    // SAFETY: the child makes only system calls (capget, capset, open,
    // _exit), async-signal-safe, before it exits.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", Errno::last()),
        0 => {
            #[repr(C)]
            struct Header {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            #[derive(Clone, Copy, Default)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
            const CAP_SYS_ADMIN: u32 = 21;
            let mut h = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
            let mut d = [Data::default(); 2];
            // SAFETY: a valid header and room for the two data words
            // version 3 reads and writes.
            let code = unsafe {
                if libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) != 0 {
                    3
                } else if d[0].effective & (1 << CAP_SYS_ADMIN) == 0 {
                    4 // not privileged to begin with: nothing to show
                } else {
                    d[0].effective &= !(1 << CAP_SYS_ADMIN);
                    if libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) != 0 {
                        5
                    } else {
                        let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                        match (fd, Errno::last()) {
                            (-1, Errno::EPERM) => 0,
                            (-1, _) => 2,
                            _ => 1,
                        }
                    }
                }
            };
            // SAFETY: ends the child without running the parent's handlers.
            unsafe { libc::_exit(code) }
        }
        child => {
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            assert!(libc::WIFEXITED(status), "child status {status:#x}");
            let code = libc::WEXITSTATUS(status);
            assert_eq!(
                code, 0,
                "0: EPERM as wanted; 1: opened without CAP_SYS_ADMIN; 2: another errno; \
                 3/5: capget/capset failed; 4: the test runs without CAP_SYS_ADMIN"
            );
        }
    }
}
