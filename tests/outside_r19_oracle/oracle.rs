//! The oracle: constraints as plain numbers, the free segments, and every
//! legal placement with the one each policy must choose.

use super::*;

pub(crate) type A<'a> = Arena<SliceStore<'a>, NoSource>;

pub(crate) fn bufs() -> (Vec<u8>, Vec<u8>) {
    (vec![0u8; 1 << 16], vec![0u8; 1 << 14])
}

pub(crate) fn arena<'a>(t: &'a mut [u8], h: &'a mut [u8], q: usize) -> A<'a> {
    Arena::new("oracle", Size(q), SliceStore::new(t), SliceStore::new(h), NoSource).unwrap()
}

pub(crate) fn up(x: usize, q: usize) -> usize {
    x.div_ceil(q) * q
}

/// Constraints as plain numbers (already valid: align a power of two or 0,
/// phase a multiple of the quantum below the alignment, nocross a power of
/// two at least the quantum and at least size + phase % nocross).
#[derive(Clone, Copy, Debug)]
pub(crate) struct C {
    pub(crate) size: usize,
    pub(crate) align: usize,
    pub(crate) phase: usize,
    pub(crate) nocross: usize,
    pub(crate) min: Option<usize>,
    pub(crate) max: Option<usize>,
    pub(crate) exact: Option<usize>,
    pub(crate) policy: Policy,
    pub(crate) top: bool,
}

impl C {
    pub(crate) fn to_constraints(self) -> Constraints {
        let mut c = Constraints::new(Size(self.size))
            .align(Size(self.align))
            .phase(Size(self.phase))
            .nocross(Size(self.nocross))
            .policy(self.policy)
            .from_top(self.top);
        if let Some(m) = self.min {
            c = c.min_addr(Addr(m));
        }
        if let Some(m) = self.max {
            c = c.max_addr(Addr(m));
        }
        if let Some(e) = self.exact {
            c = c.exact(Addr(e));
        }
        c
    }

    /// Whether `[t, t + rounded)` meets every constraint (segments aside).
    pub(crate) fn ok_at(&self, t: usize, q: usize) -> bool {
        let r = up(self.size, q);
        let al = self.align.max(q);
        t % q == 0
            && t % al == self.phase
            && self.min.is_none_or(|m| t >= m)
            && self.max.is_none_or(|m| t + r <= m)
            && self.exact.is_none_or(|e| t == e)
            && (self.nocross == 0 || t / self.nocross == (t + r - 1) / self.nocross)
    }

    /// Every placement inside the free segment `[s, e)`.
    pub(crate) fn placements(&self, s: usize, e: usize, q: usize) -> Vec<usize> {
        let r = up(self.size, q);
        let mut v = Vec::new();
        let mut t = s;
        while t.checked_add(r).is_some_and(|x| x <= e) {
            if self.ok_at(t, q) {
                v.push(t);
            }
            t += q;
        }
        v
    }
}

/// The free list of a segment of `x` quanta (64-bit: exact lists below 32
/// quanta, then one per power of two, the last taking the rest).
pub(crate) fn list_of(x: usize) -> usize {
    if x < 32 {
        x - 1
    } else {
        (x.ilog2() as usize + 26).min(63)
    }
}

/// The first list all of whose members hold `x` quanta (64: none).
pub(crate) fn instant_list(x: usize) -> usize {
    if x < 32 {
        x - 1
    } else {
        (x.next_power_of_two().ilog2() as usize + 26).min(64)
    }
}

pub(crate) fn free_segments(a: &A<'_>) -> Vec<(usize, usize)> {
    a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect()
}

/// What the docs say the policy picks, if it is determined: `Some(addr)`;
/// `None` when any fitting placement at the extreme of its segment will do.
/// Also returns whether any placement exists at all, and the set of
/// acceptable (segment) answers for best fit.
pub(crate) struct Oracle {
    pub(crate) any: bool,
    /// Exact expected address (first fit, next fit).
    pub(crate) exact: Option<usize>,
    /// For best fit: the smallest size among segments with a placement.
    pub(crate) best_size: Option<usize>,
}

pub(crate) fn extreme(pl: &[usize], top: bool) -> usize {
    if top {
        *pl.last().unwrap()
    } else {
        pl[0]
    }
}

pub(crate) fn oracle(segs: &[(usize, usize)], c: &C, q: usize, rotor: usize) -> Oracle {
    let per: Vec<((usize, usize), Vec<usize>)> = segs
        .iter()
        .map(|&(s, e)| ((s, e), c.placements(s, e, q)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let any = !per.is_empty();
    let mut o = Oracle { any, exact: None, best_size: None };
    if !any {
        return o;
    }
    match c.policy {
        Policy::FirstFit => {
            let (_, pl) = if c.top { per.last().unwrap() } else { &per[0] };
            o.exact = Some(extreme(pl, c.top));
        }
        Policy::BestFit => {
            o.best_size = per.iter().map(|((s, e), _)| e - s).min();
        }
        Policy::NextFit => {
            // The first segment with a placement at or after the rotor;
            // else wrap round to the lowest.
            let after: Vec<(usize, Vec<usize>)> = per
                .iter()
                .map(|(_, pl)| pl.iter().copied().filter(|&t| t >= rotor).collect::<Vec<_>>())
                .enumerate()
                .filter(|(_, p)| !p.is_empty())
                .collect();
            o.exact = Some(match after.first() {
                Some((_, pl)) => extreme(pl, c.top),
                None => extreme(&per[0].1, c.top),
            });
        }
        Policy::InstantFit => {}
    }
    o
}
