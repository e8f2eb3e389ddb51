//! Round 26: everything at once. A SyncArena with quantum caches imports
//! from a VmSource over the simulator, whose unmaps and protects fail part
//! way at random (stacked injectors, batched and not). Threads allocate and
//! free through CacheHandles and a shared CpuCaches while another thread
//! reclaims (slab give-backs go to the source, refused, put back or
//! stranded). Every object handed out must be mapped read-write and live
//! nowhere else; the arena, caches and source must check after it all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;

use vmspace::arena::{Arena, SegmentKinds, SliceStore};
use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag};
use vmspace::sources::VmSource;
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena, Wait};
use vmspace::vm::Vm;
use vmspace::{Addr, Policy, Size};
use vmspace_shim::sim::{PageState, Placed, SimBackend};
use vmspace_shim::{FaultInjector, FaultShape, Op, Protection};

const PAGE: usize = 256;

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

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

fn rng(r: &mut u64) -> u64 {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *r >> 33
}

fn rw(sim: &SimBackend, a: Addr, size: usize) -> bool {
    (0..size.div_ceil(PAGE)).all(|i| {
        sim.page_state(Addr(a.0 + i * PAGE)) == Some(PageState::Mapped(Protection::ReadWrite))
    })
}

#[test]
fn a_sync_arena_over_a_failing_vm_source_never_hands_out_bad_pages() {
    for (seed, batch) in [(1u64, 0usize), (2, 4), (3, 0), (4, 64)] {
        let mut buf = Placed::new(2 << 20, (seed as usize) * PAGE);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let inner = FaultInjector::new(&sim);
        let outer = FaultInjector::new(&inner);
        let vm = Vm::reserve(&outer, Size(2048 * PAGE), Size(PAGE)).unwrap();
        let (mut t, mut h) = (vec![0u64; 2 << 10], vec![0u64; 512]);
        let mut src =
            VmSource::new(vm, SliceStore::new(bytes(&mut t)), SliceStore::new(bytes(&mut h)))
                .unwrap();
        src.set_flush_threshold(batch).unwrap();
        let (mut tb, mut hb, mut qc) =
            (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 14]);
        let mut mags = vec![0u64; 1 << 14];
        {
            let a = Arena::new(
                "s",
                Size(PAGE),
                SliceStore::new(bytes(&mut tb)),
                SliceStore::new(bytes(&mut hb)),
                &mut src,
            )
            .unwrap();
            let s: SyncArena<SpinLock, NoWait, _, _> = SyncArena::with_quantum_caches(
                a,
                QCacheConfig::new(2, SliceStore::new(bytes(&mut qc))),
            )
            .unwrap();
            let cpu =
                CpuCaches::new(&s, OneSlot(SlotFlag::new()), SliceStore::new(bytes(&mut mags)))
                    .unwrap();
            outer.only(&[Op::Unmap, Op::Map]);
            outer.set_shape(FaultShape::PartWay);
            outer.fail_randomly(seed, 200_000);
            inner.only(&[Op::Protect]);
            inner.set_shape(FaultShape::PartWay);
            inner.fail_randomly(seed ^ 0x55, 300_000);
            let live: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
            let stop = AtomicBool::new(false);
            let (sr, stopr, simr) = (&s, &stop, &sim);
            thread::scope(|sc| {
                let reclaimer = sc.spawn(move || {
                    while !stopr.load(Ordering::Relaxed) {
                        sr.reclaim();
                        sr.check().unwrap_or_else(|e| panic!("seed {seed}: check {e:?}"));
                        thread::yield_now();
                    }
                });
                let mut ws = Vec::new();
                for w in 0..3u64 {
                    let (s, cpu, live) = (&s, &cpu, &live);
                    ws.push(sc.spawn(move || {
                        let mut hd = CacheHandle::new(s);
                        let mut mine: Vec<(Addr, usize)> = Vec::new();
                        let mut r = seed * 100 + w;
                        for i in 0..2500 {
                            let who = format!("seed {seed} batch {batch} w {w} op {i}");
                            let grow = mine.len() < 150 && (i % 600 < 400 || mine.is_empty());
                            if grow {
                                let size = if rng(&mut r) % 8 == 0 {
                                    PAGE * (3 + (rng(&mut r) % 5) as usize)
                                } else {
                                    PAGE * (1 + (rng(&mut r) % 2) as usize)
                                };
                                let got = match w {
                                    0 => hd.alloc(Size(size)),
                                    1 => cpu.alloc(Size(size)),
                                    _ => s.alloc(Size(size), Policy::InstantFit, Wait::No),
                                };
                                if let Ok(x) = got {
                                    assert!(rw(simr, x, size), "{who}: {x:?}+{size:#x} not rw");
                                    let mut m = live.lock().unwrap();
                                    if let Some((&b, &z)) = m.range(..=x.0).next_back() {
                                        assert!(b + z <= x.0, "{who}: {x:?} overlaps {b:#x}");
                                    }
                                    if let Some((&b, _)) = m.range(x.0..).next() {
                                        assert!(x.0 + size <= b, "{who}: {x:?} overlaps {b:#x}");
                                    }
                                    m.insert(x.0, size);
                                    drop(m);
                                    mine.push((x, size));
                                }
                            } else if !mine.is_empty() {
                                let k = rng(&mut r) as usize % mine.len();
                                let (x, size) = mine.swap_remove(k);
                                live.lock().unwrap().remove(&x.0);
                                let res = match w {
                                    0 => hd.free(x, Size(size)),
                                    1 => cpu.free(x, Size(size)),
                                    _ => s.free(x, Size(size)),
                                };
                                res.unwrap_or_else(|e| panic!("{who}: free {e:?}"));
                            }
                            if i % 50 == 0 {
                                hd.flush();
                            }
                        }
                        for (x, size) in mine {
                            live.lock().unwrap().remove(&x.0);
                            match w {
                                0 => hd.free(x, Size(size)).unwrap(),
                                1 => cpu.free(x, Size(size)).unwrap(),
                                _ => s.free(x, Size(size)).unwrap(),
                            }
                        }
                    }));
                }
                let mut p = None;
                for wk in ws {
                    if let Err(e) = wk.join() {
                        p = Some(e);
                    }
                }
                stopr.store(true, Ordering::Relaxed);
                if let Err(e) = reclaimer.join() {
                    p = Some(e);
                }
                if let Some(e) = p {
                    std::panic::resume_unwind(e);
                }
            });
            drop(cpu);
            s.reclaim();
            s.check().unwrap();
            s.with(|a| {
                a.check().unwrap();
                assert_eq!(a.live(), 0);
                a.source().check().unwrap();
                for sp in a.walk(SegmentKinds::SPANS) {
                    assert_eq!(
                        a.source().space().lookup(sp.range.base()),
                        Some((sp.range, sp.range.size()))
                    );
                }
                eprintln!(
                    "seed {seed} batch {batch}: {:?}; part-way {} {}",
                    a.counters(),
                    outer.changed_part_way(),
                    inner.changed_part_way()
                );
            });
            outer.clear();
            inner.clear();
        }
        src.flush();
        src.check().unwrap();
    }
}
