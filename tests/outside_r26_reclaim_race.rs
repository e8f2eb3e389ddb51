//! Round 26: `Locked::reclaim` now clears a slab's record before the free
//! (and puts it back if the free fails). Threads allocate and free through
//! CacheHandles and a shared CpuCaches (lock-free paths that read slab
//! records) while another thread reclaims and checks; the source refuses
//! or strands some give-backs, so the re-created-span path runs too. No
//! address may ever be live twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;

use vmspace::arena::{Arena, ArenaError, Policy, SegmentKinds, SliceStore, Source};
use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag};
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Range, ShimError, Size};
use vmspace_shim::Op;

struct OneSlot(SlotFlag);

// SAFETY: one slot, taken exclusively by its flag until unpinned.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {
            thread::yield_now();
        }
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: the caller pinned slot 0.
        unsafe { self.0.release() }
    }
}

/// Spans of one slab each; give-backs taken, refused or stranded.
struct Flaky {
    next: usize,
    out: BTreeMap<usize, usize>,
    rng: u64,
}

impl Source for Flaky {
    fn quantum(&self) -> Size {
        Size(1024)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if self.out.len() > 200 {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        let base = self.next.div_ceil(align.0) * align.0;
        self.next = base + size.0 + 4096;
        self.out.insert(base, size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        assert_eq!(self.out.get(&range.base().0), Some(&range.size().0), "release of {range}");
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        match self.rng % 10 {
            0..=2 => Err(ArenaError::Backing(ShimError::Injected { op: Op::Unmap })),
            3 => {
                self.out.remove(&range.base().0);
                Err(ArenaError::Stranded { range, error: ShimError::Injected { op: Op::Unmap } })
            }
            _ => {
                self.out.remove(&range.base().0);
                Ok(())
            }
        }
    }
}

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// Live addresses: inserting one that overlaps another live one fails.
struct LiveSet(Mutex<BTreeMap<usize, usize>>);

impl LiveSet {
    fn add(&self, a: Addr, size: usize, who: &str) {
        let mut m = self.0.lock().unwrap();
        if let Some((&b, &s)) = m.range(..=a.0).next_back() {
            assert!(b + s <= a.0, "{who}: {a:?}+{size:#x} overlaps live {b:#x}+{s:#x}");
        }
        if let Some((&b, &s)) = m.range(a.0..).next() {
            assert!(a.0 + size <= b, "{who}: {a:?}+{size:#x} overlaps live {b:#x}+{s:#x}");
        }
        m.insert(a.0, size);
    }
    fn remove(&self, a: Addr) {
        self.0.lock().unwrap().remove(&a.0);
    }
}

fn rng(r: &mut u64) -> u64 {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *r >> 33
}

#[test]
fn frees_and_allocs_racing_reclaim_never_double_allocate() {
    for round in 0..3u64 {
        let (mut tb, mut hb, mut qc) =
            (vec![0u64; 1 << 14], vec![0u64; 1 << 12], vec![0u64; 1 << 14]);
        let mut mags = vec![0u64; 1 << 14];
        let src = Flaky { next: 0x100_0000, out: BTreeMap::new(), rng: 0x9e37 + round };
        let a = Arena::new(
            "race",
            Size(16),
            SliceStore::new(bytes(&mut tb)),
            SliceStore::new(bytes(&mut hb)),
            src,
        )
        .unwrap();
        let s: SyncArena<SpinLock, NoWait, _, _> = SyncArena::with_quantum_caches(
            a,
            QCacheConfig::new(2, SliceStore::new(bytes(&mut qc))),
        )
        .unwrap();
        let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), SliceStore::new(bytes(&mut mags)))
            .unwrap();
        let live = LiveSet(Mutex::new(BTreeMap::new()));
        let stop = AtomicBool::new(false);
        let (sr, stopr) = (&s, &stop);
        thread::scope(|sc| {
            let reclaimer = sc.spawn(move || {
                while !stopr.load(Ordering::Relaxed) {
                    sr.reclaim();
                    sr.check().unwrap_or_else(|e| panic!("round {round}: check: {e:?}"));
                    thread::yield_now();
                }
            });
            let mut workers = Vec::new();
            for w in 0..4u64 {
                let (s, live, cpu) = (&s, &live, &cpu);
                workers.push(sc.spawn(move || {
                    let mut h = CacheHandle::new(s);
                    let mut mine: Vec<(Addr, usize)> = Vec::new();
                    let mut r = w * 7 + round * 1000 + 1;
                    for i in 0..6000 {
                        let use_cpu = w % 2 == 1;
                        let who = format!("round {round} worker {w} op {i}");
                        if mine.len() < 300
                            && (mine.is_empty() || rng(&mut r) % 3 != 0 || i % 1000 > 700)
                        {
                            let size = 16 * (1 + (rng(&mut r) % 2) as usize);
                            let got =
                                if use_cpu { cpu.alloc(Size(size)) } else { h.alloc(Size(size)) };
                            if let Ok(x) = got {
                                live.add(x, size, &who);
                                mine.push((x, size));
                            }
                        } else if !mine.is_empty() {
                            let k = rng(&mut r) as usize % mine.len();
                            let (x, size) = mine.swap_remove(k);
                            live.remove(x);
                            let r = if use_cpu {
                                cpu.free(x, Size(size))
                            } else {
                                h.free(x, Size(size))
                            };
                            r.unwrap_or_else(|e| panic!("{who}: free {x:?}: {e:?}"));
                        }
                        if i % 31 == 0 {
                            h.flush();
                        }
                        // A big one now and then: NoSpace reclaims inside alloc.
                        if i % 211 == 0 {
                            if let Ok(x) = s.alloc(Size(2048), Policy::InstantFit, Wait::No) {
                                live.add(x, 2048, &who);
                                live.remove(x);
                                s.free(x, Size(2048)).unwrap();
                            }
                        }
                    }
                    for (x, size) in mine {
                        live.remove(x);
                        if w % 2 == 1 {
                            cpu.free(x, Size(size)).unwrap();
                        } else {
                            h.free(x, Size(size)).unwrap();
                        }
                    }
                }));
            }
            let mut panicked = None;
            for wk in workers {
                if let Err(e) = wk.join() {
                    panicked = Some(e);
                }
            }
            stopr.store(true, Ordering::Relaxed);
            if let Err(e) = reclaimer.join() {
                panicked = Some(e);
            }
            if let Some(e) = panicked {
                std::panic::resume_unwind(e);
            }
        });
        drop(cpu);
        s.reclaim();
        s.check().unwrap();
        let st = s.qcache_stats();
        s.with(|a| {
            a.check().unwrap();
            let spans: BTreeMap<usize, usize> =
                a.walk(SegmentKinds::SPANS).map(|x| (x.range.base().0, x.range.size().0)).collect();
            assert_eq!(&spans, &a.source().out, "round {round}: spans != source's ranges");
            assert_eq!(a.live(), st.slabs, "round {round}: live {} slabs {}", a.live(), st.slabs);
            eprintln!("round {round}: {:?} {st:?}", a.counters());
        });
    }
}
