//! Calls on one VM from many threads: disjoint, racing for a page, overlapping.

use super::*;

// ---------------------------------------------------------------------------
// Concurrency.

#[derive(Clone, Copy)]
struct Vm(usize);
// SAFETY: the VM is meant to be called from any thread.
unsafe impl Send for Vm {}
impl Vm {
    fn p(self) -> *mut vmspace_vm_t {
        self.0 as *mut vmspace_vm_t
    }
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn racing_maps_and_unmaps_of_the_same_pages_have_one_winner_each() {
    let page = os_page();
    let n = 512;
    let threads = 4;
    let vm = Vm(create(n * page, 0) as usize);
    let b = base(vm.p());
    let wins = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let barrier = Arc::new(Barrier::new(threads));
    let run = |unmapping: bool| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (wins, barrier) = (wins.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for k in 0..n {
                        // Half the threads go up, half go down.
                        let i = if t % 2 == 0 { k } else { n - 1 - k };
                        let a = b + i * page;
                        let e =
                            if unmapping { unmap(vm.p(), a, page) } else { map(vm.p(), a, page) };
                        match e {
                            0 => {
                                wins[i].fetch_add(1, Ordering::Relaxed);
                            }
                            e if !unmapping && e == -EEXIST => {}
                            e if unmapping && e == -ENOENT => {}
                            e => panic!("page {i}: {e}"),
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    };
    run(false);
    for (i, w) in wins.iter().enumerate() {
        assert_eq!(w.swap(0, Ordering::Relaxed), 1, "map of page {i}: not exactly one winner");
    }
    assert_eq!(mapped_bytes(vm.p()), n * page);
    assert_eq!(is_mapped(vm.p(), b, n * page), 1);
    assert_eq!(check(vm.p()), 0);
    run(true);
    for (i, w) in wins.iter().enumerate() {
        assert_eq!(w.load(Ordering::Relaxed), 1, "unmap of page {i}: not exactly one winner");
    }
    assert_eq!(mapped_bytes(vm.p()), 0);
    assert_eq!(check(vm.p()), 0);
    destroy(vm.p());
}

#[test]
fn overlapping_maps_from_many_threads_never_share_a_page() {
    // Threads map random ranges of 1 to 4 pages in a small VM; a map that
    // wins owns its pages until its unmap: it writes them, yields, and
    // finds them still its own and still mapped. Meanwhile other threads
    // read info, trim and check. Nothing is lost: mapped adds up.
    let page = os_page();
    let pages = 64;
    let threads = 4;
    let vm = Vm(create(pages * page, 0) as usize);
    let b = base(vm.p());
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let held = held.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let (mut wins, mut losses) = (0, 0);
                for _ in 0..3000 {
                    let i = (rng(&mut seed) % pages as u64) as usize;
                    let len = (1 + rng(&mut seed) % 4) as usize;
                    let len = len.min(pages - i);
                    let a = b + i * page;
                    match map(vm.p(), a, len * page) {
                        0 => {
                            wins += 1;
                            held.fetch_add(len, Ordering::SeqCst);
                            assert!(all(a, len * page, 0), "a freshly mapped range is not zero");
                            fill(a, len * page, t as u8 + 1);
                            std::thread::yield_now();
                            assert_eq!(is_mapped(vm.p(), a, len * page), 1);
                            assert!(
                                all(a, len * page, t as u8 + 1),
                                "another thread wrote my pages"
                            );
                            held.fetch_sub(len, Ordering::SeqCst);
                            assert_eq!(unmap(vm.p(), a, len * page), 0);
                        }
                        e if e == -EEXIST => losses += 1,
                        e => panic!("map: {e}"),
                    }
                }
                (wins, losses)
            })
        })
        .collect();
    let watchers: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (_, s, _, p, m, r, md) = info(vm.p());
                    assert!(m <= s && m % p == 0 && md <= r - s);
                    if w == 0 {
                        assert!(trim(vm.p()) >= 0);
                    } else {
                        assert_eq!(check(vm.p()), 0);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total_wins = 0;
    for h in workers {
        let (w, _) = h.join().unwrap();
        total_wins += w;
    }
    stop.store(true, Ordering::Relaxed);
    for h in watchers {
        h.join().unwrap();
    }
    assert!(total_wins > 0);
    assert_eq!(held.load(Ordering::SeqCst), 0);
    assert_eq!(mapped_bytes(vm.p()), 0, "pages left mapped");
    assert_eq!(is_mapped(vm.p(), b, page), 0);
    assert_eq!(check(vm.p()), 0);
    destroy(vm.p());
}

#[test]
fn disjoint_threads_account_exactly() {
    let page = os_page();
    let threads = 4;
    let per = 8 * page * 8; // each thread gets several table pages' worth
    let vm = Vm(create(threads * per * page, 0) as usize);
    let b = base(vm.p());
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let lo = b + t * per * page;
                let mut seed = 77 + t as u64;
                let mut mine = vec![false; 256];
                for _ in 0..2000 {
                    let i = (rng(&mut seed) % 256) as usize;
                    let a = lo + i * (per / 256) * page;
                    if mine[i] {
                        assert!(all(a, page, t as u8 + 1));
                        assert_eq!(unmap(vm.p(), a, page), 0);
                    } else {
                        assert_eq!(map(vm.p(), a, page), 0);
                        fill(a, page, t as u8 + 1);
                    }
                    mine[i] = !mine[i];
                    if i % 17 == 0 {
                        assert!(trim(vm.p()) >= 0);
                    }
                }
                mine.iter().filter(|&&m| m).count()
            })
        })
        .collect();
    let held: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(mapped_bytes(vm.p()), held * page);
    assert_eq!(check(vm.p()), 0);
    destroy(vm.p());
}

// ---------------------------------------------------------------------------
// strerror.

#[test]
fn strerror_texts_fit_the_vm_meanings() {
    let text = |e: c_int| {
        // SAFETY: vmspace_strerror returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(vmspace_strerror(e)) }.to_str().unwrap().to_owned()
    };
    for e in [EBADF, ENOENT, EEXIST, ERANGE, EUCLEAN] {
        let t = text(-e);
        assert!(t.contains("VM"), "strerror(-{e}) = {t:?} says nothing of a VM");
        assert_eq!(t, text(e));
    }
    let t = text(-ENOMEM);
    assert!(t.contains("address space") && t.contains("pages"), "{t:?}");
    assert!(text(-EOVERFLOW).contains("overflow"));
    assert!(text(-EINVAL).contains("invalid"));
}
