//! Written by a reviewer outside the project, from the documented contracts
//! of `/dev/vmspace` (kernel/README.md "/dev/vmspace", the `vmspace-abi`
//! crate's docs), to break them: what reads and writes through the file
//! may see (never stale data, never another object's, never a VM's
//! metadata), ranges across object boundaries, list commands with too
//! small, huge, misplaced or kernel buffers, and two threads racing on one
//! file.
//! Skipped (returning early) when `VMSPACE_DEVICE` is not set.

#![allow(
    clippy::result_large_err,
    reason = "the helpers return the device's error record whole: it is what the tests inspect"
)]

use std::sync::Barrier;

use nix::errno::Errno;
use vmspace::arena::Policy;
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Protection, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_workload::{ArenaTarget, VmTarget};

mod outside_kdev_common;
use outside_kdev_common::*;

/// `len` bytes of fresh anonymous memory with protection `prot` after a
/// first page that is read-write, so a buffer can be placed to run from
/// memory that is there into memory that is not. Never unmapped (the test
/// process is short-lived).
fn two_pages(prot_second: libc::c_int) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping of two pages (checked), of
    // which only the protection of the second changes.
    unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, prot_second), 0);
        p.cast()
    }
}

/// "Remapped pages read zero" and destroyed objects leave nothing behind:
/// a pattern written, then unmapped (in part), protected away and
/// unmapped, or destroyed with the VM, never reads back through a later
/// mapping, in the same VM or a new one at (likely) the same addresses.
#[test]
fn no_stale_data_after_unmap_protect_or_destroy() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size();
    let pattern = vec![0xa5u8; 8 * page];
    let mut back = vec![0u8; 8 * page];
    for round in 0..12 {
        let mut vm = dev.vm(8 * page, 0).unwrap();
        vm.map(vm.range()).unwrap();
        vm.read(vm.base(), &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0), "round {round}: a fresh VM's pages are not zero");
        vm.write(vm.base(), &pattern).unwrap();
        // Unmap two pages in the middle: they are refused, then read zero.
        vm.unmap(range(&vm, 2, 2)).unwrap();
        let e = vm.read(Addr(vm.base().0 + 2 * page), &mut back[..8]).unwrap_err();
        let r = e.record.unwrap();
        assert_eq!(
            (e.errno, r.chain, r.a),
            (Errno::EFAULT, [DEV_NOT_ACCESSIBLE, 0, 0, 0], (vm.base().0 + 2 * page) as u64)
        );
        vm.map(range(&vm, 2, 2)).unwrap();
        vm.read(vm.base(), &mut back).unwrap();
        for (p, chunk) in back.chunks(page).enumerate() {
            let want = if p == 2 || p == 3 { 0 } else { 0xa5 };
            assert!(
                chunk.iter().all(|&b| b == want),
                "round {round}: page {p} holds {:#x}",
                chunk[0]
            );
        }
        if dev.can_protect() {
            // Protected away, then unmapped: the stashed pages must not
            // come back on the next map.
            vm.protect(range(&vm, 4, 2), Protection::None).unwrap();
            vm.unmap(range(&vm, 4, 2)).unwrap();
            vm.map(range(&vm, 4, 2)).unwrap();
            vm.protect(range(&vm, 6, 1), Protection::Read).unwrap();
            vm.unmap(range(&vm, 6, 1)).unwrap();
            vm.map(range(&vm, 6, 1)).unwrap();
            vm.write(Addr(vm.base().0 + 6 * page), b"writable again").unwrap();
            vm.read(Addr(vm.base().0 + 4 * page), &mut back[..2 * page]).unwrap();
            assert!(
                back[..2 * page].iter().all(|&b| b == 0),
                "round {round}: stashed pages came back"
            );
        }
        vm.check().unwrap();
        // Destroyed with everything mapped; a new VM of the same size.
        let (pages, bytes) = vm.destroy().unwrap();
        assert_eq!((pages, bytes), (8, 8 * page as u64));
        let mut next = dev.vm(8 * page, 0).unwrap();
        next.map(next.range()).unwrap();
        next.read(next.base(), &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0), "round {round}: a new VM sees old data");
        let _ = fd;
    }
}

/// Reads and writes through the file: exactly `max_io` bytes move, one more
/// is refused; ranges running out of the VM (into its metadata past the
/// limit, below its base, past the top of `u64`) are refused before
/// anything is copied; a write that reaches a page it may not write changes
/// nothing; the user buffer must be there and (for a read) writable.
#[test]
fn reads_and_writes_through_the_file_at_their_bounds() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size();
    let max = dev.info().max_io as usize;
    let pages = max / page + 4;
    let mut vm = dev.vm(pages * page, 0).unwrap();
    let id = vm.id();
    vm.map(range(&vm, 0, pages - 1)).unwrap(); // the last page stays unmapped
    let base = vm.base().0 as u64;
    let limit = vm.range().limit().0 as u64;
    let data: Vec<u8> = (0..max).map(|i| (i % 251) as u8 + 1).collect();
    io(fd, id, true, base + 8, data.as_ptr(), max as u64).unwrap();
    let mut back = vec![0u8; max + 1];
    io(fd, id, false, base + 8, back.as_mut_ptr(), max as u64).unwrap();
    assert!(back[..max] == data[..]);
    let e = io(fd, id, false, base, back.as_mut_ptr(), max as u64 + 1).unwrap_err();
    assert_eq!((e.0, e.1.chain), (Errno::EINVAL, [DEV_BAD_FIELD, 0, 0, 0]));
    // Into the unmapped last page, from an unaligned address.
    let last = limit - page as u64;
    let e = io(fd, id, false, last - 4, back.as_mut_ptr(), 8).unwrap_err();
    assert_eq!((e.0, e.1.chain, e.1.a), (Errno::EFAULT, [DEV_NOT_ACCESSIBLE, 0, 0, 0], last));
    // Past the limit (where the VM keeps its bit table), below the base,
    // across the top of u64.
    let out = [VM_COMMON, COMMON_OUT_OF_RANGE, 0, 0];
    for (addr, len) in [(limit, 8), (limit - 4, 8), (base - 8, 8), (base - 8, 16), (limit, 0x1000)]
    {
        let e = io(fd, id, false, addr, back.as_mut_ptr(), len).unwrap_err();
        assert_eq!((e.0, e.1.chain), (Errno::EINVAL, out), "read {addr:#x}+{len}");
        let e = io(fd, id, true, addr, data.as_ptr(), len).unwrap_err();
        assert_eq!((e.0, e.1.chain), (Errno::EINVAL, out), "write {addr:#x}+{len}");
    }
    let e = io(fd, id, false, u64::MAX - 3, back.as_mut_ptr(), 8).unwrap_err();
    assert_eq!((e.0, e.1.chain), (Errno::EINVAL, [DEV_BAD_FIELD, 0, 0, 0]));
    // Bad user buffers: a kernel address, null, a read-only page for a read,
    // one that runs into an inaccessible page.
    let before = {
        let mut b = vec![0u8; page];
        vm.read(vm.base(), &mut b).unwrap();
        b
    };
    for bad in [0xffff_ffff_8000_0000u64, 0, 8, u64::MAX - 7] {
        let mut a = VmIoArgs { id, addr: base, len: 8, buf: bad, ..VmIoArgs::ZERO };
        assert_eq!(raw(fd, cmd::VM_WRITE, &mut a), Err(Errno::EFAULT), "{bad:#x}");
        let mut a = VmIoArgs { id, addr: base, len: 8, buf: bad, ..VmIoArgs::ZERO };
        assert_eq!(raw(fd, cmd::VM_READ, &mut a), Err(Errno::EFAULT), "{bad:#x}");
    }
    let ro = two_pages(libc::PROT_NONE);
    // SAFETY: the first page of `ro` is ours and read-write; then read-only.
    unsafe {
        ro.write_bytes(0x3c, 4096);
        assert_eq!(libc::mprotect(ro.cast(), 4096, libc::PROT_READ), 0);
    }
    let e = io(fd, id, false, base, ro, 64).unwrap_err();
    assert_eq!(e.0, Errno::EFAULT);
    // SAFETY: the first page of `ro` is mapped readable.
    assert!(unsafe { std::slice::from_raw_parts(ro, 4096) }.iter().all(|&b| b == 0x3c));
    // SAFETY: 16 bytes before the PROT_NONE page, 16 into it.
    let straddle = unsafe { ro.add(4096 - 16) };
    let (e, w) = io(fd, id, true, base, straddle, 32).unwrap_err();
    assert_eq!(e, Errno::EFAULT);
    let mut after = vec![0u8; page];
    vm.read(vm.base(), &mut after).unwrap();
    // "a command refused before it reached an object (unknown command,
    // wrong size, bad pointer) returns only the errno" (abi/src/lib.rs):
    // no record, and the VM as it was.
    assert!(!w.is_error(), "a record for a bad user buffer: {w:?}");
    assert_eq!(
        (&after[..16], &after[16..32]),
        (&before[..16], &before[16..32]),
        "a VM_WRITE refused with EFAULT changed the VM: the readable 16 bytes of the buffer \
         were copied and the 16 it could not read were written as zeros"
    );
    assert_eq!(after[32..], before[32..]);
    // A write that reaches a read-only page changes nothing (built-in).
    if dev.can_protect() {
        let second = range(&vm, 1, 1);
        vm.protect(second, Protection::Read).unwrap();
        let zeros = vec![0u8; 2 * page];
        let e = io(fd, id, true, base, zeros.as_ptr(), 2 * page as u64).unwrap_err();
        assert_eq!(
            (e.0, e.1.chain, e.1.a),
            (Errno::EFAULT, [DEV_NOT_ACCESSIBLE, 0, 0, 0], base + page as u64)
        );
        let mut now = vec![0u8; page];
        vm.read(vm.base(), &mut now).unwrap();
        assert_eq!(now, after, "a refused write changed the page before the read-only one");
        vm.protect(second, Protection::ReadWrite).unwrap();
    }
    vm.check().unwrap();
}

/// A range command names one VM: ranges of another VM, or running past its
/// limit, are `COMMON_OUT_OF_RANGE` and change neither VM; overlapping an
/// existing mapping or a hole is refused whole.
#[test]
fn ranges_across_object_boundaries_change_nothing() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size() as u64;
    let mut a = dev.vm(4 * page as usize, 0).unwrap();
    let mut b = dev.vm(4 * page as usize, 0).unwrap();
    b.map(b.range()).unwrap();
    b.write(b.base(), b"B's own data").unwrap();
    let cmd_on = |c, id, addr, size, prot| {
        let mut r = VmRangeArgs { id, prot, addr, size, ..VmRangeArgs::ZERO };
        raw(fd, c, &mut r).map_err(|e| (e, r.err.chain))
    };
    let out = Err((Errno::EINVAL, [VM_COMMON, COMMON_OUT_OF_RANGE, 0, 0]));
    let (ab, al) = (a.base().0 as u64, a.range().limit().0 as u64);
    let bb = b.base().0 as u64;
    for (c, prot) in [(cmd::VM_MAP, 0), (cmd::VM_UNMAP, 0), (cmd::VM_PROTECT, PROT_NONE)] {
        assert_eq!(cmd_on(c, a.id(), bb, page, prot), out, "B's page through A's id");
        assert_eq!(cmd_on(c, a.id(), al - page, 2 * page, prot), out, "past A's limit");
        assert_eq!(cmd_on(c, a.id(), ab - page, 2 * page, prot), out, "below A's base");
        assert_eq!(cmd_on(c, a.id(), 0, page, prot), out, "page 0");
    }
    assert_eq!(a.stats().unwrap().mapped, 0);
    assert_eq!(b.stats().unwrap().mapped, 4 * page);
    let mut buf = [0u8; 12];
    b.read(b.base(), &mut buf).unwrap();
    assert_eq!(&buf, b"B's own data");
    // A's id cannot read B's pages either.
    let e = io(fd, a.id(), false, bb, buf.as_mut_ptr(), 12).unwrap_err();
    assert_eq!((e.0, e.1.chain), (Errno::EINVAL, [VM_COMMON, COMMON_OUT_OF_RANGE, 0, 0]));
    // Overlaps refused whole.
    a.map(range(&a, 1, 2)).unwrap();
    assert!(matches!(a.map(range(&a, 0, 2)), Err(vmspace::vm::VmError::AlreadyMapped(_))));
    assert!(matches!(a.map(range(&a, 2, 2)), Err(vmspace::vm::VmError::AlreadyMapped(_))));
    assert!(matches!(a.unmap(range(&a, 0, 2)), Err(vmspace::vm::VmError::NotMapped(_))));
    assert!(matches!(a.unmap(range(&a, 1, 3)), Err(vmspace::vm::VmError::NotMapped(_))));
    assert_eq!(a.runs().unwrap(), vec![range(&a, 1, 2)]);
    assert_eq!(a.stats().unwrap().mapped, 2 * page);
    a.check().unwrap();
    b.check().unwrap();
}

/// `ARENA_WALK` and `VM_RUNS`: "entries it has room for", "*out*: entries
/// there are (only the first `cap` are written)". A zero `cap` needs no
/// buffer; a short one gets exactly `cap` entries and not a byte more; a
/// huge `cap` with a buffer of the right size works; a buffer that is null,
/// a kernel address or runs into an inaccessible page is `EFAULT` and
/// changes nothing.
#[test]
fn list_buffers_too_small_huge_misplaced_or_bogus() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let mut arena = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
    let id = arena.id();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    for i in 0..6 {
        let at = arena.alloc(Size(32), Policy::FirstFit).unwrap();
        if i % 2 == 1 {
            arena.free(at, Size(32)).unwrap();
        }
    }
    let all = (1 << SEG_SPAN) | (1 << SEG_FREE) | (1 << SEG_ALLOCATED) | (1 << SEG_UNFLUSHED);
    let walk = |kinds: u32, buf: u64, cap: u64| {
        let mut l = ListArgs { id, kinds, buf, cap, ..ListArgs::ZERO };
        raw(fd, cmd::ARENA_WALK, &mut l).map(|()| l.count).map_err(|e| (e, l.err.chain, l.count))
    };
    let n = walk(all, 0, 0).unwrap();
    assert!(n >= 5, "{n}");
    const SENTINEL: WireSegment =
        WireSegment { base: 0xdead, limit: 0xbeef, requested: 7, kind: 99, flags: 99 };
    let mut buf = vec![SENTINEL; n as usize + 4];
    assert_eq!(walk(all, buf.as_mut_ptr() as u64, 2), Ok(n));
    assert!(buf[2..].iter().all(|s| *s == SENTINEL), "more than cap entries written");
    assert_eq!(buf[0].kind, SEG_SPAN);
    assert_eq!(walk(all, buf.as_mut_ptr() as u64, u64::MAX), Ok(n));
    assert!(buf[n as usize..].iter().all(|s| *s == SENTINEL), "more than count entries written");
    let full: Vec<WireSegment> = buf[..n as usize].to_vec();
    // An unaligned buffer gets the same entries.
    let mut bytes = vec![0u8; (n as usize + 1) * core::mem::size_of::<WireSegment>()];
    // SAFETY: one byte into a buffer with room for `n` entries after it.
    let odd = unsafe { bytes.as_mut_ptr().add(1) };
    assert_eq!(walk(all, odd as u64, n), Ok(n));
    for (i, want) in full.iter().enumerate() {
        // SAFETY: entry `i` of the `n` the kernel wrote at `odd`, read
        // unaligned.
        let got = unsafe { odd.cast::<WireSegment>().add(i).read_unaligned() };
        assert_eq!(got, *want, "entry {i}");
    }
    // Bogus buffers.
    for bad in [0u64, 8, 0xffff_ffff_8000_0000, u64::MAX - 15] {
        let e = walk(all, bad, 1).unwrap_err();
        assert_eq!(e.0, Errno::EFAULT, "{bad:#x}");
    }
    let p = two_pages(libc::PROT_NONE);
    // SAFETY: one entry before the PROT_NONE page, the rest in it.
    let straddle = unsafe { p.add(4096 - core::mem::size_of::<WireSegment>()) };
    assert_eq!(walk(all, straddle as u64, n).unwrap_err().0, Errno::EFAULT);
    let ro = two_pages(libc::PROT_READ);
    // SAFETY: the second page of `ro` is read-only.
    assert_eq!(walk(all, unsafe { ro.add(4096) } as u64, 1).unwrap_err().0, Errno::EFAULT);
    // Kinds and count.
    for kinds in [0u32, 1 << 4, 1 << 31, u32::MAX] {
        assert_eq!(walk(kinds, 0, 0).unwrap_err().1, [DEV_BAD_FIELD, 0, 0, 0], "kinds {kinds:#x}");
    }
    let mut l = ListArgs { id, kinds: all, count: 1, ..ListArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_WALK, &mut l), Err(Errno::EINVAL));
    // The arena is as it was.
    arena.check().unwrap();
    assert_eq!(walk(all, buf.as_mut_ptr() as u64, n), Ok(n));
    assert_eq!(buf[..n as usize], full[..]);
    // VM_RUNS likewise.
    let page = dev.page_size();
    let mut vm = dev.vm(8 * page, 0).unwrap();
    for i in [0, 2, 4] {
        vm.map(range(&vm, i, 1)).unwrap();
    }
    let runs = |buf: u64, cap: u64, kinds: u32| {
        let mut l = ListArgs { id: vm.id(), kinds, buf, cap, ..ListArgs::ZERO };
        raw(fd, cmd::VM_RUNS, &mut l).map(|()| l.count).map_err(|e| (e, l.err.chain))
    };
    assert_eq!(runs(0, 0, 0), Ok(3));
    let mut rbuf = [WireRange { base: 1, limit: 1 }; 4];
    assert_eq!(runs(rbuf.as_mut_ptr() as u64, 1, 0), Ok(3));
    assert_eq!(rbuf[0].base, vm.base().0 as u64);
    assert_eq!(rbuf[1..], [WireRange { base: 1, limit: 1 }; 3]);
    assert_eq!(runs(0xffff_ffff_8000_0000, 3, 0).unwrap_err().0, Errno::EFAULT);
    assert_eq!(runs(0, 0, 1), Err((Errno::EINVAL, [DEV_BAD_FIELD, 0, 0, 0])));
    vm.check().unwrap();
}

/// Two threads on one file: freeing the same allocation, the same handle,
/// or destroying the same object at once, exactly one succeeds and the
/// other gets the documented refusal; a reader racing a destroy sees the
/// pattern or `DEV_BAD_ID`, never anything else.
#[test]
fn two_threads_racing_on_one_file() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size();
    let mut arena = dev.arena(&ArenaConfig::new(Size(16)).max_tags(1024)).unwrap();
    let id = arena.id();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let gate = Barrier::new(2);
    for round in 0..200 {
        let held = round % 2 == 1;
        let (addr, tag) = if held {
            let h = arena.alloc_handle(Size(64), Policy::InstantFit).unwrap();
            let (a, t) = <vmspace_user::kdev::DevArena as ArenaTarget>::handle_parts(h);
            (a.0 as u64, t)
        } else {
            (arena.alloc(Size(64), Policy::InstantFit).unwrap().0 as u64, 0)
        };
        let results: Vec<(Result<(), Errno>, FreeArgs)> = std::thread::scope(|s| {
            let go = || {
                let mut f = if held {
                    FreeArgs { id, addr, tag, ..FreeArgs::ZERO }
                } else {
                    FreeArgs { id, addr, a: 64, ..FreeArgs::ZERO }
                };
                gate.wait();
                let c = if held { cmd::ARENA_FREE_HANDLE } else { cmd::ARENA_FREE };
                (raw(fd, c, &mut f), f)
            };
            let t = s.spawn(go);
            let mine = go();
            vec![mine, t.join().unwrap()]
        });
        let ok = results.iter().filter(|r| r.0.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        let bad = results.iter().find(|r| r.0.is_err()).unwrap();
        let want = if held { ARENA_BAD_HANDLE } else { ARENA_BAD_FREE };
        assert_eq!((bad.0, bad.1.err.chain[0]), (Err(Errno::EINVAL), want), "round {round}");
    }
    let s = arena.stats().unwrap();
    assert_eq!((s.live, s.allocated, s.bad_frees, s.frees), (0, 0, 200, 200));
    arena.check().unwrap();
    // Destroying the same object twice at once.
    for round in 0..100 {
        let vm = dev.vm(page, 0).unwrap();
        let vid = vm.id();
        std::mem::forget(vm);
        let results: Vec<(Result<(), Errno>, u16)> = std::thread::scope(|s| {
            let go = || {
                let mut d = DestroyArgs { id: vid, ..DestroyArgs::ZERO };
                gate.wait();
                (raw(fd, cmd::DESTROY, &mut d), d.err.chain[0])
            };
            let t = s.spawn(go);
            let mine = go();
            vec![mine, t.join().unwrap()]
        });
        let ok = results.iter().filter(|r| r.0.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        assert!(results.contains(&(Err(Errno::EINVAL), DEV_BAD_ID)), "round {round}: {results:?}");
    }
    // A reader against a destroy.
    for round in 0..20 {
        let mut vm = dev.vm(4 * page, 0).unwrap();
        vm.map(vm.range()).unwrap();
        vm.write(vm.base(), &vec![0x5au8; 4 * page]).unwrap();
        let (vid, base) = (vm.id(), vm.base().0 as u64);
        std::mem::forget(vm);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut buf = vec![0u8; 4 * page];
                gate.wait();
                loop {
                    match io(fd, vid, false, base, buf.as_mut_ptr(), buf.len() as u64) {
                        Ok(()) => assert!(
                            buf.iter().all(|&b| b == 0x5a),
                            "round {round}: torn or stale read"
                        ),
                        Err((e, w)) => {
                            assert_eq!(
                                (e, w.chain),
                                (Errno::EINVAL, [DEV_BAD_ID, 0, 0, 0]),
                                "round {round}"
                            );
                            return;
                        }
                    }
                }
            });
            gate.wait();
            std::thread::sleep(std::time::Duration::from_micros(200));
            let mut d = DestroyArgs { id: vid, ..DestroyArgs::ZERO };
            raw(fd, cmd::DESTROY, &mut d).unwrap();
            assert_eq!((d.leaked, d.leaked_bytes), (4, 4 * page as u64));
            reader.join().unwrap();
        });
    }
}
