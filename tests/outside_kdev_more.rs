//! Written by a reviewer outside the project, from the documented contracts
//! of `/dev/vmspace` (kernel/README.md "/dev/vmspace", the `vmspace-abi`
//! crate's docs, `Vm`'s "bad ranges ... are errors that leave the VM
//! unchanged"), to break them: importing arenas whose quantum and source
//! grain disagree, whose source runs dry or whose own spans lie where the
//! source imports; protection over ranges the VM refuses or splits; the
//! statistics at any scale; deferred frees; a forked child sharing the
//! file.
//! Skipped (returning early) when `VMSPACE_DEVICE` is not set.

#![allow(
    clippy::result_large_err,
    reason = "the helpers return the device's error record whole: it is what the tests inspect"
)]

use nix::errno::Errno;
use vmspace::arena::{ArenaError, Policy};
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Protection, Range, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_workload::{ArenaTarget, VmTarget};

mod outside_kdev_common;
use outside_kdev_common::*;

/// "imports are mapped, give-backs unmapped": an arena whose quantum is
/// above its source's grain still hands out quantum-aligned allocations;
/// one whose source is too small for a single quantum fails cleanly; a
/// source grain far above the size asked for is honoured; a source that
/// runs dry refuses the next allocation with the arena unchanged, and
/// freeing everything unmaps everything.
#[test]
fn importing_arenas_at_their_edges() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size();
    // Quantum 16 pages over a page-grain source.
    let q = 16 * page;
    let mut a = dev.arena(&ArenaConfig::new(Size(q)).max_tags(512).import(64 * page)).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let at = a.alloc(Size(q), Policy::InstantFit).unwrap();
        assert_eq!(at.0 % q, 0, "{at:?} is not a multiple of the quantum {q:#x}");
        got.push(at);
    }
    a.check().unwrap();
    for at in got {
        a.free(at, Size(q)).unwrap();
    }
    assert_eq!(a.stats().unwrap().source_mapped, 0);
    a.check().unwrap();
    drop(a);
    // The largest quantum over a source smaller than it: nothing fits.
    let mut b = dev.arena(&ArenaConfig::new(Size(1 << 27)).max_tags(512).import(16 << 20)).unwrap();
    let e = b.alloc(Size(1), Policy::InstantFit).unwrap_err();
    assert!(
        matches!(e, ArenaError::NoSpace { .. } | ArenaError::Vm(_) | ArenaError::Backing(_)),
        "{e:?}"
    );
    b.check().unwrap();
    assert_eq!(b.stats().unwrap().source_mapped, 0);
    drop(b);
    // A 2 MiB source grain for a one-page source.
    let mut c = ArenaCreateArgs {
        quantum: page as u64,
        max_tags: 512,
        import_size: page as u64,
        import_quantum: 2 << 20,
        ..ArenaCreateArgs::ZERO
    };
    // SAFETY: `c` is a live ArenaCreateArgs, the command's argument.
    assert_eq!(unsafe { libc::ioctl(fd, cmd::ARENA_CREATE as _, &mut c) }, 0, "{:?}", c.err);
    let mut s = ArenaStatsArgs { id: c.id, ..ArenaStatsArgs::ZERO };
    let mut al = AllocArgs { id: c.id, size: page as u64, ..AllocArgs::ZERO };
    // SAFETY: live arguments of their commands.
    unsafe {
        assert_eq!(libc::ioctl(fd, cmd::ARENA_ALLOC as _, &mut al), 0, "{:?}", al.err);
        assert_eq!(libc::ioctl(fd, cmd::ARENA_STATS as _, &mut s), 0);
    }
    assert!(s.source_reserved >= 2 << 20, "{s:?}");
    let mut d = DestroyArgs { id: c.id, ..DestroyArgs::ZERO };
    // SAFETY: a live argument of its command.
    assert_eq!(unsafe { libc::ioctl(fd, cmd::DESTROY as _, &mut d) }, 0);
    assert_eq!((d.leaked, d.leaked_bytes), (1, page as u64));
    // A source of 16 pages, drained a page at a time.
    let mut e = dev.arena(&ArenaConfig::new(Size(page)).max_tags(512).import(16 * page)).unwrap();
    let mut held = Vec::new();
    let err = loop {
        match e.alloc(Size(page), Policy::FirstFit) {
            Ok(at) => held.push(at),
            Err(err) => break err,
        }
        assert!(held.len() <= 16, "more pages than the source has");
    };
    assert!(!held.is_empty(), "{err:?}");
    let s = e.stats().unwrap();
    assert_eq!((s.live, s.allocated), (held.len() as u64, (held.len() * page) as u64), "{err:?}");
    assert!(s.source_mapped <= 16 * page as u64);
    e.check().unwrap();
    for at in held {
        e.free(at, Size(page)).unwrap();
    }
    let s = e.stats().unwrap();
    assert_eq!((s.source_mapped, s.imported, s.total), (0, 0, 0), "give-backs left mapped");
    e.check().unwrap();
}

/// Protection over ranges the VM must refuse leaves every page as it was;
/// protection split over part of a protected range applies to that part
/// only; pages protected every way unmap, and the VM checks, afterwards.
#[test]
fn protection_refused_or_split_changes_only_what_it_names() {
    let Some(dev) = device_for_tests() else { return };
    if !dev.can_protect() {
        return; // the module refuses every protect (kdev_device covers it)
    }
    let page = dev.page_size();
    let mut vm = dev.vm(8 * page, 0).unwrap();
    vm.map(range(&vm, 1, 3)).unwrap();
    vm.write(Addr(vm.base().0 + page), &vec![0x11u8; 3 * page]).unwrap();
    // Over an unmapped page, past the limit, misaligned: refused.
    for (r, what) in [
        (range(&vm, 0, 3), "reaching an unmapped page below"),
        (range(&vm, 2, 3), "reaching an unmapped page above"),
        (range(&vm, 7, 1), "an unmapped page"),
    ] {
        for p in [Protection::None, Protection::Read] {
            assert!(vm.protect(r, p).is_err(), "{what}: {p:?} accepted");
            // Every mapped page still readable and writable.
            vm.write(Addr(vm.base().0 + page), b"w").unwrap();
            vm.write(Addr(vm.base().0 + 3 * page), b"w").unwrap();
            let mut b = [0u8; 1];
            vm.read(Addr(vm.base().0 + 2 * page), &mut b).unwrap();
            assert_eq!(b[0], 0x11, "{what}: {p:?}");
        }
    }
    let mis = Range::from_size(Addr(vm.base().0 + page + 64), Size(page)).unwrap();
    assert!(vm.protect(mis, Protection::None).is_err());
    vm.write(Addr(vm.base().0 + page), b"w").unwrap();
    // Split: none over pages 1-3, then read-write on page 2 only.
    vm.protect(range(&vm, 1, 3), Protection::None).unwrap();
    vm.protect(range(&vm, 2, 1), Protection::ReadWrite).unwrap();
    let mut b = [0u8; 8];
    vm.read(Addr(vm.base().0 + 2 * page), &mut b).unwrap();
    assert_eq!(b, [0x11; 8], "page 2 lost its contents");
    for p in [1, 3] {
        let e = vm.read(Addr(vm.base().0 + p * page), &mut b).unwrap_err();
        let r = e.record.unwrap();
        assert_eq!(
            (e.errno, r.chain[0], r.a),
            (Errno::EFAULT, DEV_NOT_ACCESSIBLE, (vm.base().0 + p * page) as u64)
        );
    }
    // A read across pages 2 and 3 names page 3.
    let e = vm.read(Addr(vm.base().0 + 3 * page - 4), &mut b).unwrap_err();
    assert_eq!(e.record.unwrap().a, (vm.base().0 + 3 * page) as u64);
    // Read-only over 1-2: page 1 comes back with its contents.
    vm.protect(range(&vm, 1, 2), Protection::Read).unwrap();
    vm.read(Addr(vm.base().0 + page), &mut b).unwrap();
    assert_eq!(b[0], b'w');
    assert_eq!(vm.write(Addr(vm.base().0 + 2 * page), b"x").unwrap_err().errno, Errno::EFAULT);
    // Stats and runs count protected pages as mapped; all of it unmaps.
    let s = vm.stats().unwrap();
    assert_eq!((s.mapped, s.runs), (3 * page as u64, 1));
    vm.check().unwrap();
    vm.unmap(range(&vm, 1, 3)).unwrap();
    assert_eq!(vm.stats().unwrap().mapped, 0);
    vm.check().unwrap();
    // Mapped again: zero and writable.
    vm.map(range(&vm, 1, 3)).unwrap();
    vm.write(Addr(vm.base().0 + 3 * page - 4), &[1u8; 8]).unwrap();
    let mut all = vec![0u8; 3 * page];
    vm.read(Addr(vm.base().0 + page), &mut all).unwrap();
    assert!(all[..2 * page - 4].iter().all(|&x| x == 0));
    let mut c = CheckArgs { id: vm.id(), ..CheckArgs::ZERO };
    // SAFETY: a live argument of its command.
    assert_eq!(unsafe { libc::ioctl(dev.fd(), cmd::VM_CHECK as _, &mut c) }, 0);
}

/// `ArenaStatsArgs`: "Fragmentation, per mille", "The largest free
/// segment", "Free segments per free list (list `i`: sizes in `[2^i,
/// 2^(i+1))`)", computed in the kernel without 128-bit division: checked
/// against the formula in 128-bit arithmetic, for small spans and for
/// spans whose sizes times 1000 overflow 64 bits.
#[test]
fn fragmentation_and_histogram_at_any_scale() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    for (base, size, cut) in [
        (1u64 << 40, 1024u64, 512u64),
        (1 << 62, 1 << 61, 1 << 60),
        (1 << 62, (1 << 62) - 16, 3 << 59),
    ] {
        let mut a = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
        a.add(Addr(base as usize), Size(size as usize)).unwrap();
        let mut x = AllocArgs {
            id: a.id(),
            flags: ALLOC_CONSTRAINED | ALLOC_EXACT,
            size: 16,
            exact: base + cut,
            ..AllocArgs::ZERO
        };
        // SAFETY: a live argument of its command.
        assert_eq!(unsafe { libc::ioctl(fd, cmd::ARENA_ALLOC as _, &mut x) }, 0, "{:?}", x.err);
        let s = a.stats().unwrap();
        let (lo, hi) = (cut, size - cut - 16);
        let (free, largest) = (lo + hi, lo.max(hi));
        assert_eq!((s.free, s.largest_free, s.allocated), (free, largest, 16), "span {size:#x}");
        let want = 1000 - (largest as u128 * 1000 / free as u128) as u32;
        assert!(
            s.fragmentation == want || s.fragmentation + 1 == want,
            "span {size:#x}: fragmentation {} per mille, the formula says {want}",
            s.fragmentation
        );
        let mut hist = [0u64; HISTOGRAM_LEN];
        for f in [lo, hi] {
            hist[63 - f.leading_zeros() as usize] += 1;
        }
        assert_eq!(s.histogram, hist, "span {size:#x}");
        a.check().unwrap();
    }
}

/// `VmReserveArgs::size`: "not zero; rounded up to a multiple of the
/// grain, as `Vm::reserve` does" (the reviewer read the earlier "a multiple
/// of the grain" as a check; the maintainers documented the rounding): the
/// VM's range is grain-aligned and exactly the size rounded up.
#[test]
fn a_reservation_size_off_the_grain_is_rounded_up() {
    let Some(dev) = device_for_tests() else { return };
    let page = dev.page_size() as u64;
    for (size, grain, want) in
        [(page + 1, 0, 2 * page), (3 * page, 2 * page, 4 * page), (page, 16 * page, 16 * page)]
    {
        let mut r = VmReserveArgs { size, grain, ..VmReserveArgs::ZERO };
        // SAFETY: a live argument of its command.
        let rc = unsafe { libc::ioctl(dev.fd(), cmd::VM_RESERVE as _, &mut r) };
        assert_eq!(rc, 0, "size {size:#x}, grain {grain:#x}: {:?}", Errno::last());
        let g = if grain == 0 { page } else { grain };
        assert_eq!((r.limit - r.base, r.base % g), (want, 0), "size {size:#x}, grain {grain:#x}");
        let mut d = DestroyArgs { id: r.id, ..DestroyArgs::ZERO };
        // SAFETY: a live argument of its command.
        assert_eq!(unsafe { libc::ioctl(dev.fd(), cmd::DESTROY as _, &mut d) }, 0);
    }
    let mut r = VmReserveArgs { size: 0, ..VmReserveArgs::ZERO };
    // SAFETY: a live argument of its command.
    let rc = unsafe { libc::ioctl(dev.fd(), cmd::VM_RESERVE as _, &mut r) };
    assert_eq!((rc, Errno::last()), (-1, Errno::EINVAL), "a reservation of 0 bytes");
}

/// An importing arena whose own spans (added by the caller) lie where its
/// source will import next: the import overlaps the arena's spans, which
/// the arena must refuse (`ArenaError::BadImport`, `ENOMEM` by the errno
/// table), giving the import back to the source: nothing stays mapped for
/// it, and the arena checks. `ARENA_EXTEND` of an imported span is refused
/// ("must touch a span that was added (not imported)").
#[test]
fn spans_added_inside_the_source_range() {
    let Some(dev) = device_for_tests() else { return };
    let page = dev.page_size();
    let mut a = dev.arena(&ArenaConfig::new(Size(page)).max_tags(512).import(64 * page)).unwrap();
    let first = a.alloc(Size(page), Policy::InstantFit).unwrap();
    let spans = a.segments(vmspace::arena::SegmentKinds::SPANS).unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let imported = spans[0].range;
    assert!(spans[0].imported && imported.contains_addr(first), "{spans:?}");
    // Extending the imported span, either way, is refused.
    let up = a.extend(imported.limit(), Size(page)).unwrap_err();
    assert!(matches!(up, ArenaError::NotAdjacent(_)), "{up:?}");
    let down = a.extend(Addr(imported.base().0 - page), Size(page)).unwrap_err();
    assert!(matches!(down, ArenaError::NotAdjacent(_)), "{down:?}");
    // One-page spans at every other page above the imported span.
    let l = imported.limit().0;
    for i in 0..16 {
        a.add(Addr(l + (2 * i + 1) * page), Size(page)).unwrap();
    }
    let before = a.stats().unwrap();
    // Two pages: no added span holds them, so the arena imports; three
    // tries, to see whether refused imports pile up.
    let mut refused = Vec::new();
    for _ in 0..3 {
        match a.alloc(Size(2 * page), Policy::InstantFit) {
            Ok(at) => {
                let r = Range::from_size(at, Size(2 * page)).unwrap();
                let added = Range::from_size(Addr(l), Size(32 * page)).unwrap();
                let after = a.stats().unwrap();
                assert!(
                    !added.overlaps(&r) || after.imports == before.imports,
                    "an import overlapping added spans was taken: {r:?}"
                );
                a.free(at, Size(2 * page)).unwrap();
            }
            Err(e) => {
                assert!(matches!(e, ArenaError::BadImport(_)), "{e:?}");
                let after = a.stats().unwrap();
                assert_eq!((after.total, after.allocated), (before.total, before.allocated));
                refused.push(after.source_mapped);
            }
        }
    }
    let checked = a.check();
    a.free(first, Size(page)).unwrap();
    let s = a.stats().unwrap();
    assert_eq!(
        (s.source_mapped, &checked),
        (0, &Ok(())),
        "refused imports: source mapped bytes after each refusal {refused:?} (before: {}); \
         everything freed, the source still has {} bytes mapped; stats {s:?}",
        before.source_mapped,
        s.source_mapped
    );
    a.check().unwrap();
}

/// Deferred frees through the device: the range stays out of every
/// allocation (and of `lookup`) until `ARENA_FLUSHED`, which returns its
/// bytes once (a second flush returns 0 and counts no flush); freeing it
/// again, by address or handle, or resizing it is a bad free; destroying
/// with only unflushed ranges reports no live allocation. An importing
/// arena keeps the source mapped under an unflushed range and gives it
/// back after the flush.
#[test]
fn deferred_frees_hold_their_range_until_flushed() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let mut arena = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
    arena.add(Addr(1 << 40), Size(256)).unwrap();
    let a = arena.alloc(Size(128), Policy::FirstFit).unwrap();
    let h = arena.alloc_handle(Size(128), Policy::FirstFit).unwrap();
    arena.free_deferred(a, Size(128)).unwrap();
    assert_eq!(arena.free_handle_deferred(h), Ok(Size(128)));
    let s = arena.stats().unwrap();
    assert_eq!((s.unflushed, s.allocated, s.free, s.live), (256, 0, 0, 0));
    for p in Policy::ALL {
        let e = arena.alloc(Size(16), p).unwrap_err();
        assert!(matches!(e, vmspace::arena::ArenaError::NoSpace { .. }), "{p:?}: {e:?}");
    }
    assert_eq!(arena.lookup(a), None);
    assert!(arena.free(a, Size(128)).is_err());
    assert!(arena.free_deferred(a, Size(128)).is_err());
    assert!(arena.resize(a, Size(128), Size(64)).is_err());
    assert!(arena.free_part(a, Size(0), Size(16)).is_err());
    assert!(arena.free_handle(h).is_err());
    assert!(arena.free_handle_deferred(h).is_err());
    let segs = arena.segments(vmspace::arena::SegmentKinds::UNFLUSHED).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(arena.stats().unwrap().bad_frees, 6);
    assert_eq!(arena.flushed(), Size(256));
    assert_eq!(arena.flushed(), Size(0));
    let s = arena.stats().unwrap();
    assert_eq!((s.unflushed, s.free, s.flushes, s.deferred_frees), (0, 256, 1, 2));
    let b = arena.alloc(Size(256), Policy::BestFit).unwrap();
    assert_eq!(b, Addr(1 << 40));
    arena.free_deferred(b, Size(256)).unwrap();
    assert_eq!(arena.destroy().unwrap(), (0, 0));
    // With a source: the imported span stays mapped while unflushed.
    let page = dev.page_size();
    let mut imp = dev.arena(&ArenaConfig::new(Size(page)).max_tags(512).import(64 * page)).unwrap();
    let x = imp.alloc(Size(4 * page), Policy::InstantFit).unwrap();
    let mapped = imp.stats().unwrap().source_mapped;
    assert!(mapped >= 4 * page as u64, "{mapped}");
    imp.free_deferred(x, Size(4 * page)).unwrap();
    assert_eq!(imp.stats().unwrap().source_mapped, mapped, "an unflushed range was given back");
    assert_eq!(imp.flushed(), Size(4 * page));
    let s = imp.stats().unwrap();
    assert_eq!(
        (s.source_mapped, s.imported, s.allocated),
        (0, 0, 0),
        "the wholly free span stayed"
    );
    imp.check().unwrap();
    let _ = fd;
}

/// A forked child shares the open file (the same `struct file`): what it
/// makes, frees, writes or destroys through the inherited descriptor is
/// seen by the parent; a file the child opens itself is a different owner,
/// to which the parent's ids mean nothing.
#[test]
fn a_forked_child_uses_the_same_file() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size();
    let mut arena = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let victim = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
    let mut vm = dev.vm(2 * page, 0).unwrap();
    vm.map(vm.range()).unwrap();
    let (aid, vid, victim_id, base) = (arena.id(), vm.id(), victim.id(), vm.base().0 as u64);
    std::mem::forget(victim);
    let path = std::env::var_os(vmspace_user::kdev::DEVICE_ENV).unwrap();
    let path =
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())).unwrap();
    let msg = *b"written by the child";
    // SAFETY: the child makes only system calls (ioctl, open, close, _exit)
    // on stack values, async-signal-safe, before it exits.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", Errno::last()),
        0 => {
            let mut code = 0;
            let mut a = AllocArgs { id: aid, flags: ALLOC_HELD, size: 48, ..AllocArgs::ZERO };
            if raw(fd, cmd::ARENA_ALLOC, &mut a).is_err() || a.addr != 1 << 40 {
                code |= 1;
            }
            if io(fd, vid, true, base + 100, msg.as_ptr(), msg.len() as u64).is_err() {
                code |= 2;
            }
            let mut d = DestroyArgs { id: victim_id, ..DestroyArgs::ZERO };
            if raw(fd, cmd::DESTROY, &mut d).is_err() {
                code |= 4;
            }
            // SAFETY: a NUL-terminated path; the descriptor is closed below.
            let own = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
            if own < 0 {
                code |= 8;
            } else {
                let mut c = CheckArgs { id: aid, ..CheckArgs::ZERO };
                if raw(own, cmd::ARENA_CHECK, &mut c) != Err(Errno::EINVAL)
                    || c.err.chain[0] != DEV_BAD_ID
                {
                    code |= 16;
                }
                // SAFETY: `own` is the child's own descriptor.
                unsafe { libc::close(own) };
            }
            // The parent finds the child's handle by walking the arena.
            // SAFETY: ends the child without running the parent's handlers.
            unsafe { libc::_exit(code) }
        }
        child => {
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            assert!(libc::WIFEXITED(status), "child status {status:#x}");
            assert_eq!(
                libc::WEXITSTATUS(status),
                0,
                "child failures (bits: 1 alloc, 2 write, 4 destroy, 8 open, 16 own file)"
            );
        }
    }
    let segs = arena.segments(vmspace::arena::SegmentKinds::ALLOCATED).unwrap();
    assert_eq!(segs.len(), 1);
    assert!(
        segs[0].held && segs[0].range.base() == Addr(1 << 40) && segs[0].requested == Size(48),
        "{segs:?}"
    );
    let mut buf = [0u8; 20];
    vm.read(Addr(base as usize + 100), &mut buf).unwrap();
    assert_eq!(buf, msg);
    let mut c = CheckArgs { id: victim_id, ..CheckArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_CHECK, &mut c), Err(Errno::EINVAL));
    assert_eq!(c.err.chain[0], DEV_BAD_ID);
    arena.check().unwrap();
}
