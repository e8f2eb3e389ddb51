//! Round 30 (outside reviewer): `MmapBackend::reserve`'s unpadded fallback
//! racing another thread that maps pages at its aligned candidates
//! (`MAP_FIXED_NOREPLACE`), under `RLIMIT_AS` in a child re-executing this
//! binary.

mod child_reexec;
mod outside_r30_common;

use vmspace_shim::{PageOps, Size};
use vmspace_user::procfs::vmas_in;
use vmspace_user::{MmapBackend, UnmapStrategy};

use child_reexec::{set_limit, status_bytes};
use outside_r30_common::{below_is_free, in_child};

/// A thread mapping (and writing) pages at the fallback's aligned
/// candidates while another reserves under `RLIMIT_AS`: every reservation
/// is aligned, of its size, one inaccessible VMA of its own, and no page
/// of the other thread's is ever replaced (its contents stay).
fn race_child() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let align = 1usize << 30;
    let (probe, _) = below_is_free(p, align);
    let first = (probe + align - 1) & !(align - 1);
    let stop = AtomicBool::new(false);
    let ready = AtomicBool::new(false);
    let lost = AtomicUsize::new(0);
    let bad = std::thread::scope(|s| {
        s.spawn(|| {
            // This thread's start maps memory (its signal stack, TLS
            // destructor list, malloc arena): let it finish before the main
            // thread sets the tight RLIMIT_AS, which is process-wide (else
            // glibc aborts, "failed to register TLS destructor: out of
            // memory", or std's "failed to allocate an alternative stack"
            // panic hangs printing its backtrace).
            drop(std::hint::black_box(vec![0u8; 4096]));
            ready.store(true, Ordering::SeqCst);
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let at = first.wrapping_sub(align) + (k % 9) * align;
                k += 1;
                // SAFETY: NOREPLACE maps only where nothing is; the page is
                // ours until unmapped below.
                unsafe {
                    let q = libc::mmap(
                        at as *mut _,
                        p,
                        libc::PROT_READ | libc::PROT_WRITE,
                        flags,
                        -1,
                        0,
                    );
                    if q == libc::MAP_FAILED || q as usize != at {
                        if q != libc::MAP_FAILED {
                            libc::munmap(q, p);
                        }
                        continue;
                    }
                    (q as *mut usize).write_volatile(k);
                    std::thread::yield_now();
                    if (q as *const usize).read_volatile() != k {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    libc::munmap(q, p);
                }
            }
        });
        while !ready.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let mut bad = Vec::new();
        for _ in 0..300 {
            set_limit(libc::RLIMIT_AS, (status_bytes("VmSize:") + 4 * p) as u64);
            let got = be.reserve(Size(p), Size(align));
            set_limit(libc::RLIMIT_AS, libc::RLIM_INFINITY);
            if let Ok(x) = got {
                let pm: Vec<String> = vmas_in(x).unwrap().into_iter().map(|v| v.perms).collect();
                if x.base().0 % align != 0 || x.size().0 != p || pm != ["---p"] {
                    bad.push(format!("{x:?}: {pm:?}"));
                }
                // SAFETY: ours.
                unsafe { be.release(x) }.unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        bad
    });
    let lost = lost.load(Ordering::Relaxed);
    println!("r30: race: {} bad reservations, {lost} pages of the other thread lost", bad.len());
    assert!(bad.is_empty() && lost == 0, "{bad:?}, {lost} lost");
}

#[test]
fn racing_mapper_at_the_candidates_under_rlimit_as() {
    match std::env::var("R30_RACE") {
        Ok(_) => race_child(),
        Err(_) => in_child("racing_mapper_at_the_candidates_under_rlimit_as", "R30_RACE", "1"),
    }
}
