//! A seeded model of every path that frees (free, free by handle, partial
//! frees, shrinking resizes, deferred frees and flushes, frees in an added
//! span) against a source that refuses give-backs (busy, otherwise,
//! stranded) and panics (imports and give-backs), with the arena's
//! invariants and its books checked after every step, and the give-back
//! rules' promise checked at the end.

mod outside_r51_common;

use std::collections::BTreeMap;

use outside_r51_common::*;
use vmspace::arena::{Constraints, Handle, Policy, SegmentKinds};
use vmspace::{Addr, Size};

const CHURN: usize = 0x10_0000;

#[derive(Clone, Copy)]
enum Kind {
    Addr,
    Handle(Handle),
}

fn round(n: usize) -> usize {
    (n + 15) & !15
}

/// The source's view of the live allocations, from the model.
fn sync(src: &Bot, model: &BTreeMap<usize, (usize, Kind)>) {
    let mut s = src.st();
    s.live = model.iter().map(|(&a, &(n, _))| (a, a + round(n))).collect();
}

fn pick<T: Copy>(rng: &mut Rng, v: &[T]) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[rng.below(v.len() as u64) as usize])
    }
}

fn set_mode(src: &Bot, rng: &mut Rng, with_other: bool) {
    let mut s = src.st();
    let seed = rng.next();
    let w = match rng.below(5) {
        0 => [0, 0, 0, 0, 0],
        1 => [900, 0, 0, 0, 0],
        2 => [300, if with_other { 100 } else { 0 }, 30, 20, 20],
        3 => [500, 0, 0, 50, 50],
        _ => [100, if with_other { 50 } else { 0 }, 0, 0, 0],
    };
    s.random = Some((Rng(seed), w));
    s.imp_panic_pm = [0, 50, 150][rng.below(3) as usize];
    s.alternate = rng.below(6) == 0;
}

fn run(seed: u64, steps: usize, with_other: bool) {
    quiet();
    let src = Bot::new();
    let (mut t, mut h) = bufs();
    let mut a = arena(&mut t, &mut h, &src);
    // A one-unit span, always allocated but inside `churn`: a free there
    // empties no imported span, and no other allocation can take it.
    a.add(Addr(CHURN), Size(16)).unwrap();
    let mut token = a.xalloc(&Constraints::new(Size(16)).exact(Addr(CHURN))).unwrap();
    let mut rng = Rng(seed);
    let mut model: BTreeMap<usize, (usize, Kind)> = BTreeMap::new();
    set_mode(&src, &mut rng, with_other);
    for step in 0..steps {
        sync(&src, &model);
        {
            // Unflushed ranges may be given back only by a flush that
            // makes them free first: checked outside flushes.
            let mut s = src.st();
            s.unflushed = Vec::new();
        }
        let unfl: Vec<(usize, usize)> = a
            .walk(SegmentKinds::UNFLUSHED)
            .map(|s| (s.range.base().0, s.range.limit().0))
            .collect();
        let op = rng.below(13);
        {
            let mut s = src.st();
            s.check_unflushed = op != 9;
            s.unflushed = unfl;
        }
        let by_addr: Vec<usize> =
            model.iter().filter(|(_, (_, k))| matches!(k, Kind::Addr)).map(|(&a, _)| a).collect();
        let by_handle: Vec<usize> = model
            .iter()
            .filter(|(_, (_, k))| matches!(k, Kind::Handle(_)))
            .map(|(&a, _)| a)
            .collect();
        let size = if rng.below(3) == 0 {
            Q * (1 + rng.below(6) as usize)
        } else {
            16 * (1 + rng.below(64) as usize)
        };
        let what: String;
        match op {
            0 | 1 => {
                let policy =
                    [Policy::InstantFit, Policy::FirstFit, Policy::BestFit, Policy::NextFit]
                        [rng.below(4) as usize];
                what = format!("alloc {size:#x} {policy:?}");
                if let Ok(Ok(x)) = catch(|| a.alloc(Size(size), policy)) {
                    model.insert(x.0, (size, Kind::Addr));
                }
            }
            2 => {
                what = format!("alloc_handle {size:#x}");
                if let Ok(Ok(hd)) = catch(|| a.alloc_handle(Size(size), Policy::InstantFit)) {
                    model.insert(hd.addr().0, (size, Kind::Handle(hd)));
                }
            }
            3 => {
                let frees: Vec<(usize, usize)> = a
                    .walk(SegmentKinds::FREE)
                    .map(|s| (s.range.base().0, s.range.size().0))
                    .collect();
                what = "xalloc exact".into();
                if let Some((b, n)) = pick(&mut rng, &frees) {
                    let n = 16 * (1 + rng.below((n / 16) as u64) as usize);
                    let x = a.xalloc(&Constraints::new(Size(n)).exact(Addr(b))).unwrap();
                    model.insert(x.0, (n, Kind::Addr));
                }
            }
            4 => {
                let spans: Vec<(usize, usize)> = a
                    .walk(SegmentKinds::SPANS)
                    .map(|s| (s.range.base().0, s.range.limit().0))
                    .collect();
                what = "xalloc window".into();
                if let Some((b, e)) = pick(&mut rng, &spans) {
                    let c = Constraints::new(Size(16 * (1 + rng.below(8) as usize)))
                        .min_addr(Addr(b))
                        .max_addr(Addr(e))
                        .from_top(rng.below(2) == 0);
                    if let Ok(x) = a.xalloc(&c) {
                        model.insert(x.0, (c.size().0, Kind::Addr));
                    }
                }
            }
            5 | 6 => {
                what = "free".into();
                if let Some(x) = pick(&mut rng, &by_addr) {
                    let (n, _) = model.remove(&x).unwrap();
                    sync(&src, &model);
                    if let Ok(r) = catch(|| a.free(Addr(x), Size(n))) {
                        r.unwrap();
                    }
                }
            }
            7 => {
                what = "free_handle".into();
                if let Some(x) = pick(&mut rng, &by_handle) {
                    let (n, k) = model.remove(&x).unwrap();
                    let Kind::Handle(hd) = k else { unreachable!() };
                    sync(&src, &model);
                    if let Ok(r) = catch(|| a.free_handle(hd)) {
                        assert_eq!(r.unwrap(), Size(n));
                    }
                }
            }
            8 => {
                what = "free_deferred".into();
                if let Some(x) = pick(&mut rng, &by_addr) {
                    let (n, _) = model.remove(&x).unwrap();
                    a.free_deferred(Addr(x), Size(n)).unwrap();
                }
            }
            9 => {
                what = "flushed".into();
                let _ = catch(|| a.flushed());
            }
            10 => {
                what = "free_part".into();
                if let Some(x) = pick(&mut rng, &by_addr) {
                    let (n, _) = model[&x];
                    if n > 16 {
                        let cut = 16 * (1 + rng.below(((n - 1) / 16) as u64) as usize);
                        model.remove(&x);
                        if rng.below(2) == 0 {
                            // The head: the tail lives on.
                            a.free_part(Addr(x), Size(0), Size(cut)).unwrap();
                            model.insert(x + cut, (n - cut, Kind::Addr));
                        } else {
                            a.free_part(Addr(x), Size(cut), Size(n - cut)).unwrap();
                            model.insert(x, (cut, Kind::Addr));
                        }
                    }
                }
            }
            11 => {
                what = "resize shrink".into();
                if let Some(x) = pick(&mut rng, &by_addr) {
                    let (n, _) = model[&x];
                    if n > 16 {
                        let m = 16 * (1 + rng.below(((n - 1) / 16) as u64) as usize);
                        a.resize(Addr(x), Size(n), Size(m)).unwrap();
                        model.insert(x, (m, Kind::Addr));
                    }
                }
            }
            _ => {
                what = "mode / churn".into();
                if rng.below(2) == 0 {
                    set_mode(&src, &mut rng, with_other);
                } else {
                    for _ in 0..rng.below(40) {
                        let _ = catch(|| a.free(token, Size(16)));
                        token = a.xalloc(&Constraints::new(Size(16)).exact(Addr(CHURN))).unwrap();
                    }
                }
            }
        }
        sync(&src, &model);
        src.st().check_unflushed = false;
        inv(&a, &src, &format!("seed {seed} step {step} ({what})"));
        assert_eq!(a.live(), model.len() + 1, "seed {seed} step {step}: live count");
    }

    // The promise: once the source takes give-backs and a call returns,
    // within 1,025 frees no wholly free imported span is left (but one
    // refused with another error outside a walk, and not walked since).
    {
        let mut s = src.st();
        s.random = None;
        s.alternate = false;
        s.rel_default = Rel::Ok;
        s.imp_panic_pm = 0;
        s.imp_panics = 0;
        s.rel.clear();
    }
    let big = a.alloc(Size(1 << 20), Policy::InstantFit).unwrap();
    a.free(big, Size(1 << 20)).unwrap();
    for _ in 0..1025 {
        a.free(token, Size(16)).unwrap();
        token = a.xalloc(&Constraints::new(Size(16)).exact(Addr(CHURN))).unwrap();
    }
    inv(&a, &src, &format!("seed {seed}: after the source recovered"));
    for r in wholly_free_imported(&a) {
        let last = src.st().log.iter().rev().find(|l| l.0 == r.base().0).map(|l| l.2);
        assert_eq!(
            last,
            Some(Rel::Other),
            "seed {seed}: wholly free imported span {r} left in the arena (last offer {last:?})"
        );
    }
    // Everything freed: all goes back but spans refused otherwise.
    let rest: Vec<(usize, (usize, Kind))> = model.iter().map(|(&a, &v)| (a, v)).collect();
    for (x, (n, k)) in rest {
        model.remove(&x);
        sync(&src, &model);
        match k {
            Kind::Addr => a.free(Addr(x), Size(n)).unwrap(),
            Kind::Handle(hd) => {
                a.free_handle(hd).unwrap();
            }
        }
    }
    a.free(token, Size(16)).unwrap();
    a.flushed();
    inv(&a, &src, &format!("seed {seed}: all freed"));
    assert_eq!(a.sizes().allocated, Size(0));
    {
        let s = src.st();
        let count = |r: &[Rel]| s.log.iter().filter(|l| r.contains(&l.2)).count() as u64;
        let c = a.counters();
        assert_eq!(c.exports, count(&[Rel::Ok]), "seed {seed}: exports");
        assert_eq!(
            c.export_failures,
            count(&[Rel::Busy, Rel::Other, Rel::Stranded]),
            "seed {seed}: export_failures"
        );
    }
    drop(a);
    let s = src.st();
    let count = |r: Rel| s.log.iter().filter(|l| l.2 == r).count();
    eprintln!(
        "seed {seed}: imports {} give-backs {} (busy {}, other {}, stranded {}, panics {})",
        s.imports,
        s.log.len(),
        count(Rel::Busy),
        count(Rel::Other),
        count(Rel::Stranded),
        count(Rel::PanicBefore) + count(Rel::PanicAfter)
    );
    assert!(s.violations.is_empty(), "seed {seed}: {:?}", s.violations);
    let left: Vec<_> = s.out.keys().filter(|b| !s.lost.contains_key(b)).collect();
    assert!(left.is_empty(), "seed {seed}: the drop left spans with the source: {left:x?}");
}

/// Random frees of every kind against a source refusing busy, stranding
/// and panicking (no other refusals): after every step the arena checks,
/// its `imported` equals what the source has out (less what a panic lost),
/// no range goes back twice, while live or unflushed, or while a panic is
/// noted; once the source recovers and a call returns, no wholly free
/// imported span is left after 1,025 frees, and the drop gives back all.
/// DEFECT (if it fails): a give-back rule is broken on some free path;
/// the message names the seed, step and operation.
#[test]
fn model_busy_panics_stranded() {
    for seed in 1..=6 {
        run(seed, 2000, false);
    }
}

/// As `model_busy_panics_stranded`, with refusals by other errors too.
/// DEFECT (if it fails): as above.
#[test]
fn model_with_other_refusals() {
    for seed in 100..=105 {
        run(seed, 2000, true);
    }
}
