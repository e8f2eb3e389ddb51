//! Outside review, round 32: an importing arena's statistics as a
//! documented contract, after every step of a seeded random sequence that
//! includes failures of every kind: failed imports, give-backs the source
//! refuses or strands, injected faults (`set_mtbf`), impossible and
//! overflowing requests, double and wrong-size frees, stale handles and
//! handles of another arena, deferred frees and flushes, partial frees
//! (`free_part`: "Freeing the whole allocation is free and counts as a
//! free; a partial free counts none", src/arena/resize.rs:37) and resizes
//! ("every failure but a bad claim counts in `failures`",
//! src/arena/resize.rs:137).
//!
//! Contracts (src/arena/stats.rs):
//! - `Counters` (line 29): "They only ever increase." `allocs`
//!   "Successful allocations"; `frees` "Successful frees";
//!   `failures` "Failed alloc, xalloc, add, extend, resize and free_part
//!   calls ... A bad claim, a free ... that is not live as stated, counts
//!   in `bad_frees` instead"; `bad_frees` "Frees refused as bad";
//!   `imports` "Spans imported from the source"; `exports` "Imported spans
//!   given back"; `export_failures` "Give-backs the source refused (the
//!   span stayed, free), or could neither take nor put back (Stranded: the
//!   span was dropped, left with the source)"; `injected` "Faults injected
//!   by the mtbf generator"; `deferred_frees` "Frees that left their
//!   segment freed but not flushed (...; also counted in `frees`)";
//!   `flushes` "Calls of flushed that made unflushed segments free".
//! - `Sizes`: allocated "In allocated segments (sizes rounded up to the
//!   quantum)", unflushed, total "In spans: allocated + free + unflushed",
//!   imported "In imported spans (part of total)".
//! - `walk` lists exactly the spans and segments; `live()` "Live
//!   allocations (held by handles included)"; `span_count()` "Spans (added
//!   and imported)"; `check()` passes.
//!
//! The source is a parent arena behind a wrapper that logs every call and
//! can fail imports, refuse give-backs (the range stays with the child) or
//! strand them (the source keeps the range).

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Counters, Handle, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng;

mod outside_r32_import_model;
use outside_r32_import_model::*;

struct Bufs {
    ptags: Vec<u8>,
    phash: Vec<u8>,
    ctags: Vec<u8>,
    chash: Vec<u8>,
    otags: Vec<u8>,
    ohash: Vec<u8>,
}

fn run(seed: u64, steps: usize, q: usize, pq: usize) -> [u64; 10] {
    let mut b = Bufs {
        ptags: vec![0; 1 << 18],
        phash: vec![0; 1 << 16],
        ctags: vec![0; 1 << 18],
        chash: vec![0; 1 << 16],
        otags: vec![0; 1 << 14],
        ohash: vec![0; 1 << 12],
    };
    let mut parent = Arena::new(
        "parent",
        Size(pq),
        SliceStore::new(&mut b.ptags),
        SliceStore::new(&mut b.phash),
        NoSource,
    )
    .unwrap();
    parent.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    let flaky = Flaky {
        parent,
        fail_import: false,
        release_mode: 0,
        log: Log::default(),
        out: BTreeMap::new(),
        stranded: vec![],
    };
    let mut a: Child<'_, '_> = Arena::new(
        "child",
        Size(q),
        SliceStore::new(&mut b.ctags),
        SliceStore::new(&mut b.chash),
        flaky,
    )
    .unwrap();
    // Another arena over the same range, for foreign handles.
    let mut other = Arena::new(
        "other",
        Size(q),
        SliceStore::new(&mut b.otags),
        SliceStore::new(&mut b.ohash),
        NoSource,
    )
    .unwrap();
    other.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut m =
        Model { q, live: BTreeMap::new(), unflushed: BTreeMap::new(), c: Counters::default() };
    let mut last = Counters::default();
    let mut stale: Vec<Handle> = vec![];
    let mut gone: Vec<(usize, usize)> = vec![];
    let mut mtbf_on = false;
    compare(&a, &m, &mut last, "start");
    for step in 0..steps {
        {
            let s = a.source_mut();
            if rng.chance(6) {
                s.fail_import = !s.fail_import;
            }
            s.release_mode = match rng.below(10) {
                0 => 1,
                1 => 2,
                _ => 0,
            };
        }
        if rng.chance(25) {
            mtbf_on = !mtbf_on;
            a.set_mtbf(seed ^ step as u64, if mtbf_on { 4 } else { 0 });
        }
        let op = rng.below(22);
        let what = format!("q {q} pq {pq} seed {seed} step {step} op {op} mtbf {mtbf_on}");
        // An allocation's result into the model.
        let took =
            |m: &mut Model, r: Result<(Addr, Option<Handle>), ArenaError>, asked: usize| match r {
                Ok((x, h)) => {
                    m.c.allocs += 1;
                    assert!(m.live.insert(x.0, Live { asked, handle: h }).is_none(), "{what}");
                }
                Err(e) => {
                    m.c.failures += 1;
                    if e == ArenaError::Injected {
                        m.c.injected += 1;
                    }
                }
            };
        match op {
            0..=2 => {
                let s = size(&mut rng, q);
                let r = a.alloc(Size(s), policy(&mut rng)).map(|x| (x, None));
                took(&mut m, r, s);
            }
            3 => {
                let s = size(&mut rng, q);
                let r = a.alloc_handle(Size(s), policy(&mut rng)).map(|h| (h.addr(), Some(h)));
                took(&mut m, r, s);
            }
            4 | 5 => {
                let c = constraints(&mut rng, q);
                let s = c.size().0;
                let r = if rng.chance(2) {
                    a.xalloc(&c).map(|x| (x, None))
                } else {
                    a.xalloc_handle(&c).map(|h| (h.addr(), Some(h)))
                };
                took(&mut m, r, s);
            }
            6..=9 if !m.live.is_empty() => {
                let k = *m.live.keys().nth(rng.below(m.live.len() as u64) as usize).unwrap();
                let l = m.live[&k];
                let deferred = rng.chance(3);
                match (l.handle, deferred) {
                    (Some(h), false) => assert_eq!(a.free_handle(h), Ok(Size(l.asked)), "{what}"),
                    (Some(h), true) => {
                        assert_eq!(a.free_handle_deferred(h), Ok(Size(l.asked)), "{what}")
                    }
                    (None, false) => a.free(Addr(k), Size(l.asked)).unwrap(),
                    (None, true) => a.free_deferred(Addr(k), Size(l.asked)).unwrap(),
                }
                m.live.remove(&k);
                m.c.frees += 1;
                if deferred {
                    m.c.deferred_frees += 1;
                    m.unflushed.insert(k, round(q, l.asked));
                }
                match l.handle {
                    Some(h) => stale.push(h),
                    None => gone.push((k, l.asked)),
                }
            }
            10 if !m.live.is_empty() => {
                // A wrong size (same quantum class or not) of a live
                // by-address allocation, or a by-address free of a held one.
                let k = *m.live.keys().nth(rng.below(m.live.len() as u64) as usize).unwrap();
                let l = m.live[&k];
                let w = if l.handle.is_some() {
                    l.asked
                } else if rng.chance(2) && l.asked % q != 1 && l.asked > 1 {
                    l.asked - 1
                } else {
                    l.asked + q
                };
                let r = if rng.chance(2) {
                    a.free(Addr(k), Size(w))
                } else {
                    a.free_deferred(Addr(k), Size(w))
                };
                assert!(r.is_err(), "{what}: wrong free {k:#x} {w} of {l:?}: {r:?}");
                m.c.bad_frees += 1;
            }
            11 if !gone.is_empty() => {
                // A double free, unless the address is live again with
                // that very size (then it is a good free; skip).
                let (k, s) = gone[rng.below(gone.len() as u64) as usize];
                if m.live.get(&k).is_some_and(|l| l.handle.is_none() && l.asked == s) {
                    continue;
                }
                let r = a.free(Addr(k), Size(s));
                assert!(r.is_err(), "{what}: double free {k:#x} {s}: {r:?}");
                m.c.bad_frees += 1;
            }
            12 if !stale.is_empty() => {
                let h = stale[rng.below(stale.len() as u64) as usize];
                // The same address and tag held again (ABA): that handle
                // names a live held allocation, so it is not stale.
                if m.live.values().any(|l| l.handle.is_some_and(|x| x == h)) {
                    continue;
                }
                let r = if rng.chance(2) { a.free_handle(h) } else { a.free_handle_deferred(h) };
                assert!(r.is_err(), "{what}: stale handle {h:?}: {r:?}");
                m.c.bad_frees += 1;
            }
            13 => {
                // Another arena's live handle, perhaps at an address the
                // child holds too.
                let s = 1 + rng.below(8 * q as u64) as usize;
                if let Ok(h) = other.alloc_handle(Size(s), Policy::FirstFit) {
                    let r = a.free_handle(h);
                    assert!(r.is_err(), "{what}: foreign handle {h:?}: {r:?}");
                    m.c.bad_frees += 1;
                    other.free_handle(h).unwrap();
                }
            }
            14 => {
                // Frees with the largest values the types hold.
                let r = a.free(Addr(usize::MAX - q + 1), Size(usize::MAX));
                assert!(r.is_err(), "{what}: {r:?}");
                let r = a.free(Addr(0), Size(0));
                assert!(r.is_err(), "{what}: {r:?}");
                m.c.bad_frees += 2;
            }
            15 | 16 => {
                let f = a.flushed();
                let want: usize = m.unflushed.values().sum();
                assert_eq!(f.0, want, "{what}: flushed()");
                if want > 0 {
                    m.c.flushes += 1;
                }
                m.unflushed.clear();
            }
            17 | 18 if m.live.values().any(|l| l.handle.is_none()) => {
                // free_part: a valid piece (whole, head, middle, tail) or a
                // bad one (misaligned, past the asked size).
                let keys: Vec<usize> =
                    m.live.iter().filter(|(_, l)| l.handle.is_none()).map(|(&k, _)| k).collect();
                let k = keys[rng.below(keys.len() as u64) as usize];
                let asked = m.live[&k].asked;
                let quanta = asked.div_ceil(q);
                let o = q * rng.below(quanta as u64) as usize;
                let valid_ends: Vec<usize> = ((o / q + 1)..quanta)
                    .map(|j| j * q)
                    .chain([asked])
                    .filter(|&e| e > o)
                    .collect();
                let bad = rng.chance(5);
                let (off, len) = if bad {
                    if q > 1 && rng.chance(2) {
                        (o + 1, q)
                    } else {
                        (o, asked - o + q)
                    }
                } else {
                    (o, valid_ends[rng.below(valid_ends.len() as u64) as usize] - o)
                };
                let r = a.free_part(Addr(k), Size(off), Size(len));
                match r {
                    Ok(()) => {
                        assert!(!bad, "{what}: bad free_part {k:#x} {off} {len} of {asked} taken");
                        m.live.remove(&k);
                        if off == 0 && off + len == asked {
                            m.c.frees += 1;
                            gone.push((k, asked));
                        } else {
                            if off > 0 {
                                m.live.insert(k, Live { asked: off, handle: None });
                            }
                            if off + len < asked {
                                m.live.insert(
                                    k + off + len,
                                    Live { asked: asked - off - len, handle: None },
                                );
                            }
                        }
                    }
                    Err(ArenaError::BadFree { .. }) => {
                        assert!(bad, "{what}: free_part {k:#x} {off} {len} of {asked}: {r:?}");
                        m.c.bad_frees += 1;
                    }
                    Err(e) => {
                        m.c.failures += 1;
                        if e == ArenaError::Injected {
                            m.c.injected += 1;
                        } else {
                            panic!("{what}: free_part {k:#x} {off} {len} of {asked}: {e:?}");
                        }
                    }
                }
            }
            19 if m.live.values().any(|l| l.handle.is_none()) => {
                // resize in place: shrink, grow into the free segment after
                // (predicted from the walk), zero, or too much.
                let keys: Vec<usize> =
                    m.live.iter().filter(|(_, l)| l.handle.is_none()).map(|(&k, _)| k).collect();
                let k = keys[rng.below(keys.len() as u64) as usize];
                let asked = m.live[&k].asked;
                let new = match rng.below(6) {
                    0 => 0,
                    1 => usize::MAX,
                    2 => 1 + rng.below(asked as u64) as usize,
                    _ => asked + 1 + rng.below(8 * q as u64) as usize,
                };
                let walk: Vec<_> = a.walk(SegmentKinds::ALL).collect();
                let i = walk
                    .iter()
                    .position(|s| s.kind == SegmentKind::Allocated && s.range.base().0 == k)
                    .unwrap();
                let room = match walk.get(i + 1) {
                    Some(s) if s.kind == SegmentKind::Free => s.range.size().0,
                    _ => 0,
                };
                let fits =
                    new > 0 && new <= usize::MAX - q && round(q, new) <= round(q, asked) + room;
                let r = a.resize(Addr(k), Size(asked), Size(new));
                match r {
                    Ok(()) => {
                        assert!(fits, "{what}: resize {k:#x} {asked} -> {new} (room {room}) taken");
                        m.live.get_mut(&k).unwrap().asked = new;
                    }
                    Err(e) => {
                        assert!(
                            !fits || e == ArenaError::Injected,
                            "{what}: resize {k:#x} {asked} -> {new} (room {room}): {e:?}"
                        );
                        assert!(!matches!(e, ArenaError::BadFree { .. }), "{what}: {e:?}");
                        m.c.failures += 1;
                        if e == ArenaError::Injected {
                            m.c.injected += 1;
                        }
                    }
                }
            }
            _ => {}
        }
        compare(&a, &m, &mut last, &what);
    }
    // Wind down: everything freed and flushed with a willing source.
    a.set_mtbf(0, 0);
    a.source_mut().release_mode = 0;
    a.source_mut().fail_import = false;
    let keys: Vec<usize> = m.live.keys().copied().collect();
    for k in keys {
        let l = m.live.remove(&k).unwrap();
        match l.handle {
            Some(h) => {
                a.free_handle(h).unwrap();
            }
            None => a.free(Addr(k), Size(l.asked)).unwrap(),
        }
        m.c.frees += 1;
    }
    if !a.flushed().is_zero() {
        m.c.flushes += 1;
    }
    m.unflushed.clear();
    compare(&a, &m, &mut last, &format!("seed {seed}: wound down"));
    let (c, l) = (a.counters(), a.source().log);
    [
        c.imports,
        c.exports,
        l.releases_refused,
        l.releases_stranded,
        c.injected,
        c.failures,
        c.bad_frees,
        c.deferred_frees,
        c.flushes,
        l.import_calls - l.imports_ok,
    ]
}

/// Every path ran somewhere in the seeds.
fn covered(all: &[[u64; 10]]) {
    let names = [
        "imports",
        "exports",
        "refused",
        "stranded",
        "injected",
        "failures",
        "bad_frees",
        "deferred_frees",
        "flushes",
        "failed imports",
    ];
    for (i, n) in names.iter().enumerate() {
        assert!(all.iter().any(|r| r[i] > 0), "no {n} in any seed: {all:?}");
    }
}

#[test]
fn importing_arena_statistics_follow_the_model_q16_parent64() {
    covered(&(1..=12).map(|seed| run(seed, 600, 16, 64)).collect::<Vec<_>>());
}

#[test]
fn importing_arena_statistics_follow_the_model_q64_parent16() {
    covered(&(20..=28).map(|seed| run(seed, 600, 64, 16)).collect::<Vec<_>>());
}

#[test]
fn importing_arena_statistics_follow_the_model_q1_parent4096() {
    covered(&(40..=46).map(|seed| run(seed, 600, 1, 4096)).collect::<Vec<_>>());
}
