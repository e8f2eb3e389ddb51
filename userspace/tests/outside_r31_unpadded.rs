//! Round 31 (outside reviewer): `unpadded::map_aligned`, the fallback of an
//! aligned `MmapBackend::reserve` when a limit refuses the padding. Tests
//! that change limits re-execute this binary as a child (their names
//! contain `under_rlimit`).

mod child_reexec;
mod outside_r30_common;

use vmspace_shim::{PageOps, Size};
use vmspace_user::{MmapBackend, UnmapStrategy};

use child_reexec::{set_limit, status_bytes};
use outside_r30_common::in_child;

const MIB: usize = 1 << 20;

/// The `[stack]` line of /proc/self/maps.
fn stack() -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps.lines().find(|l| l.ends_with("[stack]")).unwrap();
    let (a, b) = line.split_whitespace().next().unwrap().split_once('-').unwrap();
    (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap())
}

fn rlimit_stack() -> usize {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain call with a valid structure.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) }, 0);
    if rl.rlim_cur == libc::RLIM_INFINITY {
        8 * MIB
    } else {
        rl.rlim_cur as usize
    }
}

/// A mapping of `3 * size` with an unaligned hole of exactly `size` in it,
/// where the kernel then places an unpadded `size` (checked): the first
/// candidate (the kernel's address) is unaligned, the second (just below
/// it) overlaps the rest of the mapping, so the gap search runs.
/// Returns (mapping, its length, hole).
fn hole_where_the_kernel_places(size: usize, align: usize, page: usize) -> (usize, usize, usize) {
    let len = 3 * size + 2 * align;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: fresh anonymous mappings; the hole is made inside ours.
    unsafe {
        let r = libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, flags, -1, 0) as usize;
        assert_ne!(r as *mut libc::c_void, libc::MAP_FAILED);
        let hole = ((r + size + align - 1) & !(align - 1)) + page;
        assert_eq!(libc::munmap(hole as *mut _, size), 0);
        // Gaps above the hole that hold `size` are filled (and kept) until
        // the kernel places `size` in the hole. How many there are depends
        // on the layout (address randomization, the harness's threads),
        // not on a fixed count; top-down, the kernel takes the highest gap
        // first, so it never placed `size` in the hole once it places it
        // below.
        loop {
            let q = libc::mmap(std::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0);
            assert_ne!(q, libc::MAP_FAILED);
            if q as usize == hole {
                libc::munmap(q, size);
                return (r, len, hole);
            }
            assert!(
                (q as usize) > hole,
                "precondition: the kernel placed `size` at {q:?}, below the hole {hole:#x}"
            );
        }
    }
}

/// Recurse `depth` frames of 64 KiB each on this thread's stack.
#[inline(never)]
fn deep(depth: usize) -> u8 {
    let mut buf = [0u8; 64 << 10];
    // SAFETY: a volatile write to a local, so the frame is really used.
    unsafe { std::ptr::write_volatile(&mut buf[depth % 1000], depth as u8) };
    if depth == 0 {
        return buf[7];
    }
    // SAFETY: a volatile read of a local.
    deep(depth - 1).wrapping_add(unsafe { std::ptr::read_volatile(&buf[depth % 1000]) })
}

/// The kernel keeps `RLIMIT_STACK` (at least 128 MiB) below the top of
/// the main thread's stack free for it to grow (`mmap_base`), and never
/// places a mapping there. The gap search takes the highest gap first,
/// which is the one below `[stack]`, and maps at its top, right under the
/// stack: the main thread can then grow its stack by less than `align`.
fn stack_child() {
    let page = 4096;
    let (size, align) = (8 * MIB + page, 2 * MIB);
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let (r, len, _hole) = hole_where_the_kernel_places(size, align, page);
    set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + size + 2 * page) as u64);
    let got = be.reserve(Size(size), Size(align));
    set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
    let x = got.expect("reserve under RLIMIT_AS with room for the size");
    let (lo, hi) = stack();
    let room = rlimit_stack();
    println!(
        "r30: reservation {:#x}..{:#x}, [stack] {lo:#x}..{hi:#x}, RLIMIT_STACK {room:#x}",
        x.base().0,
        x.base().0 + x.size().0
    );
    let (b, e) = (x.base().0, x.base().0 + x.size().0);
    let in_stack_room = b < hi && e > hi.saturating_sub(room);
    assert!(
        !in_stack_room,
        "the reservation {b:#x}..{e:#x} lies in the main thread's stack room \
         {:#x}..{hi:#x} (RLIMIT_STACK {room:#x} below the top of [stack])",
        hi - room
    );
    // SAFETY: ours.
    unsafe {
        be.release(x).unwrap();
        libc::munmap(r as *mut _, len);
    }
}

#[test]
fn gap_search_keeps_off_the_main_stack_under_rlimit_as() {
    match std::env::var("R31_STACK") {
        Ok(_) => stack_child(),
        Err(_) => in_child("gap_search_keeps_off_the_main_stack_under_rlimit_as", "R31_STACK", "1"),
    }
}

/// Set by `on_main` when its 4 MiB recursion is done.
static GREW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_main(_: libc::c_int) {
    std::hint::black_box(deep(64));
    GREW.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The consequence of the above: after the fallback reservation, the main
/// thread uses 4 MiB of the 8 MiB stack `RLIMIT_STACK` allows (in a signal
/// handler run there, as the harness runs this test on a thread of its
/// own). The process dies of SIGSEGV instead, the stack blocked by the
/// reservation.
fn grow_child(legacy: bool) {
    let page = 4096;
    let (size, align) = (8 * MIB + page, 2 * MIB);
    if rlimit_stack() < 8 * MIB {
        println!("r30: RLIMIT_STACK below 8 MiB, nothing to check");
        return;
    }
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    if !legacy {
        hole_where_the_kernel_places(size, align, page);
    }
    set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + size + 2 * page) as u64);
    let got = be.reserve(Size(size), Size(align));
    set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
    let x = got.expect("reserve under RLIMIT_AS with room for the size");
    println!("r30: reservation at {:#x}, [stack] {:x?}", x.base().0, stack());
    // SAFETY: installs a handler that only recurses on its stack and
    // stores to an atomic; tgkill sends it to the main thread (tid = pid).
    unsafe {
        let handler = on_main as extern "C" fn(libc::c_int) as libc::sighandler_t;
        assert_ne!(libc::signal(libc::SIGUSR1, handler), libc::SIG_ERR);
        let pid = libc::getpid();
        assert_eq!(libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGUSR1), 0);
    }
    let t = std::time::Instant::now();
    while !GREW.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(t.elapsed().as_secs() < 20, "the main thread never ran the handler");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    println!("r30: grew the main stack by 4 MiB");
    // SAFETY: ours, never mapped.
    unsafe { be.release(x).unwrap() };
}

#[test]
fn main_stack_grows_after_fallback_under_rlimit_as() {
    match std::env::var("R31_GROW") {
        Ok(_) => grow_child(false),
        Err(_) => in_child("main_stack_grows_after_fallback_under_rlimit_as", "R31_GROW", "1"),
    }
}

/// Run this binary's test `name` alone in a child whose `RLIMIT_STACK`
/// is unlimited and personality `ADDR_COMPAT_LAYOUT` from its exec on (so
/// the kernel gives it the legacy, bottom-up mmap layout); assert it passed, with its exit status.
fn in_legacy_child(name: &str) {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env("R31_LEGACY", "1");
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            libc::setrlimit(libc::RLIMIT_STACK, &rl);
            // ADDR_COMPAT_LAYOUT (`setarch -L`): x86 takes the legacy
            // layout from it rather than from the unlimited stack.
            libc::personality(0x0020_0000);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 passed"), "child {:?}:\n{text}", out.status);
}

/// In the legacy layout (`setarch -L`, unlimited stack: `vm.legacy_va_layout`
/// or the personality) the kernel lays mappings out bottom-up
/// (placing each at the bottom of a gap), so the candidate just below the
/// kernel's address overlaps the mapping under it and the gap search
/// always runs: every fallback reservation then lands right under the
/// main thread's stack, with no hole needed. A program that asked for an
/// unlimited stack then dies growing it by 4 MiB.
#[test]
fn legacy_layout_main_stack_grows_after_fallback_under_rlimit_as() {
    match std::env::var("R31_LEGACY") {
        Ok(_) => grow_child(true),
        Err(_) => in_legacy_child("legacy_layout_main_stack_grows_after_fallback_under_rlimit_as"),
    }
}

/// The fallback runs when the address space is nearly used up (room for
/// the size, not the padding), and its gap search reads all of
/// /proc/self/maps into a `String` and a `Vec` on the heap. With many
/// VMAs (20 000 here, 1.5 MB of maps text) and a small reservation, the
/// heap cannot grow under `RLIMIT_AS` and the allocator aborts the
/// process, where `reserve` documents an `Ok` or an `Err`.
fn many_vmas_child() {
    let page = 4096;
    let (size, align) = (16 * page, 2 * MIB);
    let n = 20_000;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a fresh mapping of ours, every other page of it made
    // readable (one VMA a page).
    unsafe {
        let m = libc::mmap(std::ptr::null_mut(), 2 * n * page, libc::PROT_NONE, flags, -1, 0);
        assert_ne!(m, libc::MAP_FAILED);
        for i in 0..n {
            let at = (m as usize + 2 * i * page) as *mut libc::c_void;
            assert_eq!(libc::mprotect(at, page, libc::PROT_READ), 0);
        }
    }
    hole_where_the_kernel_places(size, align, page);
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + size + 2 * page) as u64);
    let got = be.reserve(Size(size), Size(align));
    set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
    println!("r30: reserve with {n} VMAs: {got:?}");
    if let Ok(x) = got {
        assert_eq!(x.base().0 % align, 0);
        // SAFETY: ours, never mapped.
        unsafe { be.release(x).unwrap() };
    }
}

#[test]
fn gap_search_with_many_vmas_does_not_abort_under_rlimit_as() {
    match std::env::var("R31_MANY") {
        Ok(_) => many_vmas_child(),
        Err(_) => {
            in_child("gap_search_with_many_vmas_does_not_abort_under_rlimit_as", "R31_MANY", "1")
        }
    }
}
