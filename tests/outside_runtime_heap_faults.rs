//! An outside reviewer (a language runtime's author) testing a GC heap built
//! the way the README suggests: a vmem arena (tags and hash on pages)
//! importing tracts from a VM arena, both over one simulated backend wrapped
//! in a `FaultInjector`, with another pool allocating tracts directly from
//! the VM arena in between. Every backend call the scenario makes is failed
//! in turn; after each failure the failed call must have changed nothing
//! (the documented exceptions aside), `check()` must pass on both, and the
//! same run repeated at another placement of the buffer must give the same
//! trace.

use std::sync::atomic::{AtomicUsize, Ordering};

use vmspace::arena::{Arena, ArenaError, Constraints, PageStore, Policy, SegmentKinds};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::Pages;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Range, Size};

/// Failed calls whose heap was compared with its state before the call.
static COMPARED: AtomicUsize = AtomicUsize::new(0);

const PAGE: usize = 256;
const TRACTS: usize = 1024;
const Q: usize = 16;

mod outside_common;
use outside_common::Rng;

/// What a failed call must leave as it was.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Snap {
    segments: Vec<(usize, usize, String, usize, bool)>,
    sizes: String,
    va_allocated: usize,
    va_spare: usize,
    /// Committed tracts (table pages may stay mapped, marked stale, when
    /// their unmapping fails: documented).
    va_tracts_committed: usize,
}

type Ops<'a> = FaultInjector<&'a SimBackend<'a>>;

fn snap(heap: &Arena<PageStore<&Ops<'_>>, &mut VmArena<&Ops<'_>>>, base: usize) -> Snap {
    let va = heap.source();
    let tables = (va.table_pages_mapped() + va.bit_pages_mapped()) * PAGE;
    Snap {
        segments: heap
            .walk(SegmentKinds::ALL)
            .map(|s| {
                (
                    s.range.base().0 - base,
                    s.range.size().0,
                    format!("{:?}", s.kind),
                    s.requested.0,
                    s.held,
                )
            })
            .collect(),
        sizes: format!("{:?}", heap.sizes()),
        va_allocated: va.allocated().0,
        va_spare: va.spare().0,
        va_tracts_committed: va.committed().0 - tables,
    }
}

#[derive(Clone, Copy, Debug)]
enum Live {
    ByAddr(Addr, usize),
    ByHandle(vmspace::arena::Handle),
    Pool(Range),
}

/// Run the scenario with the `fail`th backend call failing (0: none).
/// Returns the trace (offsets from the VM arena's base) and the number of
/// eligible backend calls made after arming.
fn scenario(seed: u64, fail: u64, pad: usize) -> (Vec<String>, u64) {
    let _pad = vec![0u8; pad];
    // The same placement modulo 1 MiB whatever the heap gives: alignment
    // constraints are absolute, so only that must not change the run.
    let mut big = vec![0u8; 4 << 20];
    let off = (1usize << 20) - (big.as_ptr() as usize & ((1 << 20) - 1));
    let sim = SimBackend::new(&mut big[off..off + (3 << 20)], PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut va = VmArena::new(
        &fi,
        VmArenaConfig::new(Size(TRACTS * PAGE))
            .zone_shift(12)
            .spare_limit(6)
            .commit_limit(Size(900 * PAGE)),
    )
    .unwrap();
    let base = va.base().0;
    let mut heap = Arena::on_pages("heap", Size(Q), &fi, 600, &mut va).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut live: Vec<Live> = Vec::new();
    let mut trace = Vec::new();
    fi.fail_nth(fail);
    for step in 0..120 {
        let before = snap(&heap, base);
        let injected = fi.injected();
        let op = rng.below(16);
        let (name, result): (String, Result<(), String>) = match op {
            0..=5 => {
                let top = if rng.below(4) == 0 { 600 } else { 40 };
                let size = Q * (1 + rng.below(top) as usize);
                let align = Q << rng.below(9);
                let mut k = Constraints::new(Size(size))
                    .align(Size(align))
                    .policy(Policy::ALL[rng.below(4) as usize]);
                if rng.below(3) == 0 {
                    k = k.phase(Size(Q * rng.below((align / Q) as u64) as usize));
                }
                if rng.below(3) == 0 && size <= 2048 {
                    k = k.nocross(Size(4096));
                }
                let by_handle = rng.below(2) == 0;
                let name = format!("xalloc {size} align {align} handle {by_handle}");
                let r = if by_handle {
                    heap.xalloc_handle(&k).map(|h| {
                        live.push(Live::ByHandle(h));
                        h.addr()
                    })
                } else {
                    heap.xalloc(&k).inspect(|&a| live.push(Live::ByAddr(a, size)))
                };
                (name, r.map(|a| trace.push(format!("{step}: at {}", a.0 - base))).map_err(e))
            }
            6..=9 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let l = live[i];
                let r = match l {
                    Live::ByAddr(a, s) => heap.free(a, Size(s)).map(drop),
                    Live::ByHandle(h) => heap.free_handle(h).map(drop),
                    Live::Pool(r) => heap.source_mut().free(r, Owner(5)).map_err(ArenaError::from),
                };
                if r.is_ok() {
                    live.swap_remove(i);
                }
                (format!("free {}", rel(&l, base)), r.map_err(e))
            }
            10 | 11 => {
                let pages = 1 + rng.below(24) as usize;
                let req = Request::new(Pages(pages), Owner(5)).align(Pages(1 << rng.below(3)));
                let r = heap.source_mut().alloc(&req).map(|g| {
                    live.push(Live::Pool(g.range));
                    trace.push(format!("{step}: pool at {}", g.range.base().0 - base));
                });
                (format!("pool alloc {pages}"), r.map_err(|x| format!("{x:?}")))
            }
            12 if !live.is_empty() => {
                // munmap-like: free a quantum-aligned middle piece.
                let i = rng.below(live.len() as u64) as usize;
                match live[i] {
                    Live::ByAddr(a, s) if s >= 3 * Q => {
                        let r = heap.free_part(a, Size(Q), Size(Q));
                        if r.is_ok() {
                            live[i] = Live::ByAddr(a, Q);
                            live.push(Live::ByAddr(Addr(a.0 + 2 * Q), s - 2 * Q));
                        }
                        (format!("free_part {} {s}", a.0 - base), r.map_err(e))
                    }
                    _ => continue,
                }
            }
            13 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                match live[i] {
                    Live::ByAddr(a, s) => {
                        let new = Q * (1 + rng.below(80) as usize);
                        let r = heap.resize(a, Size(s), Size(new));
                        if r.is_ok() {
                            live[i] = Live::ByAddr(a, new);
                        }
                        (format!("resize {} {s} -> {new}", a.0 - base), r.map_err(e))
                    }
                    _ => continue,
                }
            }
            14 => {
                let r = heap.source_mut().purge_spare();
                trace.push(format!("{step}: purge {r:?}"));
                heap.check().unwrap();
                heap.source().check().unwrap();
                continue;
            }
            _ => continue,
        };
        trace.push(format!("{step}: {name}: {result:?}"));
        let what = format!("seed {seed} fail {fail} step {step} {name}");
        heap.check().unwrap_or_else(|x| panic!("{what}: arena check {x:?}"));
        heap.source().check().unwrap_or_else(|x| panic!("{what}: VM arena check {x:?}"));
        if result.is_err() && fi.injected() > injected {
            assert_eq!(snap(&heap, base), before, "{what}: failed call changed the heap");
            COMPARED.fetch_add(1, Ordering::Relaxed);
        }
    }
    let calls = fi.eligible_calls();
    fi.clear();
    for l in live.drain(..) {
        match l {
            Live::ByAddr(a, s) => heap.free(a, Size(s)).unwrap(),
            Live::ByHandle(h) => drop(heap.free_handle(h).unwrap()),
            Live::Pool(r) => heap.source_mut().free(r, Owner(5)).unwrap(),
        }
    }
    heap.check().unwrap();
    assert_eq!(heap.sizes().allocated, Size(0));
    drop(heap);
    va.purge_spare().unwrap();
    va.check().unwrap();
    assert_eq!(va.allocated(), Size(0), "seed {seed} fail {fail}: tracts left allocated");
    assert_eq!(va.committed(), Size(0), "seed {seed} fail {fail}: pages left committed");
    (trace, calls)
}

fn rel(l: &Live, base: usize) -> String {
    match l {
        Live::ByAddr(a, s) => format!("addr {} size {s}", a.0 - base),
        Live::ByHandle(h) => format!("handle {} tag {}", h.addr().0 - base, h.tag()),
        Live::Pool(r) => format!("pool {} size {}", r.base().0 - base, r.size().0),
    }
}

fn e(x: ArenaError) -> String {
    format!("{x:?}")
}

#[test]
fn every_backend_call_of_a_heap_scenario_fails_cleanly_and_reproducibly() {
    for seed in 1..=3 {
        let (_, calls) = scenario(seed, 0, 0);
        assert!(calls > 20, "the scenario makes backend calls ({calls})");
        for n in 1..=calls {
            let (a, _) = scenario(seed, n, 0);
            let (b, _) = scenario(seed, n, 4096 * 3 + 64);
            assert_eq!(a, b, "seed {seed} fail {n}: a rerun behaved differently");
        }
    }
    assert!(COMPARED.load(Ordering::Relaxed) > 50, "injected failures were seen and checked");
}
