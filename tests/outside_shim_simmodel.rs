//! Written from the documented contracts by a reviewer outside the project,
//! to break them: `SimBackend` against a page-by-page model, with random
//! calls anywhere in its region (ranges spanning reservations, past their
//! ends, partly mapped, unflushed, double releases): every answer, every
//! page state, every counter of `SimStats` and the documented contents
//! (zero on map, `POISON` on unmap, release and flush, old contents while
//! unflushed, kept across protect).

use vmspace_shim::sim::{PageState, SimBackend, POISON};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};
use vmspace_workload::Rng;

const PAGE: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum M {
    Free,
    Reserved,
    Unflushed,
    Mapped(Protection),
}

struct Model {
    pages: Vec<M>,
    start: Vec<bool>,
    /// The byte each page's first and last bytes should hold, when known.
    content: Vec<Option<u8>>,
    calls: [u64; 5],
    refused: [u64; 5],
    mapped_total: u64,
    flushes: u64,
}

impl Model {
    /// The reservation check every call makes: inside one reservation.
    fn one_reservation(&self, f: usize, l: usize) -> bool {
        l <= self.pages.len()
            && (f..l).all(|i| self.pages[i] != M::Free)
            && (f + 1..l).all(|i| !self.start[i])
    }
}

fn bytes(sim: &SimBackend<'_>, i: usize) -> (u8, u8) {
    let a = sim.region().base().0 + i * PAGE;
    // SAFETY: the region lies in the buffer the sim borrows; reading it is
    // what the sim's docs invite ("so stale reads show").
    unsafe { ((a as *const u8).read_volatile(), ((a + PAGE - 1) as *const u8).read_volatile()) }
}

#[test]
fn sim_matches_a_page_model_under_random_calls() {
    let mut seen = std::collections::HashMap::new();
    for seed in 1..=6u64 {
        let mut buf = vec![0u8; 140 * PAGE];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let n = sim.region().size().0 / PAGE;
        let mut m = Model {
            pages: vec![M::Free; n],
            start: vec![false; n],
            content: vec![None; n],
            calls: [0; 5],
            refused: [0; 5],
            mapped_total: 0,
            flushes: 0,
        };
        let mut rng = Rng::new(seed);
        let base = sim.region().base().0;
        let rng_range = |rng: &mut Rng| {
            let f = rng.below(n + 2);
            let l = rng.between(f, (f + 12).min(n + 3));
            (f, l)
        };
        for step in 0..3000 {
            let what = format!("seed {seed} step {step}");
            let k = rng.below(100);
            if k < 12 {
                let size = rng.between(1, 10);
                let align = 1usize << rng.below(6);
                m.calls[Op::Reserve as usize] += 1;
                match sim.reserve(Size(size * PAGE), Size(align * PAGE)) {
                    Ok(r) => {
                        let f = (r.base().0 - base) / PAGE;
                        assert!(r.base().is_aligned(Size(align * PAGE)), "{what}");
                        assert_eq!(r.size().0, size * PAGE);
                        assert!((f..f + size).all(|i| m.pages[i] == M::Free), "{what}: overlap");
                        for i in f..f + size {
                            m.pages[i] = M::Reserved;
                            m.start[i] = i == f;
                        }
                    }
                    Err(ShimError::OutOfAddressSpace { .. }) => {
                        m.refused[Op::Reserve as usize] += 1;
                        // "no room": no aligned free run exists.
                        let room = (0..n).any(|f| {
                            (base + f * PAGE) % (align * PAGE) == 0
                                && f + size <= n
                                && (f..f + size).all(|i| m.pages[i] == M::Free)
                        });
                        assert!(!room, "{what}: refused {size} pages aligned {align} with room");
                    }
                    Err(e) => panic!("{what}: {e}"),
                }
                continue;
            }
            if k < 16 {
                let pending = m.pages.iter().filter(|&&p| p == M::Unflushed).count();
                assert_eq!(sim.flush(), pending, "{what}");
                if pending > 0 {
                    m.flushes += 1;
                }
                for i in 0..n {
                    if m.pages[i] == M::Unflushed {
                        m.pages[i] = M::Reserved;
                        m.content[i] = Some(POISON);
                    }
                }
                continue;
            }
            if k < 22 {
                // Write to a mapped read-write page.
                let i = rng.below(n);
                if m.pages[i] == M::Mapped(Protection::ReadWrite) {
                    let v = rng.between(1, 200) as u8;
                    let a = base + i * PAGE;
                    // SAFETY: mapped read-write by the sim.
                    unsafe {
                        (a as *mut u8).write_volatile(v);
                        ((a + PAGE - 1) as *mut u8).write_volatile(v);
                    }
                    m.content[i] = Some(v);
                }
                continue;
            }
            let (f, l) = {
                let starts: Vec<usize> =
                    (0..n).filter(|&i| m.start[i] && m.pages[i] != M::Free).collect();
                if !starts.is_empty() && rng.chance(750) {
                    let s = starts[rng.below(starts.len())];
                    let mut e = s + 1;
                    while e < n && m.pages[e] != M::Free && !m.start[e] {
                        e += 1;
                    }
                    let f = rng.between(s, e - 1);
                    (f, rng.between(f + 1, e))
                } else {
                    rng_range(&mut rng)
                }
            };
            let r = Range::new(Addr(base + f * PAGE), Addr(base + l * PAGE)).unwrap();
            let empty = f == l;
            let inside = !empty && m.one_reservation(f, l.min(n)) && l <= n;
            let span = if inside { &m.pages[f..l] } else { &[][..] };
            let (op, res) = match k {
                22..=47 => {
                    // SAFETY: the sim checks every contract.
                    let res = unsafe { sim.map(r) };
                    let want = if empty {
                        Err("invalid")
                    } else if !inside {
                        Err("notreserved")
                    } else if span.iter().any(|p| matches!(p, M::Mapped(_))) {
                        Err("already")
                    } else if span.contains(&M::Unflushed) {
                        Err("unflushed")
                    } else {
                        Ok(())
                    };
                    if want.is_ok() {
                        for i in f..l {
                            m.pages[i] = M::Mapped(Protection::ReadWrite);
                            m.content[i] = Some(0);
                        }
                        m.mapped_total += (l - f) as u64;
                    }
                    (Op::Map, (res, want))
                }
                48..=73 => {
                    let deferred = rng.chance(400);
                    // SAFETY: the sim checks every contract.
                    let res = unsafe {
                        if deferred {
                            sim.unmap_deferred(r)
                        } else {
                            sim.unmap(r)
                        }
                    };
                    let want = if empty {
                        Err("invalid")
                    } else if !inside {
                        Err("notreserved")
                    } else if !span.iter().all(|p| matches!(p, M::Mapped(_))) {
                        Err("notmapped")
                    } else {
                        Ok(())
                    };
                    if want.is_ok() {
                        for i in f..l {
                            m.pages[i] = if deferred { M::Unflushed } else { M::Reserved };
                            if !deferred {
                                m.content[i] = Some(POISON);
                            }
                        }
                    }
                    (Op::Unmap, (res, want))
                }
                74..=94 => {
                    let prot =
                        [Protection::None, Protection::Read, Protection::ReadWrite][rng.below(3)];
                    // SAFETY: the sim checks every contract.
                    let res = unsafe { sim.protect(r, prot) };
                    let want = if empty {
                        Err("invalid")
                    } else if !inside {
                        Err("notreserved")
                    } else if !span.iter().all(|p| matches!(p, M::Mapped(_))) {
                        Err("notmapped")
                    } else {
                        Ok(())
                    };
                    if want.is_ok() {
                        for i in f..l {
                            m.pages[i] = M::Mapped(prot);
                        }
                    }
                    (Op::Protect, (res, want))
                }
                _ => {
                    // Release: exactly one reservation, else refused. Often
                    // aim at a real reservation (and sometimes twice).
                    let (f, l, r) = if rng.chance(700) {
                        match (0..n)
                            .filter(|&i| m.start[i] && m.pages[i] != M::Free)
                            .nth(rng.below(4))
                        {
                            Some(s) => {
                                let mut e = s + 1;
                                while e < n && m.pages[e] != M::Free && !m.start[e] {
                                    e += 1;
                                }
                                (
                                    s,
                                    e,
                                    Range::new(Addr(base + s * PAGE), Addr(base + e * PAGE))
                                        .unwrap(),
                                )
                            }
                            None => (f, l, r),
                        }
                    } else {
                        (f, l, r)
                    };
                    let whole = f < l
                        && l <= n
                        && m.start[f]
                        && m.pages[f] != M::Free
                        && m.one_reservation(f, l)
                        && (l == n || m.pages[l] == M::Free || m.start[l]);
                    // SAFETY: the sim checks every contract.
                    let res = unsafe { sim.release(r) };
                    let want = if f == l {
                        Err("invalid")
                    } else if whole {
                        Ok(())
                    } else {
                        Err("notreserved")
                    };
                    if whole {
                        for i in f..l {
                            m.pages[i] = M::Free;
                            m.start[i] = false;
                            m.content[i] = Some(POISON);
                        }
                    }
                    (Op::Release, (res, want))
                }
            };
            let (res, want) = res;
            m.calls[op as usize] += 1;
            let got = match res {
                Ok(()) => Ok(()),
                Err(ShimError::InvalidArgument(_)) => Err("invalid"),
                Err(ShimError::NotReserved(x)) if x == r || op == Op::Release => Err("notreserved"),
                Err(ShimError::AlreadyMapped(x)) if x == r => Err("already"),
                Err(ShimError::Unflushed(x)) if x == r => Err("unflushed"),
                Err(ShimError::NotMapped(x)) if x == r => Err("notmapped"),
                Err(e) => panic!("{what}: {op:?} {r:?}: {e:?}"),
            };
            assert_eq!(got, want, "{what}: {op:?} of pages [{f}, {l})");
            *seen.entry(format!("{op:?} {got:?}")).or_insert(0usize) += 1;
            if got.is_err() {
                m.refused[op as usize] += 1;
            }
            // Every page state, contents, counters.
            for i in 0..n {
                let st = sim.page_state(Addr(base + i * PAGE)).unwrap();
                let want = match m.pages[i] {
                    M::Free => PageState::Free,
                    M::Reserved => PageState::Reserved,
                    M::Unflushed => PageState::Unflushed,
                    M::Mapped(p) => PageState::Mapped(p),
                };
                assert_eq!(st, want, "{what}: page {i}");
                if let Some(v) = m.content[i] {
                    assert_eq!(
                        bytes(&sim, i),
                        (v, v),
                        "{what}: contents of page {i} ({:?})",
                        m.pages[i]
                    );
                }
            }
            let s = sim.stats();
            assert_eq!(s.calls, m.calls, "{what}: calls");
            assert_eq!(s.refused, m.refused, "{what}: refused");
            assert_eq!(
                s.mapped_pages,
                m.pages.iter().filter(|p| matches!(p, M::Mapped(_))).count()
            );
            assert_eq!(s.unflushed_pages, m.pages.iter().filter(|&&p| p == M::Unflushed).count());
            assert_eq!(s.reserved_pages, m.pages.iter().filter(|&&p| p != M::Free).count());
            assert_eq!(
                s.reservations,
                (0..n).filter(|&i| m.start[i] && m.pages[i] != M::Free).count()
            );
            assert_eq!(s.pages_mapped_total, m.mapped_total);
            assert_eq!(s.flushes, m.flushes);
            assert_eq!(sim.unflushed_pages(), s.unflushed_pages);
        }
    }
    // Every outcome was reached, or the test proves little.
    for k in [
        "Map Ok(())",
        "Map Err(\"already\")",
        "Map Err(\"unflushed\")",
        "Map Err(\"notreserved\")",
        "Unmap Ok(())",
        "Unmap Err(\"notmapped\")",
        "Protect Ok(())",
        "Protect Err(\"notmapped\")",
        "Release Ok(())",
        "Release Err(\"notreserved\")",
        "Map Err(\"invalid\")",
    ] {
        assert!(seen.get(k).copied().unwrap_or(0) > 0, "{k} never happened: {seen:?}");
    }
}
