//! Round 47a outside review: the VM arena against a brute-force model over
//! several allocation-table pages (64-byte pages: 512 tracts a bit page, 8 a
//! table page), with zones, alignments, partial frees, spare and commit
//! limits, and the simulated backend's page states compared after each step.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Pages, Protection, Range, Size};

const PAGE: usize = 64;

mod outside_common;
use outside_common::Rng;

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct T {
    owner: u32,
    prot: u8, // 0 rw 1 r 2 none
    spare: bool,
}

struct Model {
    t: Vec<T>,
    base: usize,
    zone_shift: u32,
    spare_limit: usize,
    limit: usize,
}

impl Model {
    fn n(&self) -> usize {
        self.t.len()
    }
    fn table_pages(&self) -> usize {
        self.n().div_ceil(PAGE / 8)
    }
    fn bit_pages(&self) -> usize {
        self.n().div_ceil(PAGE * 8)
    }
    fn table_used(&self, k: usize) -> bool {
        let per = PAGE / 8;
        (k * per..((k + 1) * per).min(self.n())).any(|i| self.t[i].owner != 0)
    }
    fn bit_used(&self, j: usize) -> bool {
        let per = PAGE * 8;
        (j * per..((j + 1) * per).min(self.n())).any(|i| self.t[i].owner != 0)
    }
    fn spare(&self) -> usize {
        self.t.iter().filter(|t| t.spare).count()
    }
    fn allocated(&self) -> usize {
        self.t.iter().filter(|t| t.owner != 0).count()
    }
    fn meta(&self) -> usize {
        (0..self.table_pages()).filter(|&k| self.table_used(k)).count()
            + (0..self.bit_pages()).filter(|&j| self.bit_used(j)).count()
    }
    fn committed(&self) -> usize {
        self.allocated() + self.spare() + self.meta()
    }
    fn fit(&self, pages: usize, align: usize, zones: ZoneSet) -> Option<usize> {
        let n = self.n();
        let mut p = 0;
        while p + pages <= n {
            if ((self.base / PAGE) + p) % align != 0 {
                p += 1;
                continue;
            }
            let ok_free = (p..p + pages).all(|i| self.t[i].owner == 0);
            let ok_zone = (p..p + pages)
                .all(|i| zones.contains((((self.base + i * PAGE) >> self.zone_shift) % 64) as u32));
            if ok_free && ok_zone {
                return Some(p);
            }
            p += 1;
        }
        None
    }
    fn place(&self, req: &Request) -> Option<(usize, Placement)> {
        let tiers = [
            (req.prefer.inter(req.avoid.complement()), Placement::Preferred),
            (req.avoid.complement(), Placement::NotAvoided),
            (ZoneSet::ALL, Placement::Anywhere),
        ];
        for (z, pl) in tiers {
            if z.is_empty() {
                continue;
            }
            if let Some(p) = self.fit(req.pages.0, req.align.0, z) {
                return Some((p, pl));
            }
        }
        None
    }
}

fn zone_set(r: &mut Rng) -> ZoneSet {
    match r.below(6) {
        0 => ZoneSet::ALL,
        1 => ZoneSet::EMPTY,
        2 => ZoneSet::single(r.below(64) as u32),
        3 => ZoneSet(r.next() & r.next()),
        _ => ZoneSet(r.next()),
    }
}

fn compare(a: &VmArena<&SimBackend<'_>>, sim: &SimBackend<'_>, m: &Model, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: check: {e:?}"));
    let n = m.n();
    assert_eq!(a.allocated().0, m.allocated() * PAGE, "{what}: allocated");
    assert_eq!(a.spare().0, m.spare() * PAGE, "{what}: spare");
    assert_eq!(a.committed().0, m.committed() * PAGE, "{what}: committed");
    for i in 0..n {
        let addr = Addr(m.base + i * PAGE);
        let t = m.t[i];
        let st = sim.page_state(addr).unwrap();
        if t.owner != 0 {
            let p = [Protection::ReadWrite, Protection::Read, Protection::None][t.prot as usize];
            assert_eq!(st, PageState::Mapped(p), "{what}: tract {i}");
            let d = a.tract(addr).unwrap_or_else(|| panic!("{what}: tract {i} not allocated"));
            assert_eq!((d.owner, d.prot), (Owner(t.owner), p), "{what}: tract {i}");
        } else if t.spare {
            assert_eq!(st, PageState::Mapped(Protection::ReadWrite), "{what}: spare tract {i}");
            assert!(a.tract(addr).is_none());
        } else {
            assert_eq!(st, PageState::Reserved, "{what}: free tract {i}");
            assert!(a.tract(addr).is_none());
        }
    }
    for k in 0..m.table_pages() {
        let addr = Addr(m.base + (n + k) * PAGE);
        let mapped = matches!(sim.page_state(addr), Some(PageState::Mapped(_)));
        assert_eq!(mapped, m.table_used(k), "{what}: table page {k}");
    }
    for j in 0..m.bit_pages() {
        let addr = Addr(m.base + (n + m.table_pages() + j) * PAGE);
        let mapped = matches!(sim.page_state(addr), Some(PageState::Mapped(_)));
        assert_eq!(mapped, m.bit_used(j), "{what}: bit page {j}");
    }
}

fn run(seed: u64, tracts: usize, steps: usize, with_limit: bool) {
    let mut r = Rng(seed | 1);
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let zone_shift = 6 + r.below(7) as u32;
    let spare_limit = [0usize, 3, 40, 1000][r.below(4) as usize];
    let limit = if with_limit { (tracts / 3 + r.below(200) as usize) * PAGE } else { usize::MAX };
    let mut a = VmArena::new(
        &sim,
        VmArenaConfig::new(Size(tracts * PAGE))
            .zone_shift(zone_shift)
            .spare_limit(spare_limit)
            .commit_limit(Size(limit)),
    )
    .unwrap();
    let mut m =
        Model { t: vec![T::default(); tracts], base: a.base().0, zone_shift, spare_limit, limit };
    let idle_meta = a.metadata_mapped();
    let idle_pages = sim.stats().mapped_pages;
    let mut live: Vec<(usize, usize, u32)> = Vec::new();
    for step in 0..steps {
        let what = format!("seed {seed:#x} step {step}");
        let op = r.below(20);
        if op < 9 || live.is_empty() {
            let pages = match r.below(10) {
                0 => 1 + r.below(1200) as usize,
                1..=3 => 1 + r.below(130) as usize,
                _ => 1 + r.below(12) as usize,
            };
            let amax = if r.below(4) == 0 { 11 } else { 4 };
            let align = 1usize << r.below(amax);
            let owner = 1 + r.below(3) as u32;
            let req = Request::new(Pages(pages), Owner(owner))
                .align(Pages(align))
                .prefer(zone_set(&mut r));
            let req = req.avoid(if r.below(2) == 0 { ZoneSet::EMPTY } else { zone_set(&mut r) });
            let expect = m.place(&req);
            let got = a.alloc(&req);
            match (expect, got) {
                (None, Err(VmArenaError::NoSpace { .. })) => {}
                (Some((p, pl)), got) => {
                    let lo = p;
                    let hi = p + pages;
                    // commit-limit model
                    let tp = |i: usize| i / (PAGE / 8);
                    let bp = |i: usize| i / (PAGE * 8);
                    let meta = (tp(lo)..=tp(hi - 1)).filter(|&k| !m.table_used(k)).count()
                        + (bp(lo)..=bp(hi - 1)).filter(|&j| !m.bit_used(j)).count();
                    let spare_in = (lo..hi).filter(|&i| m.t[i].spare).count();
                    let committed = m.committed();
                    let fresh = pages - spare_in + meta;
                    let ok = if committed + fresh <= m.limit / PAGE {
                        true
                    } else if m.spare() > 0
                        && committed - m.spare() + pages + meta <= m.limit / PAGE
                    {
                        for t in m.t.iter_mut() {
                            t.spare = false;
                        }
                        true
                    } else {
                        false
                    };
                    if ok {
                        let g = got.unwrap_or_else(|e| {
                            panic!("{what}: {req:?} expected at {p} ({pl:?}), got {e:?}")
                        });
                        assert_eq!(
                            (g.range.base().0, g.range.size().0, g.placement),
                            (m.base + p * PAGE, pages * PAGE, pl),
                            "{what}: {req:?} (zone shift {zone_shift})"
                        );
                        for i in lo..hi {
                            m.t[i] = T { owner, prot: 0, spare: false };
                        }
                        live.push((lo, hi, owner));
                    } else {
                        assert!(
                            matches!(got, Err(VmArenaError::CommitLimit { .. })),
                            "{what}: {req:?} expected CommitLimit, got {got:?}"
                        );
                    }
                }
                (e, g) => panic!("{what}: {req:?}: expected {e:?}, got {g:?}"),
            }
        } else if op < 15 {
            // Free the whole of a live allocation, or part of it.
            let idx = r.below(live.len() as u64) as usize;
            let (lo, hi, owner) = live[idx];
            let (flo, fhi) = if r.below(3) == 0 && hi - lo > 1 {
                let a0 = lo + r.below((hi - lo) as u64) as usize;
                let b0 = a0 + 1 + r.below((hi - a0) as u64) as usize;
                (a0, b0)
            } else {
                (lo, hi)
            };
            if r.below(8) == 0 {
                let wrong = owner % 3 + 1;
                let e = a.free(
                    Range::new(Addr(m.base + flo * PAGE), Addr(m.base + fhi * PAGE)).unwrap(),
                    Owner(wrong),
                );
                assert!(matches!(e, Err(VmArenaError::WrongOwner { .. })), "{what}: {e:?}");
            } else {
                let range =
                    Range::new(Addr(m.base + flo * PAGE), Addr(m.base + fhi * PAGE)).unwrap();
                a.free(range, Owner(owner)).unwrap_or_else(|e| panic!("{what}: free {e:?}"));
                let protected = (flo..fhi).any(|i| m.t[i].prot != 0);
                let keep = if protected {
                    0
                } else {
                    m.spare_limit.saturating_sub(m.spare()).min(fhi - flo)
                };
                for i in flo..fhi {
                    m.t[i] = T { owner: 0, prot: 0, spare: i < flo + keep };
                }
                live.swap_remove(idx);
                if flo > lo {
                    live.push((lo, flo, owner));
                }
                if fhi < hi {
                    live.push((fhi, hi, owner));
                }
            }
        } else if op < 17 {
            let idx = r.below(live.len() as u64) as usize;
            let (lo, hi, owner) = live[idx];
            let p = r.below(3) as u8;
            let prot = [Protection::ReadWrite, Protection::Read, Protection::None][p as usize];
            let range = Range::new(Addr(m.base + lo * PAGE), Addr(m.base + hi * PAGE)).unwrap();
            a.protect(range, Owner(owner), prot).unwrap();
            for i in lo..hi {
                m.t[i].prot = p;
            }
        } else if op == 17 {
            let n = a.purge_spare().unwrap();
            assert_eq!(n, m.spare(), "{what}: purged");
            for t in m.t.iter_mut() {
                t.spare = false;
            }
        } else if op == 18 {
            let nl = [0usize, 2, 50, 500][r.below(4) as usize];
            a.set_spare_limit(nl).unwrap();
            if m.spare() > nl {
                for t in m.t.iter_mut() {
                    t.spare = false;
                }
            }
            m.spare_limit = nl;
        } else if with_limit {
            let c = m.committed();
            let nl = (c.saturating_sub(m.spare()) + r.below(300) as usize) * PAGE;
            a.set_commit_limit(Size(nl)).unwrap();
            if c * PAGE > nl {
                for t in m.t.iter_mut() {
                    t.spare = false;
                }
            }
            m.limit = nl;
        }
        compare(&a, &sim, &m, &what);
    }
    // Everything back: the metadata is what an idle arena maps.
    for (lo, hi, o) in live.drain(..) {
        let range = Range::new(Addr(m.base + lo * PAGE), Addr(m.base + hi * PAGE)).unwrap();
        a.free(range, Owner(o)).unwrap();
    }
    a.purge_spare().unwrap();
    a.check().unwrap();
    assert_eq!(a.committed(), Size(0), "seed {seed:#x}");
    assert_eq!(a.metadata_mapped(), idle_meta, "seed {seed:#x}: idle metadata");
    assert_eq!(sim.stats().mapped_pages, idle_pages, "seed {seed:#x}: sim pages mapped");
}

#[test]
fn model_multi_bit_page() {
    for s in 0..6u64 {
        run(0x9e37_79b9_7f4a_7c15 ^ (s * 0x1234_5677), 2600 + (s as usize) * 61, 250, false);
    }
}

#[test]
fn model_multi_bit_page_commit_limit() {
    for s in 0..6u64 {
        run(0x5eed_0000_1234_0001 ^ (s * 0x8765_4321), 1900 + (s as usize) * 97, 250, true);
    }
}

/// A longer sweep, run by hand: `R47A_SWEEP=n`.
#[test]
fn model_sweep_env() {
    let n: u64 = std::env::var("R47A_SWEEP").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for s in 0..n {
        let tracts = 1100 + (s as usize * 131) % 3000;
        run(0xabcd_ef01_2345_6789 ^ (s * 0x9e37_79b9), tracts, 600, s % 2 == 1);
    }
}
