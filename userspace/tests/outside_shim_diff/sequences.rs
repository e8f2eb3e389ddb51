//! Random call sequences on the simulator and on mmap, compared call by call.

use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, PageOps, Protection, Range, ShimError, Size};
use vmspace_user::{MmapBackend, UnmapStrategy};
use vmspace_workload::Rng;

/// Pages past each mmap reservation that are ours too (reserved with it),
/// so ranges past a reservation's end land in our own memory.
const GUARD: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Page {
    Unmapped,
    /// Unmapped by `unmap_deferred`, flush pending (sim only).
    Unflushed,
    Mapped(Protection, u8),
}

struct Res {
    sim: Range,
    mm: Range,
    /// The whole mmap reservation, guard included.
    mm_all: Range,
    pages: Vec<Page>,
}

#[derive(Default, Debug)]
struct Tally {
    valid: usize,
    arg_errors: usize,
    /// Contract violations: the sim refused; mmap's answers.
    violations_sim_only: usize,
    violations_mmap_ok: usize,
    violations_mmap_err: usize,
    deferred: usize,
    content_checks: usize,
}

struct World<'a> {
    sim: SimBackend<'a>,
    mm: MmapBackend,
    page: usize,
    res: Vec<Res>,
    t: Tally,
}

impl World<'_> {
    fn sub(&self, i: usize, off: usize, len: usize) -> (Range, Range) {
        let p = self.page;
        let r = &self.res[i];
        (
            Range::from_size(Addr(r.sim.base().0 + off * p), Size(len * p)).unwrap(),
            Range::from_size(Addr(r.mm.base().0 + off * p), Size(len * p)).unwrap(),
        )
    }

    fn reserve(&mut self, n: usize, align_pages: usize, what: &str) {
        let p = self.page;
        let s = self.sim.reserve(Size(n * p), Size(align_pages * p));
        let m = self.mm.reserve(Size((n + GUARD) * p), Size(align_pages * p));
        assert_eq!(
            s.is_ok(),
            m.is_ok(),
            "{what}: reserve {n} pages align {align_pages}: {s:?} {m:?}"
        );
        if let (Ok(s), Ok(m)) = (s, m) {
            assert!(
                s.base().is_aligned(Size(align_pages * p))
                    && m.base().is_aligned(Size(align_pages * p))
            );
            self.t.valid += 1;
            self.res.push(Res {
                sim: s,
                mm: Range::from_size(m.base(), Size(n * p)).unwrap(),
                mm_all: m,
                pages: vec![Page::Unmapped; n],
            });
        }
    }

    /// Reads the first and last byte of every readable page on both
    /// backends and compares them with the model.
    fn verify(&mut self, what: &str) {
        let p = self.page;
        for r in &self.res {
            for (k, pg) in r.pages.iter().enumerate() {
                if let Page::Mapped(prot, v) = *pg {
                    if prot == Protection::None {
                        continue;
                    }
                    for base in [r.sim.base().0, r.mm.base().0] {
                        for off in [0, p - 1] {
                            let a = (base + k * p + off) as *const u8;
                            // SAFETY: the page is mapped readable on this
                            // backend (the model says so, and every call
                            // made on it agreed).
                            let got = unsafe { a.read_volatile() };
                            assert_eq!(got, v, "{what}: page {k} byte {off} at {a:?}");
                        }
                    }
                    self.t.content_checks += 1;
                }
            }
        }
    }

    fn write(&mut self, i: usize, k: usize, v: u8) {
        let p = self.page;
        let r = &mut self.res[i];
        if let Page::Mapped(Protection::ReadWrite, _) = r.pages[k] {
            for base in [r.sim.base().0, r.mm.base().0] {
                for off in [0, p - 1] {
                    // SAFETY: mapped read-write on both backends.
                    unsafe { ((base + k * p + off) as *mut u8).write_volatile(v) };
                }
            }
            r.pages[k] = Page::Mapped(Protection::ReadWrite, v);
        }
    }

    fn step(&mut self, rng: &mut Rng, what: &str) {
        let p = self.page;
        if self.res.is_empty() || (self.res.len() < 6 && rng.chance(100)) {
            let n = rng.between(1, 8);
            let a = 1 << rng.below(5);
            self.reserve(n, a, what);
            return;
        }
        let i = rng.below(self.res.len());
        let n = self.res[i].pages.len();
        let off = rng.below(n);
        let len = rng.between(1, n - off);
        let (rs, rm) = self.sub(i, off, len);
        let span = &self.res[i].pages[off..off + len];
        let all = |f: &dyn Fn(&Page) -> bool| span.iter().all(f);
        let all_unmapped = all(&|x| *x == Page::Unmapped);
        let all_mapped = all(&|x| matches!(x, Page::Mapped(..)));
        let all_rw = all(&|x| matches!(x, Page::Mapped(Protection::ReadWrite, _)));
        let any_unflushed = span.contains(&Page::Unflushed);
        let prots = [Protection::None, Protection::Read, Protection::ReadWrite];
        match rng.below(100) {
            // Release a whole reservation; the sim refuses a second one.
            0..=3 => {
                let r = self.res.swap_remove(i);
                // SAFETY: whole reservations of each backend, not used again.
                unsafe {
                    self.sim.release(r.sim).unwrap();
                    self.mm.release(r.mm_all).unwrap();
                    assert!(matches!(self.sim.release(r.sim), Err(ShimError::NotReserved(_))));
                }
                self.t.valid += 1;
            }
            // Map.
            4..=30 => {
                // SAFETY: see each branch.
                unsafe {
                    if all_unmapped {
                        let (s, m) = (self.sim.map(rs), self.mm.map(rm));
                        assert!(s.is_ok() && m.is_ok(), "{what}: valid map {s:?} {m:?}");
                        for k in off..off + len {
                            self.res[i].pages[k] = Page::Mapped(Protection::ReadWrite, 0);
                        }
                        self.t.valid += 1;
                    } else if any_unflushed {
                        // Documented: the sim refuses until the flush.
                        assert!(matches!(
                            self.sim.map(rs),
                            Err(ShimError::AlreadyMapped(_) | ShimError::Unflushed(_))
                        ));
                        self.t.deferred += 1;
                    } else if all_rw {
                        // Double map of read-write pages: a no-op for mmap.
                        let s = self.sim.map(rs);
                        assert_eq!(s, Err(ShimError::AlreadyMapped(rs)), "{what}");
                        self.tally_mm(self.mm.map(rm));
                    } else {
                        assert!(self.sim.map(rs).is_err(), "{what}: sim mapped mapped pages");
                        self.t.violations_sim_only += 1;
                    }
                }
            }
            // Unmap (plain or deferred).
            // SAFETY: every range lies in this test's own reservations (the mmap
            // side's with guard pages reserved beside them); nothing references
            // their pages, so a contract violation is refused or a no-op.
            31..=50 => unsafe {
                let deferred = rng.chance(300);
                if all_mapped {
                    let (s, m) = if deferred {
                        (self.sim.unmap_deferred(rs), self.mm.unmap_deferred(rm))
                    } else {
                        (self.sim.unmap(rs), self.mm.unmap(rm))
                    };
                    assert!(s.is_ok() && m.is_ok(), "{what}: valid unmap {s:?} {m:?}");
                    for k in off..off + len {
                        self.res[i].pages[k] =
                            if deferred { Page::Unflushed } else { Page::Unmapped };
                    }
                    if deferred {
                        assert_eq!(self.mm.unflushed_pages(), 0);
                        self.t.deferred += 1;
                    }
                    self.t.valid += 1;
                } else if all_unmapped {
                    // Unmap of unmapped pages: a no-op for mmap.
                    assert_eq!(self.sim.unmap(rs), Err(ShimError::NotMapped(rs)), "{what}");
                    self.tally_mm(self.mm.unmap(rm));
                } else {
                    assert!(self.sim.unmap(rs).is_err(), "{what}");
                    self.t.violations_sim_only += 1;
                }
            },
            // Protect.
            // SAFETY: every range lies in this test's own reservations (the mmap
            // side's with guard pages reserved beside them); nothing references
            // their pages, so a contract violation is refused or a no-op.
            51..=70 => unsafe {
                let prot = prots[rng.below(3)];
                if all_mapped {
                    let (s, m) = (self.sim.protect(rs, prot), self.mm.protect(rm, prot));
                    assert!(s.is_ok() && m.is_ok(), "{what}: valid protect {s:?} {m:?}");
                    for k in off..off + len {
                        if let Page::Mapped(_, v) = self.res[i].pages[k] {
                            self.res[i].pages[k] = Page::Mapped(prot, v);
                        }
                    }
                    self.t.valid += 1;
                } else if all_unmapped {
                    // Protect of unmapped pages to none: a no-op for mmap.
                    assert_eq!(
                        self.sim.protect(rs, Protection::None),
                        Err(ShimError::NotMapped(rs))
                    );
                    self.tally_mm(self.mm.protect(rm, Protection::None));
                } else {
                    assert!(self.sim.protect(rs, prot).is_err(), "{what}");
                    self.t.violations_sim_only += 1;
                }
            },
            // Past the end of the reservation (into our guard on mmap).
            // SAFETY: every range lies in this test's own reservations (the mmap
            // side's with guard pages reserved beside them); nothing references
            // their pages, so a contract violation is refused or a no-op.
            71..=75 => unsafe {
                let tail = n - off;
                let ext = rng.between(1, GUARD);
                let rs = Range::from_size(
                    Addr(self.res[i].sim.base().0 + off * p),
                    Size((tail + ext) * p),
                )
                .unwrap();
                let rm = Range::from_size(
                    Addr(self.res[i].mm.base().0 + off * p),
                    Size((tail + ext) * p),
                )
                .unwrap();
                let in_res_rw = self.res[i].pages[off..]
                    .iter()
                    .all(|x| matches!(x, Page::Mapped(Protection::ReadWrite, _)));
                let s = self.sim.map(rs);
                assert!(
                    matches!(s, Err(ShimError::NotReserved(_) | ShimError::AlreadyMapped(_))),
                    "{what}: sim mapped past the end: {s:?}"
                );
                if in_res_rw {
                    // mprotect(RW) over read-write pages and our guard.
                    self.tally_mm(self.mm.map(rm));
                } else {
                    self.t.violations_sim_only += 1;
                }
            },
            // Argument errors both backends check the same way.
            // SAFETY: every range lies in this test's own reservations (the mmap
            // side's with guard pages reserved beside them); nothing references
            // their pages, so a contract violation is refused or a no-op.
            76..=82 => unsafe {
                let mis_base = Range::new(Addr(rs.base().0 + 8), rs.limit()).unwrap();
                let mis_limit = Range::new(rs.base(), Addr(rs.limit().0 - 8)).unwrap();
                let empty = Range::empty(rs.base());
                for (x, y) in [
                    (mis_base, Range::new(Addr(rm.base().0 + 8), rm.limit()).unwrap()),
                    (mis_limit, Range::new(rm.base(), Addr(rm.limit().0 - 8)).unwrap()),
                    (empty, Range::empty(rm.base())),
                ] {
                    let ks = |e: Result<(), ShimError>| match e {
                        Err(ShimError::Misaligned { value, align }) => {
                            format!("misaligned {:#x} {align}", value % align)
                        }
                        Err(ShimError::InvalidArgument(w)) => format!("invalid {w}"),
                        e => format!("{e:?}"),
                    };
                    let pairs = [
                        (self.sim.map(x), self.mm.map(y)),
                        (self.sim.unmap(x), self.mm.unmap(y)),
                        (
                            self.sim.protect(x, Protection::Read),
                            self.mm.protect(y, Protection::Read),
                        ),
                        (self.sim.release(x), self.mm.release(y)),
                        (self.sim.unmap_deferred(x), self.mm.unmap_deferred(y)),
                    ];
                    for (k, (s, m)) in pairs.into_iter().enumerate() {
                        assert!(s.is_err(), "{what}: sim accepted a bad range (call {k})");
                        assert_eq!(ks(s), ks(m), "{what}: call {k} on {x:?} / {y:?}");
                    }
                    self.t.arg_errors += 1;
                }
            },
            // Flush.
            83..=86 => {
                let pending: usize = self
                    .res
                    .iter()
                    .map(|r| r.pages.iter().filter(|x| **x == Page::Unflushed).count())
                    .sum();
                assert_eq!(self.sim.unflushed_pages(), pending, "{what}");
                assert_eq!(self.sim.flush(), pending, "{what}");
                assert_eq!(self.mm.flush(), 0, "mmap's default flush");
                for r in &mut self.res {
                    for x in &mut r.pages {
                        if *x == Page::Unflushed {
                            *x = Page::Unmapped;
                        }
                    }
                }
            }
            // Write.
            _ => {
                let k = rng.below(n);
                let v = rng.between(1, 255) as u8;
                self.write(i, k, v);
            }
        }
    }

    fn tally_mm(&mut self, m: Result<(), ShimError>) {
        match m {
            Ok(()) => self.t.violations_mmap_ok += 1,
            Err(_) => self.t.violations_mmap_err += 1,
        }
    }

    fn finish(&mut self) {
        for r in self.res.drain(..) {
            // SAFETY: whole reservations, not used again.
            unsafe {
                self.sim.release(r.sim).unwrap();
                self.mm.release(r.mm_all).unwrap();
            }
        }
        assert_eq!(self.sim.stats().reservations, 0);
        assert_eq!(self.sim.stats().mapped_pages, 0);
    }
}

fn run_strategy(strategy: UnmapStrategy) {
    let mm = MmapBackend::with_strategy(strategy);
    let page = mm.page_size().0;
    let mut buf = vec![0u8; 1024 * page];
    let mut w = World {
        sim: SimBackend::new(&mut buf, page).unwrap(),
        mm,
        page,
        res: vec![],
        t: Tally::default(),
    };
    for seed in 1..=12u64 {
        let mut rng = Rng::new(seed * 7919);
        for step in 0..250 {
            let what = format!("{strategy:?} seed {seed} step {step}");
            w.step(&mut rng, &what);
            if step % 5 == 0 {
                w.verify(&what);
            }
        }
        w.verify("end");
        w.finish();
    }
    eprintln!("{strategy:?}: {:?}", w.t);
    assert!(w.t.valid > 500 && w.t.arg_errors > 20 && w.t.content_checks > 500, "{:?}", w.t);
    // Every violation mmap was given went through: the documented "system
    // backends [detect] some".
    assert!(w.t.violations_mmap_ok > 0);
}

/// Holds: both strategies against the simulator.
#[test]
fn sim_and_mmap_agree_on_sequences() {
    run_strategy(UnmapStrategy::Decommit);
    run_strategy(UnmapStrategy::Replace);
}
