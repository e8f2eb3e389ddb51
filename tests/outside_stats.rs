//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the arena's statistics, walks and lookups under random
//! sequences of every operation that changes them (alloc, xalloc with
//! constraints, alloc_handle, free, free_handle, free_part, resize, add,
//! extend, free_deferred, free_handle_deferred, flushed, and bad calls of
//! each), compared after every step with a brute-force model: the whole walk
//! (spans, segments, kinds, requested sizes, held), `sizes()`, `live()`,
//! `span_count()`, `unflushed_segments()`, every counter the docs define,
//! `free_histogram()`, `largest_free()`, `fragmentation()`, `lookup`,
//! `lookup_handle` and `contains`, plus the arena's own `check()`.
//! Spans sit low, at the top of the address space, and in a tag store small
//! enough to run out.

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Handle, NoSource, Policy, SliceStore, TAG_BYTES,
};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng;
mod outside_stats_model;
use outside_stats_model::*;

struct Run {
    q: usize,
    rng: Rng,
    /// Handles freed already (stale), for bad frees.
    stale: Vec<Handle>,
    /// Recently freed (addr, asked), for double frees.
    gone: Vec<(usize, usize)>,
    /// The region spans are drawn in.
    lo: usize,
    hi: usize,
}

impl Run {
    fn size(&mut self) -> usize {
        let q = self.q;
        match self.rng.below(20) {
            0 => 0,
            1 => usize::MAX,
            2 => usize::MAX - (q - 1) + (q > 1) as usize, // rounds past the top
            3 => q,
            4 => q - 1 + (q == 1) as usize,
            _ => 1 + self.rng.below(24 * q as u64) as usize,
        }
    }

    fn pick_live(&mut self, m: &Model, held: Option<bool>) -> Option<(usize, Live)> {
        let v: Vec<_> = m
            .live
            .iter()
            .filter(|(_, l)| held.is_none_or(|h| h == l.handle.is_some()))
            .map(|(&a, &l)| (a, l))
            .collect();
        if v.is_empty() {
            None
        } else {
            Some(v[self.rng.below(v.len() as u64) as usize])
        }
    }

    fn addr_in_region(&mut self) -> usize {
        let q = self.q;
        let n = ((self.hi - self.lo) / q) as u64;
        self.lo + q * self.rng.below(n + 1) as usize
    }
}

fn step(a: &mut A<'_>, m: &mut Model, r: &mut Run) -> String {
    let q = r.q;
    let op = r.rng.below(100);
    match op {
        // alloc / alloc_handle
        0..=19 => {
            let size = r.size();
            let pol = Policy::ALL[r.rng.below(4) as usize];
            let held = r.rng.chance(3);
            let res = if held {
                a.alloc_handle(Size(size), pol).map(|h| (h.addr().0, Some(h)))
            } else {
                a.alloc(Size(size), pol).map(|x| (x.0, None))
            };
            let what =
                format!("alloc{} {size:#x} {pol:?} -> {res:?}", if held { "_handle" } else { "" });
            match res {
                Ok((x, h)) => {
                    let rounded = up(size, q).unwrap();
                    assert!(size > 0 && x % q == 0, "{what}");
                    assert!(inside_free(m, x, rounded), "{what}: not in a free segment");
                    let w = Want {
                        size: rounded,
                        align: q,
                        phase: 0,
                        nocross: 0,
                        lo: 0,
                        hi: usize::MAX,
                        exact: None,
                    };
                    if let Some(p) = predict(&w, q, pol, false, m.rotor, &m.free_segments()) {
                        assert_eq!(Some(x), p, "{what}: placement (rotor {:#x})", m.rotor);
                    }
                    if pol == Policy::NextFit {
                        m.rotor = x + rounded;
                    }
                    m.live.insert(x, Live { asked: size, rounded, handle: h });
                    m.c.allocs += 1;
                }
                Err(e) => {
                    m.c.failures += 1;
                    m.c.injected += (e == ArenaError::Injected) as u64;
                    if let (Some(rounded), ArenaError::NoSpace { .. }) =
                        (up(size, q).filter(|_| size > 0), e)
                    {
                        assert!(
                            !m.free_segments().iter().any(|&(s, e)| e - s >= rounded),
                            "{what}: failed with {e:?} but a free segment fits"
                        );
                    }
                }
            }
            what
        }
        // xalloc / xalloc_handle with constraints
        20..=31 => {
            let size =
                if r.rng.chance(8) { r.size() } else { 1 + r.rng.below(8 * q as u64) as usize };
            let align = if r.rng.chance(2) { 0 } else { q << r.rng.below(5) };
            let av = align.max(q);
            let phase = if r.rng.chance(3) { q * r.rng.below((av / q) as u64) as usize } else { 0 };
            let nocross = if r.rng.chance(3) { q << (3 + r.rng.below(4)) } else { 0 };
            let mut c = Constraints::new(Size(size))
                .align(Size(align))
                .phase(Size(phase))
                .nocross(Size(nocross))
                .policy(Policy::ALL[r.rng.below(4) as usize]);
            // Next fit from the top: the docs do not say where the rotor goes.
            let top = c.chosen_policy() != Policy::NextFit && r.rng.chance(3);
            c = c.from_top(top);
            let (mut lo, mut hi, mut exact) = (0, usize::MAX, None);
            if r.rng.chance(3) {
                lo = r.addr_in_region();
                c = c.min_addr(Addr(lo));
            }
            if r.rng.chance(3) {
                hi = r.addr_in_region();
                c = c.max_addr(Addr(hi));
            }
            if r.rng.chance(5) {
                let x = r.addr_in_region();
                exact = Some(x);
                c = c.exact(Addr(x));
            }
            let held = r.rng.chance(3);
            let res = if held {
                a.xalloc_handle(&c).map(|h| (h.addr().0, Some(h)))
            } else {
                a.xalloc(&c).map(|x| (x.0, None))
            };
            let what = format!("xalloc held={held} {c:?} -> {res:?}");
            let rounded = up(size, q).filter(|_| size > 0);
            let w = rounded.map(|s| Want { size: s, align: av, phase, nocross, lo, hi, exact });
            match res {
                Ok((x, h)) => {
                    let w = w.unwrap();
                    let seg = m.free_segments().into_iter().find(|&(s, e)| s <= x && x < e);
                    assert!(seg.is_some_and(|seg| ok_at(&w, x, seg)), "{what}: breaks {w:?}");
                    let pol = c.chosen_policy();
                    if let Some(p) = predict(&w, q, pol, top, m.rotor, &m.free_segments()) {
                        assert_eq!(Some(x), p, "{what}: placement (rotor {:#x})", m.rotor);
                    }
                    if pol == Policy::NextFit {
                        m.rotor = x + w.size;
                    }
                    m.live.insert(x, Live { asked: size, rounded: w.size, handle: h });
                    m.c.allocs += 1;
                }
                Err(e) => {
                    m.c.failures += 1;
                    m.c.injected += (e == ArenaError::Injected) as u64;
                    if matches!(e, ArenaError::NoSpace { .. }) {
                        let w = w.unwrap();
                        assert!(!any_fit(&w, q, &m.free_segments()), "{what}: a fit exists");
                    }
                }
            }
            what
        }
        // free by address: good or bad
        32..=45 => {
            let Some((x, l)) = r.pick_live(m, None) else { return "nothing".into() };
            let (fx, fs, good) = match r.rng.below(8) {
                0 if l.asked < l.rounded => (x, l.asked + 1, false), // same quantum, wrong size
                1 => (x + q, l.asked, false),                        // inside
                2 if !r.gone.is_empty() => {
                    let g = r.gone[r.rng.below(r.gone.len() as u64) as usize];
                    let good =
                        m.live.get(&g.0).is_some_and(|l| l.asked == g.1 && l.handle.is_none());
                    (g.0, g.1, good)
                }
                3 => (x, l.rounded + q, false),
                _ => (x, l.asked, l.handle.is_none()), // by address: bad for a held one
            };
            // Whatever the intent, the model decides (x + q may start another).
            let good = good || m.live.get(&fx).is_some_and(|l| l.asked == fs && l.handle.is_none());
            let deferred = r.rng.chance(4);
            let res = if deferred {
                a.free_deferred(Addr(fx), Size(fs))
            } else {
                a.free(Addr(fx), Size(fs))
            };
            let what = format!("free deferred={deferred} {fx:#x} {fs:#x} (live {l:?}) -> {res:?}");
            if good {
                assert_eq!(res, Ok(()), "{what}");
                let l = m.live.remove(&fx).unwrap();
                m.c.frees += 1;
                if deferred {
                    m.c.deferred_frees += 1;
                    m.unflushed.insert(fx, l.rounded);
                }
                r.gone.push((fx, fs));
            } else {
                assert!(matches!(res, Err(ArenaError::BadFree { .. })), "{what}");
                m.c.bad_frees += 1;
            }
            what
        }
        // free by handle: good or stale
        46..=53 => {
            let (h, good) = if !r.stale.is_empty() && r.rng.chance(3) {
                let h = r.stale[r.rng.below(r.stale.len() as u64) as usize];
                (h, m.live.get(&h.addr().0).is_some_and(|l| l.handle == Some(h)))
            } else if let Some((_, l)) = r.pick_live(m, Some(true)) {
                (l.handle.unwrap(), true)
            } else {
                return "nothing".into();
            };
            let deferred = r.rng.chance(4);
            let res = if deferred { a.free_handle_deferred(h) } else { a.free_handle(h) };
            let what = format!("free_handle deferred={deferred} {h:?} -> {res:?}");
            if good {
                let l = m.live.remove(&h.addr().0).unwrap();
                assert_eq!(res, Ok(Size(l.asked)), "{what}");
                m.c.frees += 1;
                if deferred {
                    m.c.deferred_frees += 1;
                    m.unflushed.insert(h.addr().0, l.rounded);
                }
                r.stale.push(h);
            } else {
                assert!(matches!(res, Err(ArenaError::BadHandle { .. })), "{what}");
                m.c.bad_frees += 1;
            }
            what
        }
        // free_part
        54..=67 => {
            let Some((x, l)) = r.pick_live(m, None) else { return "nothing".into() };
            let qs = l.rounded / q;
            let mut off = q * r.rng.below(qs as u64 + 1) as usize;
            let mut len = match r.rng.below(8) {
                0 | 1 => l.asked - off.min(l.asked), // to the end of the allocation
                2 => 0,
                3 => l.rounded - off,
                4 => usize::MAX, // off + len wraps
                _ => q * (1 + r.rng.below((qs - off / q).max(1) as u64) as usize),
            };
            if r.rng.chance(12) {
                off += 1; // misaligned (q > 1)
            }
            if r.rng.chance(12) {
                len = len.wrapping_add(1);
            }
            let res = a.free_part(Addr(x), Size(off), Size(len));
            let what = format!("free_part {x:#x} {off:#x} {len:#x} (live {l:?}) -> {res:?}");
            let end = off.checked_add(len);
            let good = l.handle.is_none()
                && off % q == 0
                && len > 0
                && end.is_some_and(|e| e <= l.asked && (e % q == 0 || e == l.asked));
            if !good {
                assert!(matches!(res, Err(ArenaError::BadFree { .. })), "{what}");
                m.c.bad_frees += 1;
            } else if off == 0 && len == l.asked {
                assert_eq!(res, Ok(()), "{what}");
                m.live.remove(&x);
                m.c.frees += 1;
            } else {
                match res {
                    Ok(()) => {
                        let end = end.unwrap();
                        let pend = up(end, q).unwrap();
                        m.live.remove(&x);
                        if off > 0 {
                            m.live.insert(x, Live { asked: off, rounded: off, handle: None });
                        }
                        if pend < l.rounded {
                            m.live.insert(
                                x + pend,
                                Live {
                                    asked: l.asked - end,
                                    rounded: l.rounded - pend,
                                    handle: None,
                                },
                            );
                        }
                    }
                    // A failure (`Counters::failures`), the arena unchanged.
                    Err(ArenaError::TagsExhausted) => m.c.failures += 1,
                    Err(ArenaError::Injected) => {
                        m.c.failures += 1;
                        m.c.injected += 1;
                    }
                    Err(e) => panic!("{what}: unexpected {e:?}"),
                }
            }
            what
        }
        // resize
        68..=81 => {
            let Some((x, l)) = r.pick_live(m, None) else { return "nothing".into() };
            let new = match r.rng.below(8) {
                0 => l.asked,
                1 => 0,
                2 => usize::MAX,
                3 => l.rounded, // same quantum, different asked
                4 => 1 + r.rng.below(l.rounded as u64) as usize,
                _ => 1 + r.rng.below(3 * l.rounded as u64 + 4 * q as u64) as usize,
            };
            let old = if r.rng.chance(8) { l.asked + 1 } else { l.asked };
            let res = a.resize(Addr(x), Size(old), Size(new));
            let what = format!("resize {x:#x} {old:#x} -> {new:#x} (live {l:?}) -> {res:?}");
            if l.handle.is_some() || old != l.asked {
                assert!(matches!(res, Err(ArenaError::BadFree { .. })), "{what}");
                m.c.bad_frees += 1;
            } else if new == 0 {
                assert!(matches!(res, Err(ArenaError::InvalidArgument(_))), "{what}");
                m.c.failures += 1;
            } else {
                let span = m.span_of(x);
                // Room right after the allocation: the free segment there.
                let after = x + l.rounded;
                let room = m
                    .free_segments()
                    .into_iter()
                    .find(|&(s, _)| s == after && after < span.1)
                    .map_or(0, |(s, e)| e - s);
                match up(new, q) {
                    // Growing past the top of the address space: no room
                    // after, as at a span's end (`resize`).
                    Some(nr) if x.checked_add(nr).is_none() => {
                        assert!(matches!(res, Err(ArenaError::NoSpace { .. })), "{what}");
                        m.c.failures += 1;
                    }
                    Some(_) if res == Err(ArenaError::TagsExhausted) => {
                        m.c.failures += 1;
                    }
                    // set_mtbf: "the partial frees and resizes that need tags or grow".
                    Some(nr) if res == Err(ArenaError::Injected) && nr != l.rounded => {
                        m.c.failures += 1;
                        m.c.injected += 1;
                    }
                    Some(nr) if nr <= l.rounded + room => {
                        assert_eq!(res, Ok(()), "{what}");
                        m.live.insert(x, Live { asked: new, rounded: nr, handle: None });
                    }
                    Some(_) => {
                        assert!(matches!(res, Err(ArenaError::NoSpace { .. })), "{what}");
                        m.c.failures += 1;
                    }
                    // A new size that cannot be rounded to the quantum.
                    None => {
                        assert_eq!(res, Err(ArenaError::Overflow), "{what}");
                        m.c.failures += 1;
                    }
                }
            }
            what
        }
        // add a span (in a gap, overlapping, misaligned)
        82..=85 => {
            let out = q * r.rng.below(400) as usize;
            let base = match r.rng.below(3) {
                0 => r.addr_in_region(),
                _ if r.hi.checked_add(400 * q).is_some() => r.hi + out,
                _ => r.lo - out,
            } + if r.rng.chance(10) { 1 } else { 0 };
            let size = q * r.rng.below(40) as usize + if r.rng.chance(10) { 1 } else { 0 };
            let res = a.add(Addr(base), Size(size));
            let what = format!("add {base:#x} {size:#x} -> {res:?}");
            let end = base.checked_add(size);
            let good = base % q == 0
                && size % q == 0
                && size > 0
                && end.is_some_and(|e| !m.spans.iter().any(|&(s, t)| base < t && s < e));
            if good && matches!(res, Err(ArenaError::TagsExhausted | ArenaError::Injected)) {
                m.c.failures += 1;
                m.c.injected += (res == Err(ArenaError::Injected)) as u64;
            } else if good {
                assert_eq!(res, Ok(()), "{what}");
                m.spans.push((base, end.unwrap()));
                m.spans.sort();
            } else {
                assert!(res.is_err(), "{what}");
                m.c.failures += 1;
                m.c.injected += (res == Err(ArenaError::Injected)) as u64;
            }
            what
        }
        // extend a span: up, down, filling a gap, or not adjacent
        86..=91 => {
            let i = r.rng.below(m.spans.len() as u64) as usize;
            let (s, e) = m.spans[i];
            let n = q * r.rng.below(20) as usize;
            let (base, size) = match r.rng.below(4) {
                0 => (e, n),
                1 => (s.saturating_sub(n), s - s.saturating_sub(n)),
                2 if i + 1 < m.spans.len() => (e, m.spans[i + 1].0 - e),
                _ => (r.addr_in_region(), n),
            };
            let res = a.extend(Addr(base), Size(size));
            let what = format!("extend {base:#x} {size:#x} -> {res:?}");
            let lim = base.checked_add(size);
            let good = size > 0
                && lim.is_some_and(|lim| {
                    !m.spans.iter().any(|&(s, t)| base < t && s < lim)
                        && m.spans.iter().any(|&(s, t)| t == base || s == lim)
                });
            if good && matches!(res, Err(ArenaError::TagsExhausted | ArenaError::Injected)) {
                m.c.failures += 1;
                m.c.injected += (res == Err(ArenaError::Injected)) as u64;
            } else if good {
                assert_eq!(res, Ok(()), "{what}");
                let lim = lim.unwrap();
                let below = m.spans.iter().position(|&(_, t)| t == base);
                let above = m.spans.iter().position(|&(s, _)| s == lim);
                match (below, above) {
                    (Some(b), Some(c)) => {
                        m.spans[b].1 = m.spans[c].1;
                        m.spans.remove(c);
                    }
                    (Some(b), None) => m.spans[b].1 = lim,
                    (None, Some(c)) => m.spans[c].0 = base,
                    _ => unreachable!(),
                }
            } else {
                assert!(res.is_err(), "{what}");
                m.c.failures += 1;
                m.c.injected += (res == Err(ArenaError::Injected)) as u64;
            }
            what
        }
        // flushed
        _ => {
            let want: usize = m.unflushed.values().sum();
            let got = a.flushed();
            assert_eq!(got.0, want, "flushed");
            if want > 0 {
                m.c.flushes += 1;
            }
            m.unflushed.clear();
            format!("flushed -> {got:?}")
        }
    }
}

fn run(q: usize, seed: u64, steps: usize, top: bool, tag_bytes: usize, mtbf: u32) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut tb, mut hb) = (vec![0u8; tag_bytes], vec![0u8; 1 << 14]);
    let mut a: A<'_> =
        Arena::new("s", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    // The region spans come from: 600 quanta, low or ending at the highest
    // quantum-aligned limit.
    let len = 600 * q;
    let lo = if top { (usize::MAX - (q - 1)) - len } else { q * (1 + rng.below(64) as usize) };
    let hi = lo + len;
    let mut m = Model {
        q,
        spans: Vec::new(),
        live: BTreeMap::new(),
        unflushed: BTreeMap::new(),
        c: Counts::default(),
        rotor: 0,
    };
    // Two or three spans with gaps (sometimes none) between them; the last
    // one ends at the region's end.
    let n = 2 + rng.below(2) as usize;
    let mut cur = lo;
    for i in 0..n {
        cur += q * rng.below(40) as usize;
        let end = if i + 1 == n { hi } else { cur + q * (8 + rng.below(100) as usize) };
        a.add(Addr(cur), Size(end - cur)).unwrap();
        m.spans.push((cur, end));
        cur = end;
    }
    compare(&a, &m, "start");
    a.set_mtbf(seed, mtbf);
    let mut r = Run { q, rng, stale: Vec::new(), gone: Vec::new(), lo, hi };
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..steps {
        let what = step(&mut a, &mut m, &mut r);
        // OUTSIDE_TALLY=1 prints how often each operation succeeded and
        // failed (how each kind of error), to see what a seed set covers.
        if std::env::var("OUTSIDE_TALLY").is_ok() {
            let op = what.split(' ').next().unwrap().to_string();
            let res = what.rsplit("-> ").next().unwrap();
            let res: String =
                res.chars().take_while(|c| c.is_alphanumeric() || *c == '(').collect();
            *tally.entry(format!("{op} {res}")).or_default() += 1;
        }
        compare(&a, &m, &format!("seed {seed} q {q} top {top} step {i}: {what}"));
    }
    if !tally.is_empty() {
        eprintln!("q {q} top {top} tags {tag_bytes}: {tally:?} {:?}", a.counters());
    }
}

const ROOMY: usize = 1 << 16;

#[test]
/// Docs: `Sizes` (allocated + free + unflushed = total), `Counters` (allocs,
/// frees, failures, bad_frees, deferred_frees, flushes), `walk` (address
/// order, markers before their segments, kinds, requested sizes, held),
/// `free_histogram`, `largest_free`, `fragmentation`, `lookup` (held ones
/// not found), `free_part`, `resize`, `extend`: a low region, quantum 16.
fn stats_agree_with_a_model_q16() {
    for seed in 1..=40 {
        run(16, seed, 500, false, ROOMY, 0);
    }
}

#[test]
/// As above with a quantum of 1 (every size its own quantum count).
fn stats_agree_with_a_model_q1() {
    for seed in 100..=130 {
        run(1, seed, 500, false, ROOMY, 0);
    }
}

#[test]
/// As above, spans ending at the highest quantum-aligned limit of the
/// address space: no arithmetic may wrap.
fn stats_agree_with_a_model_at_the_top() {
    for seed in 200..=240 {
        let q = [1, 16, 4096, 1 << 27][seed as usize % 4];
        run(q, seed, 500, true, ROOMY, 0);
    }
}

#[test]
/// As above with a tag store so small it runs out: `free_part` and the
/// allocations fail with `TagsExhausted` and, per `ArenaError`'s docs,
/// leave everything (but the failure counter) as it was.
fn stats_agree_with_a_model_when_tags_run_out() {
    for seed in 300..=330 {
        run(16, seed, 400, seed % 2 == 0, (vmspace::arena::MIN_TAGS + 12) * TAG_BYTES, 0);
    }
}

#[test]
/// `set_mtbf`: alloc, xalloc, add, extend and the partial frees and resizes
/// that need tags or grow fail with `Injected` (counted in `injected`);
/// `ArenaError`: every failing operation leaves the arena as it was; frees
/// are never injected.
fn stats_agree_with_a_model_under_injected_faults() {
    for seed in 400..=430 {
        run(16, seed, 400, seed % 2 == 0, ROOMY, 4);
    }
}
