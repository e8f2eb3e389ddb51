//! The outside reviewer's model for `outside_qstats.rs`: where every
//! object of a shared arena with quantum caches is (live, in a handle's
//! magazines, in a depot magazine, in its slab), the statistics that
//! follow from it, and their comparison with the arena's.
#![allow(dead_code)]

use vmspace::arena::{Arena, ArenaError, Counters, NoSource, SegmentKinds, Sizes, SliceStore};
use vmspace::qcache::{CpuPin, QCacheConfig, QCacheStats, SlotFlag, DEPOT, OBJECTS, ROUNDS};
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Size};

pub type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;

pub struct Bufs {
    pub tags: Vec<u8>,
    pub hash: Vec<u8>,
    pub qc: Vec<u8>,
    pub mags: Vec<u8>,
}
pub fn bufs() -> Bufs {
    Bufs {
        tags: vec![0; 1 << 18],
        hash: vec![0; 1 << 16],
        qc: vec![0; 1 << 18],
        mags: vec![0; 1 << 16],
    }
}

pub fn shared<'a>(
    b: &'a mut Bufs,
    quantum: usize,
    classes: usize,
    base: usize,
    span: usize,
) -> (Shared<'a>, SliceStore<'a>) {
    let mut a = Arena::new(
        "qs",
        Size(quantum),
        SliceStore::new(&mut b.tags),
        SliceStore::new(&mut b.hash),
        NoSource,
    )
    .unwrap();
    a.add(Addr(base), Size(span)).unwrap();
    let s =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(classes, SliceStore::new(&mut b.qc)))
            .unwrap();
    (s, SliceStore::new(&mut b.mags))
}

/// One slot behind a try-lock, as in the `CpuCaches` doc example.
pub struct OneSlot(pub SlotFlag);
// SAFETY: one slot, handed out only while its flag is taken.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {}
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: the caller pinned slot 0 (the method's contract): `pin`
        // took the flag, and nothing gave it back since.
        unsafe { self.0.release() }
    }
}

pub fn counters(s: &Shared<'_>) -> Counters {
    s.with(|a| a.counters())
}
pub fn sizes(s: &Shared<'_>) -> Sizes {
    s.with(|a| a.sizes())
}

pub fn qstats(s: &Shared<'_>) -> QCacheStats {
    s.qcache_stats()
}

/// A magazine round as the model knows it: the address when the model saw
/// it go in (a free), `None` when it came from the slabs unseen.
pub type Round = Option<usize>;

#[derive(Default, Clone, Debug)]
pub struct Pair {
    pub loaded: Vec<Round>,
    pub previous: Vec<Round>,
}
impl Pair {
    pub fn len(&self) -> usize {
        self.loaded.len() + self.previous.len()
    }
    pub fn rounds(&self) -> impl Iterator<Item = &Round> {
        self.loaded.iter().chain(self.previous.iter())
    }
}

/// Where every object is, the statistics the docs promise, the arena's
/// counters. Pairs 0 and 1 are CacheHandles, pair 2 a one-slot CpuCaches.
pub struct Model {
    pub q: usize,
    pub classes: usize,
    pub pairs: Vec<Vec<Pair>>,
    pub handle_hits: [u64; 2],
    pub cpu_hits: Vec<u64>,
    pub depot: Vec<Vec<Vec<Round>>>,
    pub slabs: Vec<std::collections::BTreeSet<usize>>,
    pub live: std::collections::BTreeMap<usize, (usize, usize)>,
    pub plain: std::collections::BTreeMap<usize, usize>,
    pub st: QCacheStats,
    pub allocs: u64,
    pub frees: u64,
    pub failures: u64,
    pub bad_frees: u64,
    /// Paths taken: hits, depot refills, slab refills, new slabs, failed
    /// imports, magazines to the depot, part-full magazines to the slabs,
    /// full magazines to the slabs (the depot full).
    pub seen: [u64; 8],
}

impl Model {
    pub fn new(q: usize, classes: usize) -> Self {
        Model {
            q,
            classes,
            pairs: vec![vec![Pair::default(); classes]; 3],
            handle_hits: [0; 2],
            cpu_hits: vec![0; classes],
            depot: vec![vec![]; classes],
            slabs: vec![Default::default(); classes],
            live: Default::default(),
            plain: Default::default(),
            st: QCacheStats::default(),
            allocs: 0,
            frees: 0,
            failures: 0,
            bad_frees: 0,
            seen: [0; 8],
        }
    }
    pub fn max(&self) -> usize {
        self.q * self.classes
    }
    pub fn class_of(&self, size: usize) -> Option<usize> {
        (size >= 1 && size <= self.max()).then(|| (size - 1) / self.q)
    }
    pub fn osize(&self, c: usize) -> usize {
        (c + 1) * self.q
    }
    pub fn align(&self, c: usize) -> usize {
        (OBJECTS * self.osize(c)).next_power_of_two()
    }
    pub fn slab_of(&self, c: usize, x: usize) -> usize {
        x & !(self.align(c) - 1)
    }
    pub fn front(&self, c: usize) -> usize {
        self.pairs.iter().map(|p| p[c].len()).sum()
    }
    pub fn live_in(&self, c: usize) -> usize {
        self.live.values().filter(|v| v.0 == c).count()
    }
    pub fn in_slabs(&self, c: usize) -> usize {
        let out = self.live_in(c) + self.front(c) + self.depot[c].len() * ROUNDS;
        let all = self.slabs[c].len() * OBJECTS;
        assert!(out <= all, "class {c}: {out} objects out of {all}");
        all - out
    }
    pub fn unknown_front(&self, c: usize) -> usize {
        self.pairs.iter().flat_map(|p| p[c].rounds()).filter(|r| r.is_none()).count()
    }
    pub fn known_cached(&self, x: usize) -> bool {
        let front = self.pairs.iter().flat_map(|p| p.iter().flat_map(|q| q.rounds()));
        let depot = self.depot.iter().flat_map(|d| d.iter().flatten());
        front.chain(depot).any(|r| *r == Some(x))
    }
    pub fn expected(&self) -> QCacheStats {
        let mut e = self.st;
        e.depot_magazines = self.depot.iter().map(Vec::len).sum();
        e.slabs = self.slabs.iter().map(|s| s.len()).sum();
        e.objects_in_slabs = (0..self.classes).map(|c| self.in_slabs(c)).sum();
        e
    }
    /// Put magazine `m` of class `c` in the depot if full with room, else
    /// into the slabs.
    pub fn give_back(&mut self, c: usize, m: Vec<Round>) {
        if m.len() == ROUNDS && self.depot[c].len() < DEPOT {
            self.depot[c].push(m);
            self.seen[5] += 1;
        } else if m.len() == ROUNDS {
            self.seen[7] += 1;
        } else if !m.is_empty() {
            self.seen[6] += 1;
        }
    }
    pub fn push(&mut self, p: usize, c: usize, x: usize) {
        let pair = &mut self.pairs[p][c];
        if pair.loaded.len() < ROUNDS {
            pair.loaded.push(Some(x));
        } else if pair.previous.is_empty() {
            std::mem::swap(&mut pair.loaded, &mut pair.previous);
            pair.loaded.push(Some(x));
        } else {
            let out = std::mem::take(&mut pair.previous);
            pair.previous = std::mem::replace(&mut pair.loaded, vec![Some(x)]);
            self.give_back(c, out);
        }
    }
    pub fn flush(&mut self, p: usize) {
        if p < 2 {
            self.st.hits += std::mem::take(&mut self.handle_hits[p]);
        } else {
            self.st.hits += self.cpu_hits.iter().sum::<u64>();
            self.cpu_hits.iter_mut().for_each(|h| *h = 0);
        }
        for c in 0..self.classes {
            let pair = std::mem::take(&mut self.pairs[p][c]);
            self.give_back(c, pair.loaded);
            self.give_back(c, pair.previous);
        }
    }
}

/// The actual arena compared with the model after a step.
pub fn compare(s: &Shared<'_>, m: &Model, ctx: &str) {
    s.check().unwrap_or_else(|e| panic!("{ctx}: check: {e:?}"));
    assert_eq!(qstats(s), m.expected(), "{ctx}: qcache_stats (left actual)");
    let c = counters(s);
    assert_eq!(
        (c.allocs, c.frees, c.failures, c.bad_frees),
        (m.allocs, m.frees, m.failures, m.bad_frees),
        "{ctx}: arena counters (allocs, frees, failures, bad_frees)"
    );
    let slab_bytes: usize = (0..m.classes).map(|c| m.slabs[c].len() * OBJECTS * m.osize(c)).sum();
    let plain: usize = m.plain.values().map(|&z| z.div_ceil(m.q) * m.q).sum();
    assert_eq!(sizes(s).allocated, Size(slab_bytes + plain), "{ctx}: sizes().allocated");
    assert_eq!(
        s.with(|a| a.live()),
        m.plain.len() + m.slabs.iter().map(|x| x.len()).sum::<usize>(),
        "{ctx}: live()"
    );
    assert_eq!(s.waiting(), 0, "{ctx}");
    // The held segments are exactly the model's slabs.
    let mut held: Vec<(usize, usize)> = s.with(|a| {
        a.walk(SegmentKinds::ALLOCATED)
            .filter(|g| g.held)
            .map(|g| (g.range.base().0, g.range.size().0))
            .collect()
    });
    held.sort();
    let mut want: Vec<(usize, usize)> = (0..m.classes)
        .flat_map(|c| m.slabs[c].iter().map(move |&b| (b, OBJECTS * m.osize(c))))
        .collect();
    want.sort();
    assert_eq!(held, want, "{ctx}: held segments vs model slabs");
}

#[derive(Clone, Copy, Debug)]
pub enum Expect {
    Hit,
    Depot,
    Slabs(usize),
    NewSlab,
}

impl Model {
    pub fn predict(&self, p: usize, c: usize) -> Expect {
        if self.pairs[p][c].len() > 0 {
            Expect::Hit
        } else if !self.depot[c].is_empty() {
            Expect::Depot
        } else if self.in_slabs(c) > 0 {
            Expect::Slabs(self.in_slabs(c).min(ROUNDS))
        } else {
            Expect::NewSlab
        }
    }

    /// An object `x` of `size` came out of pair `p` as `e` predicted.
    pub fn apply_alloc(&mut self, p: usize, size: usize, x: usize, e: Expect, ctx: &str) {
        let c = self.class_of(size).unwrap();
        assert!(
            !self.live.contains_key(&x) && !self.plain.contains_key(&x),
            "{ctx}: {x:#x} handed out twice"
        );
        self.seen[match e {
            Expect::Hit => 0,
            Expect::Depot => 1,
            Expect::Slabs(_) => 2,
            Expect::NewSlab => 3,
        }] += 1;
        match e {
            Expect::Hit => {
                let pair = &mut self.pairs[p][c];
                if pair.loaded.is_empty() {
                    std::mem::swap(&mut pair.loaded, &mut pair.previous);
                }
                if let Some(a) = pair.loaded.pop().unwrap() {
                    assert_eq!(a, x, "{ctx}: a hit pops the top of the loaded magazine");
                }
                if p < 2 {
                    self.handle_hits[p] += 1;
                } else {
                    self.cpu_hits[c] += 1;
                }
            }
            _ => {
                self.st.misses += 1;
                if p < 2 {
                    self.st.hits += std::mem::take(&mut self.handle_hits[p]);
                } else {
                    self.st.hits += std::mem::take(&mut self.cpu_hits[c]);
                }
                let rest = match e {
                    Expect::Depot => {
                        let d = &mut self.depot[c];
                        let i = d
                            .iter()
                            .rposition(|m| *m.last().unwrap() == Some(x))
                            .or_else(|| d.iter().rposition(|m| m.last().unwrap().is_none()))
                            .unwrap_or_else(|| panic!("{ctx}: {x:#x} is no depot magazine's top"));
                        let mut m = d.remove(i);
                        m.pop();
                        m
                    }
                    Expect::Slabs(k) => {
                        assert!(!self.known_cached(x), "{ctx}: {x:#x} is cached elsewhere");
                        vec![None; k - 1]
                    }
                    Expect::NewSlab => {
                        let base = self.slab_of(c, x);
                        assert!(self.slabs[c].insert(base), "{ctx}: {x:#x} not in a new slab");
                        self.st.slabs_created += 1;
                        self.allocs += 1;
                        vec![None; ROUNDS - 1]
                    }
                    Expect::Hit => unreachable!(),
                };
                assert!(self.pairs[p][c].len() == 0);
                self.pairs[p][c].loaded = rest;
            }
        }
        let base = self.slab_of(c, x);
        assert!(self.slabs[c].contains(&base), "{ctx}: {x:#x} is in no slab of class {c}");
        let off = x - base;
        assert!(
            off % self.osize(c) == 0 && off / self.osize(c) < OBJECTS,
            "{ctx}: {x:#x} no object boundary (class {c}, slab {base:#x}, size {size})"
        );
        self.live.insert(x, (c, size));
    }

    pub fn fold_miss(&mut self, p: usize, c: usize) {
        self.st.misses += 1;
        if p < 2 {
            self.st.hits += std::mem::take(&mut self.handle_hits[p]);
        } else {
            self.st.hits += std::mem::take(&mut self.cpu_hits[c]);
        }
    }

    /// What an allocation through door `door` (0, 1 handles, 2 CpuCaches,
    /// 3 the arena) of `size`, predicted `e` (for cached sizes through a
    /// cache), did: checked against the model, which follows. Where the
    /// arena ran out of space, the reclaim that follows is observed.
    pub fn after_alloc(
        &mut self,
        s: &Shared<'_>,
        door: usize,
        size: usize,
        e: Option<Expect>,
        r: Result<Addr, ArenaError>,
        ctx: &str,
    ) {
        let after = qstats(s);
        let reclaimed = after.reclaims - self.st.reclaims;
        let created = after.slabs_created - self.st.slabs_created;
        assert!(reclaimed <= 1 && created <= 1, "{ctx}: {after:?}");
        if let Some(e) = e {
            let c = self.class_of(size).unwrap();
            if !matches!(e, Expect::NewSlab) || reclaimed == 0 {
                let x = r.unwrap_or_else(|err| panic!("{ctx}: alloc {size} ({e:?}): {err:?}")).0;
                return self.apply_alloc(door, size, x, e, ctx);
            }
            // The slab import failed: a miss, a reclaim, maybe one more
            // import, then the arena.
            self.seen[4] += 1;
            self.failures += 1;
            self.fold_miss(door, c);
            let new = (created == 1).then(|| self.slab_of(c, r.as_ref().unwrap().0));
            let now: Vec<_> = held(s).into_iter().filter(|h| Some(h.0) != new).collect();
            let freed = self.reclaim(&now, ctx);
            if freed > 0 {
                if created == 1 {
                    let x = r.unwrap().0;
                    let base = self.slab_of(c, x);
                    assert!(self.slabs[c].insert(base), "{ctx}");
                    self.st.slabs_created += 1;
                    self.allocs += 1;
                    self.pairs[door][c].loaded = vec![None; ROUNDS - 1];
                    assert!(!self.live.contains_key(&x) && !self.plain.contains_key(&x), "{ctx}");
                    self.live.insert(x, (c, size));
                    return;
                }
                self.failures += 1;
            }
            assert_eq!(created, 0, "{ctx}");
            match r {
                Ok(x) => {
                    assert!(
                        !self.live.contains_key(&x.0) && !self.plain.contains_key(&x.0),
                        "{ctx}"
                    );
                    self.plain.insert(x.0, size);
                    self.allocs += 1;
                }
                Err(ArenaError::NoSpace { .. }) => self.failures += 1,
                Err(err) => panic!("{ctx}: {err:?}"),
            }
            return;
        }
        assert_eq!(created, 0, "{ctx}: a plain allocation made a slab");
        if reclaimed == 1 {
            self.failures += 1;
            let freed = self.reclaim(&held(s), ctx);
            if freed == 0 {
                assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{ctx}: {r:?}");
                return;
            }
        }
        match r {
            Ok(x) => {
                assert!(!self.live.contains_key(&x.0) && !self.plain.contains_key(&x.0), "{ctx}");
                self.plain.insert(x.0, size);
                self.allocs += 1;
            }
            Err(ArenaError::NoSpace { .. }) => self.failures += 1,
            Err(err) => panic!("{ctx}: {err:?}"),
        }
    }

    /// A reclaim ran; `held` is the arena's held segments afterwards.
    pub fn reclaim(&mut self, held: &[(usize, usize)], ctx: &str) -> usize {
        self.st.reclaims += 1;
        let before = self.st.slabs_freed;
        for d in &mut self.depot {
            d.clear();
        }
        for c in 0..self.classes {
            let bytes = OBJECTS * self.osize(c);
            let actual: std::collections::BTreeSet<usize> =
                held.iter().filter(|h| h.1 == bytes).map(|h| h.0).collect();
            assert!(actual.is_subset(&self.slabs[c]), "{ctx}: reclaim made slabs");
            let busy: std::collections::BTreeSet<usize> = self
                .live
                .iter()
                .filter(|(_, v)| v.0 == c)
                .map(|(&x, _)| x)
                .chain(self.pairs.iter().flat_map(|p| p[c].rounds().flatten().copied()))
                .map(|x| self.slab_of(c, x))
                .collect();
            let candidates: std::collections::BTreeSet<usize> =
                self.slabs[c].difference(&busy).copied().collect();
            let removed: std::collections::BTreeSet<usize> =
                self.slabs[c].difference(&actual).copied().collect();
            assert!(removed.is_subset(&candidates), "{ctx}: reclaim freed a slab with objects out");
            if self.unknown_front(c) == 0 {
                assert_eq!(removed, candidates, "{ctx}: class {c}: wholly free slabs stayed");
            }
            self.st.slabs_freed += removed.len() as u64;
            self.frees += removed.len() as u64;
            self.slabs[c] = actual;
        }
        (self.st.slabs_freed - before) as usize
    }
}

pub fn held(s: &Shared<'_>) -> Vec<(usize, usize)> {
    s.with(|a| {
        a.walk(SegmentKinds::ALLOCATED)
            .filter(|g| g.held)
            .map(|g| (g.range.base().0, g.range.size().0))
            .collect()
    })
}
