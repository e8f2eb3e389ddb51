//! Round 26 (outside reviewer): `MmapBackend` against the real kernel, seen
//! through `procfs` (what `/proc/self/maps` says is mapped, with which
//! protection, and what is resident): page by page in lockstep
//! with `SimBackend` under random calls, and part-way failures as the
//! kernel sees them.
//! This binary's tests run one at a time (`serial`): VMA counts
//! and residency see every mapping of the process, and `mmap` may place
//! two tests' reservations side by side.
#![allow(clippy::needless_range_loop)] // models index several arrays by page

mod outside_r26_mmap_common;

use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, PageOps, Protection, Size};
use vmspace_user::procfs::vmas_in;
use vmspace_user::{MmapBackend, UnmapStrategy};

use outside_r26_mmap_common::{page, r, serial};

/// The permissions of the VMA holding `addr`, per /proc/self/maps.
fn perms_at(addr: usize) -> Option<String> {
    let p = page();
    vmas_in(r(addr & !(p - 1), p)).unwrap().into_iter().next().map(|v| v.perms)
}

fn want_perms(s: PageState) -> &'static str {
    match s {
        PageState::Reserved | PageState::Unflushed | PageState::Mapped(Protection::None) => "---p",
        PageState::Mapped(Protection::Read) => "r--p",
        PageState::Mapped(Protection::ReadWrite) => "rw-p",
        PageState::Free => "free",
    }
}

/// Map, protect and unmap on both strategies in lockstep with the
/// simulator: after every call the kernel's permissions for every page of
/// the reservation match the simulator's state, newly mapped pages read
/// zero, and protection changes keep contents.
#[test]
fn mmap_and_sim_agree_page_by_page_under_random_calls() {
    let _serial = serial();
    const N: usize = 48;
    for strat in [UnmapStrategy::Decommit, UnmapStrategy::Replace] {
        let be = MmapBackend::with_strategy(strat);
        let p = be.page_size().0;
        let mut buf = vec![0u8; (N + 8) * p + p];
        let sim = SimBackend::new(&mut buf, p).unwrap();
        let mx = be.reserve(Size(N * p), Size(p)).unwrap();
        let sx = sim.reserve(Size(N * p), Size(p)).unwrap();
        let mut seed = 0xdead_beef_1234_5678u64 ^ strat as u64;
        let mut rnd = |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as usize
        };
        // What each page holds (the byte we wrote), for mapped pages.
        let mut content = [0u8; N];
        for step in 0..600 {
            let a = rnd(N);
            let len = 1 + rnd((N - a).min(6));
            let mr = r(mx.base().0 + a * p, len * p);
            let sr = r(sx.base().0 + a * p, len * p);
            let states: Vec<PageState> =
                (a..a + len).map(|i| sim.page_state(Addr(sx.base().0 + i * p)).unwrap()).collect();
            let all_mapped = states.iter().all(|s| matches!(s, PageState::Mapped(_)));
            let none_mapped = states.iter().all(|s| *s == PageState::Reserved);
            let prot = [Protection::None, Protection::Read, Protection::ReadWrite][rnd(3)];
            // Only contract-keeping calls are made on mmap.
            // SAFETY: mr inside our reservation, in the state each call asks.
            unsafe {
                match rnd(3) {
                    0 if none_mapped => {
                        be.map(mr).unwrap();
                        sim.map(sr).unwrap();
                        for i in a..a + len {
                            let q = (mx.base().0 + i * p) as *mut u8;
                            assert_eq!(*q, 0, "{strat:?} step {step}: map did not read zero");
                            assert_eq!(*q.add(p - 1), 0);
                            content[i] = (step % 250 + 1) as u8;
                            q.write(content[i]);
                        }
                    }
                    1 if all_mapped => {
                        be.protect(mr, prot).unwrap();
                        sim.protect(sr, prot).unwrap();
                    }
                    2 if all_mapped => {
                        be.unmap(mr).unwrap();
                        sim.unmap(sr).unwrap();
                    }
                    _ => continue,
                }
            }
            for i in 0..N {
                let s = sim.page_state(Addr(sx.base().0 + i * p)).unwrap();
                let got = perms_at(mx.base().0 + i * p).unwrap_or_else(|| "none".into());
                assert_eq!(got, want_perms(s), "{strat:?} step {step} page {i}");
                if matches!(s, PageState::Mapped(Protection::Read | Protection::ReadWrite)) {
                    // SAFETY: readable per the kernel (checked just above).
                    let b = unsafe { *((mx.base().0 + i * p) as *const u8) };
                    assert_eq!(b, content[i], "{strat:?} step {step} page {i}: contents lost");
                }
            }
        }
        // SAFETY: ours.
        unsafe { be.release(mx) }.unwrap();
        assert!(vmas_in(mx).unwrap().is_empty());
    }
}

/// FaultShape::PartWay over the mmap backend, seen in /proc/self/maps: a
/// failed unmap leaves a prefix (never all) mapped `PROT_NONE` whose
/// contents read zero once accessible again, the rest read-write with its
/// contents; a failed protect leaves a prefix with the new protection.
/// The default `unmap_deferred` unmaps at once and `flush` has nothing to do.
#[test]
fn part_way_failures_over_mmap_as_the_kernel_sees_them() {
    let _serial = serial();
    use vmspace_shim::{FaultInjector, FaultShape};
    for strat in [UnmapStrategy::Decommit, UnmapStrategy::Replace] {
        let be = MmapBackend::with_strategy(strat);
        let p = be.page_size().0;
        let f = FaultInjector::new(be);
        f.set_shape(FaultShape::PartWay);
        let x = f.reserve(Size(8 * p), Size(p)).unwrap();
        for round in 0..6 {
            // SAFETY: our reservation; pages accessed only when readable.
            unsafe {
                f.map(x).unwrap();
                std::ptr::write_bytes(x.base().as_ptr::<u8>(), 0x77, 8 * p);
                f.fail_nth(1);
                let (res, want) = match round % 3 {
                    0 => (f.unmap(x), "---p"),
                    1 => (f.unmap_deferred(x), "---p"),
                    _ => (f.protect(x, Protection::Read), "r--p"),
                };
                assert!(res.is_err());
                let perms: Vec<String> =
                    (0..8).map(|i| perms_at(x.base().0 + i * p).unwrap()).collect();
                let k = perms.iter().take_while(|s| *s == want).count();
                assert!((1..8).contains(&k), "{strat:?} round {round}: {perms:?}");
                assert!(
                    perms[k..].iter().all(|s| s == "rw-p"),
                    "{strat:?} round {round}: {perms:?}"
                );
                let prefix = r(x.base().0, k * p);
                if want == "---p" {
                    f.inner().protect(prefix, Protection::ReadWrite).unwrap();
                    assert!(
                        (0..k).all(|i| *((x.base().0 + i * p) as *const u8) == 0),
                        "{strat:?}: contents kept"
                    );
                } else {
                    assert!((0..k).all(|i| *((x.base().0 + i * p) as *const u8) == 0x77));
                }
                assert!((k..8).all(|i| *((x.base().0 + i * p) as *const u8) == 0x77));
                f.unmap_deferred(x).unwrap();
                assert_eq!(f.unflushed_pages(), 0);
                assert_eq!(f.flush(), 0);
                assert!((0..8).all(|i| perms_at(x.base().0 + i * p).unwrap() == "---p"));
            }
        }
        // SAFETY: ours.
        unsafe { f.release(x) }.unwrap();
    }
}
