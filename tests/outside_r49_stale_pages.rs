//! `VmArena::stale_pages()` (src/vmarena/check.rs:15-29): metadata pages
//! (page-table and allocation-table pages) mapped but describing no
//! allocated tract, left by a failed unmap and given back by the retry
//! every operation makes first. Checked against a model built from the
//! simulated backend's mapped pages and the tract owners kept here, over
//! seeded random operations with only unmaps failing.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Op, Pages, Protection, Range, Size};

/// 8 descriptors a page-table page, 512 bits an allocation-table page.
const PAGE: usize = 64;
const TRACTS: usize = 1100;

type Fi<'a> = FaultInjector<&'a SimBackend<'a>>;
type Arena<'a> = VmArena<&'a Fi<'a>>;

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn mapped(sim: &SimBackend<'_>, a: Addr) -> bool {
    matches!(sim.page_state(a), Some(PageState::Mapped(_)))
}

/// The model: metadata pages the backend maps that describe no tract the
/// model says is allocated (layout: tracts | page table | bit table).
fn model_stale(a: &Arena<'_>, sim: &SimBackend<'_>, owners: &[u32]) -> (usize, usize) {
    let base = a.base().0;
    let per_t = PAGE / 8;
    let per_b = PAGE * 8;
    let tp = TRACTS.div_ceil(per_t);
    let bp = TRACTS.div_ceil(per_b);
    let mut stale = 0;
    let mut meta_mapped = 0;
    for k in 0..tp {
        let m = mapped(sim, Addr(base + (TRACTS + k) * PAGE));
        meta_mapped += usize::from(m);
        let used = owners[k * per_t..((k + 1) * per_t).min(TRACTS)].iter().any(|&o| o != 0);
        stale += usize::from(m && !used);
    }
    for j in 0..bp {
        let m = mapped(sim, Addr(base + (TRACTS + tp + j) * PAGE));
        meta_mapped += usize::from(m);
        let used = owners[j * per_b..((j + 1) * per_b).min(TRACTS)].iter().any(|&o| o != 0);
        stale += usize::from(m && !used);
    }
    (stale, meta_mapped)
}

#[derive(Debug, Clone, Copy)]
enum OpK {
    Alloc(usize, u32),
    Free(usize),
    Protect(usize),
    Client(usize),
    Purge,
    SpareLimit(usize),
    CommitLimit(usize),
}

struct World {
    owners: Vec<u32>,
    grants: Vec<(Range, u32)>,
}

fn idx(a: &Arena<'_>, addr: Addr) -> usize {
    (addr.0 - a.base().0) / PAGE
}

fn run(a: &mut Arena<'_>, w: &mut World, op: OpK) -> Result<(), VmArenaError> {
    match op {
        OpK::Alloc(pages, owner) => {
            let g = a.alloc(&Request::new(Pages(pages), Owner(owner)))?;
            let lo = idx(a, g.range.base());
            for o in &mut w.owners[lo..lo + pages] {
                *o = owner;
            }
            w.grants.push((g.range, owner));
        }
        OpK::Free(i) => {
            let (r, o) = w.grants[i];
            a.free(r, Owner(o))?;
            let lo = idx(a, r.base());
            for x in &mut w.owners[lo..lo + r.size().0 / PAGE] {
                *x = 0;
            }
            w.grants.swap_remove(i);
        }
        OpK::Protect(i) => {
            let (r, o) = w.grants[i];
            a.protect(r, Owner(o), Protection::Read)?;
        }
        OpK::Client(i) => {
            let (r, _) = w.grants[i];
            a.set_client(r.base(), 7)?;
        }
        OpK::Purge => {
            a.purge_spare()?;
        }
        OpK::SpareLimit(n) => a.set_spare_limit(n)?,
        OpK::CommitLimit(n) => a.set_commit_limit(Size(n * PAGE))?,
    }
    Ok(())
}

fn pick(s: &mut u64, w: &World) -> OpK {
    let r = rng(s);
    let g = w.grants.len();
    match (r % 10, g) {
        (0..=3, _) | (_, 0) => OpK::Alloc(1 + (r >> 8) as usize % 24, 1 + (r >> 16) as u32 % 5),
        (4..=5, _) => OpK::Free((r >> 8) as usize % g),
        (6, _) => OpK::Protect((r >> 8) as usize % g),
        (7, _) => OpK::Client((r >> 8) as usize % g),
        (8, _) => [OpK::Purge, OpK::SpareLimit(30)][(r >> 8) as usize % 2],
        _ => OpK::CommitLimit(1500),
    }
}

/// A clean operation with no effect of its own on committed memory, which
/// retries first: a client set on a live tract, the same spare bound (not
/// lower than the spare count), the same commit limit.
fn no_effect_ops(a: &Arena<'_>, w: &World) -> Vec<OpK> {
    let mut v = vec![
        OpK::SpareLimit(a.spare_limit().max(a.spare().0 / PAGE)),
        OpK::CommitLimit(a.commit_limit().0 / PAGE),
    ];
    if !w.grants.is_empty() {
        v.push(OpK::Client(0));
    }
    v
}

/// After every step of seeded random operations with random unmap faults
/// (both shapes): `stale_pages()` equals the model; `check()` holds (so a
/// non-zero `stale_pages()` never coexists with a complaint); a failed
/// operation changes committed() by at most stale_pages() pages plus the
/// spare pages it gave back plus the stale pages it left; and a clean
/// no-effect operation right after gives back exactly the stale pages
/// (committed() falls by stale_pages() pages, stale_pages() becomes 0).
#[test]
fn stale_pages_is_exact_and_the_retry_gives_back_exactly_those() {
    let mut stale_seen = 0usize;
    let mut retries_checked = 0usize;
    let mut problems: Vec<String> = Vec::new();
    for seed in 1..=24u64 {
        for shape in [FaultShape::Clean, FaultShape::PartWay] {
            let mut buf = vec![0u8; 1 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let fi = FaultInjector::new(&sim);
            let cfg = VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(30);
            let mut a = VmArena::new(&fi, cfg).unwrap();
            let mut w = World { owners: vec![0; TRACTS], grants: Vec::new() };
            let mut s = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            for step in 0..400 {
                let (ms, meta) = model_stale(&a, &sim, &w.owners);
                let st = a.stale_pages();
                assert_eq!(
                    meta,
                    a.table_pages_mapped() + a.bit_pages_mapped(),
                    "seed {seed} step {step}: layout of the model"
                );
                if st != ms {
                    problems.push(format!(
                        "seed {seed} {shape:?} step {step}: stale_pages {st} != model {ms}"
                    ));
                }
                stale_seen += st;
                let op = pick(&mut s, &w);
                let before = (a.committed().0, a.spare().0, st);
                fi.only(&[Op::Unmap]);
                fi.set_shape(shape);
                fi.fail_randomly(seed * 31 + step as u64, 250_000);
                let r = run(&mut a, &mut w, op);
                fi.clear();
                a.check().unwrap_or_else(|e| {
                    panic!("seed {seed} step {step} {op:?} -> {r:?}: check {e:?}")
                });
                let (ms2, _) = model_stale(&a, &sim, &w.owners);
                let st2 = a.stale_pages();
                if st2 != ms2 {
                    problems.push(format!("seed {seed} {shape:?} step {step} after {op:?}: stale_pages {st2} != model {ms2}"));
                }
                if let Err(e) = &r {
                    let rolled = matches!(e, VmArenaError::RollbackFailed { .. });
                    let (c0, sp0, s0) = before;
                    let (c1, sp1) = (a.committed().0, a.spare().0);
                    // Allowed: the retry's pages, spare given back, stale left.
                    let lo = c0 as isize - (s0 * PAGE) as isize - sp0.saturating_sub(sp1) as isize;
                    let hi = c0 + st2 * PAGE + sp1.saturating_sub(sp0);
                    if !rolled && ((c1 as isize) < lo || c1 > hi) {
                        problems.push(format!(
                            "seed {seed} {shape:?} step {step}: failed {op:?} ({e:?}) moved committed {c0} -> {c1} (stale {s0} -> {st2}, spare {sp0} -> {sp1})"
                        ));
                    }
                }
                // The retry, alone and clean.
                if st2 > 0 && rng(&mut s) % 2 == 0 {
                    let ops = no_effect_ops(&a, &w);
                    let op2 = ops[(rng(&mut s) as usize) % ops.len()];
                    let c0 = a.committed().0;
                    let r2 = run(&mut a, &mut w, op2);
                    a.check().unwrap();
                    retries_checked += 1;
                    if r2.is_err() || a.stale_pages() != 0 || a.committed().0 != c0 - st2 * PAGE {
                        problems.push(format!(
                            "seed {seed} {shape:?} step {step}: clean {op2:?} -> {r2:?}: committed {c0} -> {}, expected -{} (stale {st2} -> {})",
                            a.committed().0,
                            st2 * PAGE,
                            a.stale_pages()
                        ));
                    }
                }
            }
        }
    }
    assert!(stale_seen > 50, "the faults left stale pages ({stale_seen})");
    assert!(retries_checked > 20, "retries checked: {retries_checked}");
    assert!(
        problems.is_empty(),
        "{} problems, first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(8)]
    );
}
