//! Round 54 (outside reviewer): `MmapBackend::reserve`, the one safe call
//! of the backend that takes caller input, at the edges of its arguments
//! (zero, unaligned, `usize::MAX`, alignments up to 2^63): every call
//! either returns a reservation as `PageOps` promises (shim/src/ops.rs:33,
//! "a page-aligned range, aligned as asked ... nothing in it is accessible
//! until mapped") or an error, without a panic and without leaving any
//! mapping behind. The tests count this process's VMAs, so they take one
//! lock (the harness runs tests on threads, whose stacks are VMAs too).

use std::sync::Mutex;

use vmspace_shim::{PageOps, Range, ShimError, Size};
use vmspace_user::procfs::{resident_in, vma_count, vmas_in};
use vmspace_user::{MmapBackend, UnmapStrategy};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const STRATEGIES: [UnmapStrategy; 2] = [UnmapStrategy::Replace, UnmapStrategy::Decommit];

/// Bytes of this process's no-reserve anonymous mappings (no path, `nr`
/// in `VmFlags`), modulo 64 MiB: what a reservation is and what a leaked
/// one would add to. Thread stacks' guard pages, made as other tests'
/// threads come and go, are not `MAP_NORESERVE`; glibc's malloc arenas
/// are, but each is 64 MiB in all, its read-write part growing into the
/// rest.
fn inaccessible_bytes() -> isize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let (mut total, mut current) = (0usize, None);
    for l in smaps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first().is_some_and(|w| w.contains('-') && !w.ends_with(':')) {
            let (a, b) = f[0].split_once('-').unwrap();
            let len = usize::from_str_radix(b, 16).unwrap() - usize::from_str_radix(a, 16).unwrap();
            current = (f.len() == 5).then_some(len);
        } else if f.first() == Some(&"VmFlags:") && f.contains(&"nr") {
            total += current.take().unwrap_or(0);
        }
    }
    (total % (64 << 20)) as isize
}

/// Those bytes after `f`, minus before; `f`'s result. Under
/// AddressSanitizer (`make asan` sets `VMSPACE_ASAN`) its allocator maps
/// no-reserve memory of its own meanwhile: 0 there, not measured.
fn vma_delta<T>(f: impl FnOnce() -> T) -> (isize, T) {
    if std::env::var_os("VMSPACE_ASAN").is_some() {
        return (0, f());
    }
    let before = inaccessible_bytes();
    let t = f();
    (inaccessible_bytes() - before, t)
}

/// [`vma_delta`] of `f`, tried up to three times while it is not 0: another
/// thread of the process (the harness's, or one ending with its test) may
/// map or unmap no-reserve memory during one measurement (CI once saw
/// -42 MiB on a refused `reserve(0, 0)`, which maps nothing); a mapping
/// `f` leaks shows in every try.
fn settled_delta<T>(mut f: impl FnMut() -> T) -> (isize, T) {
    let mut last = vma_delta(&mut f);
    for _ in 1..3 {
        if last.0 == 0 {
            break;
        }
        last = vma_delta(&mut f);
    }
    last
}

/// Release what `reserve` returned, asserting it was as promised first.
fn check_and_release(b: &MmapBackend, r: Range, size: Size, align: Size) {
    let page = b.page_size();
    assert_eq!(r.size(), size);
    assert!(r.base().is_aligned(page) && r.base().is_aligned(align), "{r:?} for {align:?}");
    // Nothing accessible: every VMA over it is ---p.
    for v in vmas_in(r).unwrap() {
        assert_eq!(&v.perms[..3], "---", "{v:?} in a fresh reservation {r:?}");
    }
    // SAFETY: exactly what `reserve` returned, never touched.
    unsafe { b.release(r) }.unwrap();
    assert!(vmas_in(r).unwrap().is_empty(), "{r:?} still mapped after release");
}

#[test]
fn arguments_out_of_domain_are_refused_and_leave_nothing() {
    let _g = serial();
    for strategy in STRATEGIES {
        let b = MmapBackend::with_strategy(strategy);
        let page = b.page_size().0;
        let top = usize::MAX & !(page - 1);
        let cases = [
            (0, 0),
            (0, page),
            (1, page),
            (page - 1, 1),
            (page + 1, page),
            (page, 3),
            (page, 0),
            (page, usize::MAX),
            (page, (1 << 63) | 1),
            (usize::MAX, page),
            (top, 1),
            (top, page),
            (top, 1 << 63),
            (top - page, 1 << 40),
            (1 << 63, 1 << 63),
        ];
        for (size, align) in cases {
            let (delta, r) = settled_delta(|| b.reserve(Size(size), Size(align)));
            match r {
                Ok(r) => panic!("{strategy:?}: reserve({size:#x}, {align:#x}) gave {r:?}"),
                Err(e) => {
                    assert!(!e.may_have_changed() || matches!(e, ShimError::Os { .. }), "{e:?}")
                }
            }
            assert_eq!(delta, 0, "{strategy:?}: reserve({size:#x}, {align:#x}) left mappings");
        }
    }
}

#[test]
fn every_alignment_up_to_2_63_is_honoured_or_refused_cleanly() {
    let _g = serial();
    for strategy in STRATEGIES {
        let b = MmapBackend::with_strategy(strategy);
        let page = b.page_size();
        for shift in (0..64).step_by(3).chain([46, 47, 48, 56, 62, 63]) {
            let align = Size(1usize << shift);
            for size in [page, Size(page.0 * 3)] {
                let (delta, ()) = settled_delta(|| match b.reserve(size, align) {
                    Ok(r) => check_and_release(&b, r, size, align),
                    Err(ShimError::OutOfAddressSpace { size: s }) => {
                        assert_eq!(s, size.0);
                        assert!(shift >= 44, "{strategy:?}: 2^{shift} refused for {size:?}");
                    }
                    Err(e) => panic!("{strategy:?}: reserve({size:?}, 2^{shift}): {e:?}"),
                });
                assert_eq!(delta, 0, "{strategy:?}: reserve({size:?}, 2^{shift}) leaked mappings");
            }
        }
    }
}

/// A reservation of many pages at a large alignment with `Decommit`,
/// whose first page `share_anon_vma` made read-write, dirtied and dropped
/// (mmap.rs:147-174): nothing is left resident, nothing accessible, and
/// the whole reservation is one VMA's (or part of one, merged with a
/// neighbour) so that it takes one VMA.
#[test]
fn a_sealed_reservation_holds_nothing_and_is_one_vma() {
    let _g = serial();
    let b = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let page = b.page_size();
    for (pages, align) in [(1, page.0), (2, page.0), (64, 1 << 21), (1024, 1 << 30)] {
        let size = Size(pages * page.0);
        let r = b.reserve(size, Size(align)).unwrap();
        assert_eq!(resident_in(r).unwrap(), Size(0), "{pages} pages at {align:#x}");
        let vmas = vmas_in(r).unwrap();
        assert_eq!(vmas.len(), 1, "{vmas:?}");
        assert!(vmas[0].range.base() <= r.base() && r.limit() <= vmas[0].range.limit());
        check_and_release(&b, r, size, Size(align));
    }
}

/// Many reservations and releases at once from several threads, each of
/// sizes and alignments that need trimming at both ends: each comes back
/// aligned and disjoint from the others (`PageOps`: "overlaps no other
/// live reservation", shim/src/ops.rs:33), and afterwards nothing stays.
#[test]
fn reservations_from_threads_are_disjoint_and_all_go_back() {
    let _g = serial();
    let b = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let page = b.page_size();
    let all: Vec<Range> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    (0..50)
                        .map(|i| {
                            let size = Size(page.0 * (1 + (i * 7 + t) % 13));
                            let align = Size(page.0 << ((i + t) % 9));
                            let r = b.reserve(size, align).unwrap();
                            assert!(r.base().is_aligned(align));
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = all.clone();
    sorted.sort_by_key(|r| r.base());
    for w in sorted.windows(2) {
        assert!(w[0].limit() <= w[1].base(), "{:?} and {:?} overlap", w[0], w[1]);
    }
    for r in all {
        // SAFETY: returned by `reserve` above, never touched, released once.
        unsafe { b.release(r) }.unwrap();
        assert!(vmas_in(r).unwrap().is_empty(), "{r:?} still mapped after release");
    }
    assert!(vma_count().unwrap() > 0);
}
