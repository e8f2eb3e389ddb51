//! The arena beside three peer allocators of integer ranges, on the same
//! trace, in the same run: the `vmem` crate (another Rust vmem), the
//! `offset-allocator` crate (a TLSF-style O(1) allocator, Sebastian Aaltonen's
//! design) and the `range-alloc` crate (a sorted free-range vector, best fit).
//!
//! Each allocator holds `live` allocations of random sizes (1 to 255 units,
//! roughly log-uniform); one iteration frees a random live allocation and
//! allocates a new random size in its place, so the live count stays fixed.
//! The trace (which slot, what size) is `vmspace_workload::Churn`,
//! pregenerated and the same for everyone (and for `make bench-counts`).
//! Ours runs twice in the instant-fit group: `vmspace` frees by address
//! and size (vmem's interface, through the address hash), `vmspace-handle`
//! by [`Handle`] (no hash on either side, as `offset-allocator` frees).
//! `no allocator` is the harness alone: the floor under every figure.
//!
//! `arena_next_fit` is an ID allocator, next fit's use: 10,000 live
//! one-unit IDs in a space of 2^22 (Linux's largest `pid_max`); an
//! iteration frees a random live ID and allocates the next one after the
//! rotor, so the rotor laps the space and reuses IDs as late as it can.
//! Freed IDs behind the rotor are where it finds room once it wraps.
//!
//! `arena_fragmented` is allocation only, on a fragmented arena: a million
//! one-unit blocks, every other one freed (half a million one-unit holes),
//! then rounds of 100,000 two-unit allocations, which no hole holds, so
//! each comes from the large free tail. An iteration is one allocation;
//! between rounds (untimed) the round's allocations are freed again, last
//! first, which leaves the arena as fragmented as before. So every
//! allocator runs with its metadata memory in use already: `offset-allocator`
//! writes its whole node array when it is made, and our tag table, which
//! maps and first touches pages as it grows, has grown in the first round
//! (`examples/arena_churn.rs --fragmented-cold` times a first round alone).

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmspace::arena::{Arena, Constraints, Handle, NoSource, PageStore, Policy};
use vmspace::{Addr, Size};
use vmspace_user::MmapBackend;
use vmspace_workload::Churn;

mod peers;
use peers::Tags;

const TRACE: usize = 1 << 16;

/// Pregenerated (slot, size) pairs and the initial sizes.
struct Trace {
    initial: Vec<u32>,
    steps: Vec<(u32, u32)>,
}

fn trace(live: usize) -> Trace {
    let mut c = Churn::new(live);
    let initial = core::iter::from_fn(|| c.initial()).map(|s| s as u32).collect();
    let steps = (0..TRACE).map(|_| c.step()).map(|(i, s)| (i as u32, s as u32)).collect();
    Trace { initial, steps }
}

/// Units of address space for everyone: 2^31. (The `vmem` crate runs out
/// of free segments large enough in tighter spans: with 100 live allocations
/// in 64 Ki units it fails after a few thousand steps with most of the span
/// free, so everyone gets plenty.)
fn space(_live: usize) -> usize {
    1 << 31
}

type OurArena = Arena<PageStore<MmapBackend>, NoSource>;

/// What the caller keeps to free one of our allocations: the address and
/// the size (or, by handle, the handle's tag), 4 bytes each (every address
/// is below 2^32 here), so the harness's own array is as small as for
/// `offset-allocator`'s 8-byte handles and costs everyone the same cache
/// misses.
fn record(addr: Addr, second: u32) -> (u32, u32) {
    (u32::try_from(addr.0).expect("addresses fit in u32"), second)
}

fn ours(live: usize) -> OurArena {
    ours_over(4 * live + 1024, space(live))
}

/// Our arena with room for `tags` boundary tags and one span of `units`.
fn ours_over(tags: usize, units: usize) -> OurArena {
    let mut a =
        Arena::on_pages("bench", Size(1), MmapBackend::new(), tags, NoSource).expect("arena");
    a.add(Addr(1 << 20), Size(units)).unwrap();
    a
}

type Vmem = vmem::Arena<'static, 'static, Tags, std::sync::Mutex<()>>;

fn theirs_vmem(live: usize) -> Vmem {
    vmem_over(space(live))
}

/// A `vmem` crate arena with one span of `units`.
fn vmem_over(units: usize) -> Vmem {
    let a = vmem::Arena::create("bench", 1, None, Tags).unwrap();
    a.add_span(1 << 20, units).unwrap();
    a
}

/// Run the churn benchmark for one allocator: `alloc(size) -> handle`,
/// `free(handle)`. The allocator is built and filled on first use, so
/// benchmarks that a filter skips cost nothing.
fn churn<H: Clone, A>(
    group: &mut Group<'_>,
    name: &str,
    live: usize,
    t: &Trace,
    make: impl FnOnce() -> A,
    alloc: impl Fn(&mut A, u32) -> H,
    free: impl Fn(&mut A, H),
) {
    let mut make = Some(make);
    let mut state: Option<(A, Vec<H>)> = None;
    let mut i = 0usize;
    group.bench_function(BenchmarkId::new(name, live), |b| {
        let (a, held) = state.get_or_insert_with(|| {
            let mut a = (make.take().expect("made once"))();
            let held = t.initial.iter().map(|&s| alloc(&mut a, s)).collect();
            (a, held)
        });
        b.iter(|| {
            let (slot, size) = t.steps[i % TRACE];
            i += 1;
            let slot = slot as usize;
            free(a, held[slot].clone());
            held[slot] = alloc(a, size);
        })
    });
    // Leak the allocator rather than free a million allocations one by one:
    // the `vmem` crate frees in time linear in its live count, which would
    // take longer than the whole benchmark.
    std::mem::forget(state);
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// A group with the settings every case here uses.
fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    g
}

/// Our arena, allocating with `alloc` and freeing with the size it asked.
fn churn_ours(
    g: &mut Group<'_>,
    live: usize,
    t: &Trace,
    alloc: impl Fn(&mut OurArena, u32) -> Addr,
) {
    churn(
        g,
        "vmspace",
        live,
        t,
        || ours(live),
        |a, s| record(alloc(a, s), s),
        |a, (x, s)| a.free(Addr(x as usize), Size(s as usize)).unwrap(),
    );
}

/// Our arena by handle (no address hash): the caller keeps the handle's
/// address and tag in 4 bytes each, rebuilding it to free.
fn churn_ours_by_handle(
    g: &mut Group<'_>,
    live: usize,
    t: &Trace,
    alloc: impl Fn(&mut OurArena, u32) -> Handle,
) {
    churn(
        g,
        "vmspace-handle",
        live,
        t,
        || ours(live),
        |a, s| {
            let h = alloc(a, s);
            record(h.addr(), h.tag())
        },
        |a, (x, tag)| {
            let h = a.handle_from_parts(Addr(x as usize), tag).unwrap();
            a.free_handle(h).unwrap();
        },
    );
}

fn churn_vmem(g: &mut Group<'_>, live: usize, t: &Trace, policy: vmem::AllocPolicy) {
    churn(
        g,
        "vmem",
        live,
        t,
        || theirs_vmem(live),
        |a, s| a.alloc(s as usize, policy).unwrap(),
        |a, x| a.free(x).unwrap(),
    );
}

/// `range-alloc`, best fit (its only policy), aligned to `align` units if
/// asked (its plain `allocate_range` otherwise, which does no modulo).
fn churn_range_alloc(g: &mut Group<'_>, name: &str, live: usize, t: &Trace, align: Option<u32>) {
    churn(
        g,
        name,
        live,
        t,
        || range_alloc::RangeAllocator::new(0..space(live) as u32),
        |a, s| match align {
            Some(n) => a.allocate_range_aligned(s, n).unwrap(),
            None => a.allocate_range(s).unwrap(),
        },
        |a, r| a.free_range(r),
    );
}

fn instant_fit(c: &mut Criterion) {
    let mut g = group(c, "arena_instant_fit");
    for live in [100usize, 10_000, 1_000_000] {
        let t = trace(live);
        churn_ours(&mut g, live, &t, |a, s| a.alloc(Size(s as usize), Policy::InstantFit).unwrap());
        churn_ours_by_handle(&mut g, live, &t, |a, s| {
            a.alloc_handle(Size(s as usize), Policy::InstantFit).unwrap()
        });
        churn(
            &mut g,
            "offset-allocator",
            live,
            &t,
            || {
                offset_allocator::Allocator::<u32>::with_max_allocs(
                    space(live) as u32,
                    (2 * live + 1024) as u32,
                )
            },
            |a, s| a.allocate(s).unwrap(),
            |a, h| a.free(h),
        );
        churn_vmem(&mut g, live, &t, vmem::AllocPolicy::InstantFit);
        // The floor under every figure: the same loop and 8-byte records
        // with no allocator (`alloc` hands out a counter, `free` only reads
        // the record).
        churn(
            &mut g,
            "no allocator",
            live,
            &t,
            || 0u32,
            |n, s| {
                *n = n.wrapping_add(1);
                (*n, s)
            },
            |_, r| {
                std::hint::black_box(r);
            },
        );
        if live <= 10_000 {
            churn_range_alloc(&mut g, "range-alloc", live, &t, None);
        }
    }
    g.finish();
}

fn best_fit(c: &mut Criterion) {
    let mut g = group(c, "arena_best_fit");
    let live = 10_000;
    let t = trace(live);
    churn_ours(&mut g, live, &t, |a, s| a.alloc(Size(s as usize), Policy::BestFit).unwrap());
    churn_vmem(&mut g, live, &t, vmem::AllocPolicy::BestFit);
    churn_range_alloc(&mut g, "range-alloc", live, &t, None);
    g.finish();
}

/// Constrained: 16-unit alignment, never crossing a 4096-unit boundary.
fn constrained(c: &mut Criterion) {
    let mut g = group(c, "arena_xalloc");
    let live = 10_000;
    let t = trace(live);
    churn_ours(&mut g, live, &t, |a, s| {
        a.xalloc(&Constraints::new(Size(s as usize)).align(Size(16)).nocross(Size(4096))).unwrap()
    });
    // No `vmem` figure: its `xalloc` (1.0.0) returns `Empty` within the
    // first few allocations of a 2^31-unit span, constrained or not.
    // range-alloc has alignment but no nocross: its figure is for align only.
    churn_range_alloc(&mut g, "range-alloc (align only)", live, &t, Some(16));
    g.finish();
}

/// One-unit blocks of the fragmented workload.
const BLOCKS: usize = 1_000_000;
/// Two-unit allocations in one round of the fragmented workload.
const ROUND: usize = 100_000;

/// The fragmented workload for one allocator: made, filled with `BLOCKS`
/// one-unit blocks and every other one freed on first use; each iteration
/// allocates two units; a round's allocations are freed (untimed, last
/// first) when it is complete.
fn fragmented_case<H, A>(
    group: &mut Group<'_>,
    name: &str,
    make: impl FnOnce() -> A,
    alloc: impl Fn(&mut A, u32) -> H,
    free: impl Fn(&mut A, H),
) {
    let mut make = Some(make);
    let mut state: Option<(A, Vec<H>)> = None;
    group.bench_function(BenchmarkId::new(name, BLOCKS), |b| {
        let (a, held) = state.get_or_insert_with(|| {
            let mut a = (make.take().expect("made once"))();
            let blocks: Vec<H> = (0..BLOCKS).map(|_| alloc(&mut a, 1)).collect();
            for h in blocks.into_iter().skip(1).step_by(2) {
                free(&mut a, h);
            }
            (a, Vec::with_capacity(ROUND))
        });
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min((ROUND - held.len()) as u64);
                let t = Instant::now();
                for _ in 0..n {
                    held.push(alloc(a, 2));
                }
                timed += t.elapsed();
                left -= n;
                if held.len() == ROUND {
                    while let Some(h) = held.pop() {
                        free(a, h);
                    }
                }
            }
            timed
        })
    });
    std::mem::forget(state);
}

fn fragmented(c: &mut Criterion) {
    let mut g = group(c, "arena_fragmented");
    let tags = 4 * BLOCKS + ROUND + 1024;
    let make = || ours_over(tags, space(BLOCKS));
    fragmented_case(
        &mut g,
        "vmspace",
        make,
        |a, s| record(a.alloc(Size(s as usize), Policy::InstantFit).unwrap(), s),
        |a, (x, s)| a.free(Addr(x as usize), Size(s as usize)).unwrap(),
    );
    fragmented_case(
        &mut g,
        "vmspace-handle",
        make,
        |a, s| {
            let h = a.alloc_handle(Size(s as usize), Policy::InstantFit).unwrap();
            record(h.addr(), h.tag())
        },
        |a, (x, tag)| {
            let h = a.handle_from_parts(Addr(x as usize), tag).unwrap();
            a.free_handle(h).unwrap();
        },
    );
    fragmented_case(
        &mut g,
        "offset-allocator",
        || {
            let max = (2 * BLOCKS + ROUND + 1024) as u32;
            offset_allocator::Allocator::<u32>::with_max_allocs(space(BLOCKS) as u32, max)
        },
        |a, s| a.allocate(s).unwrap(),
        |a, h| a.free(h),
    );
    // No `vmem` crate: it frees in time linear in its live count, and the
    // setup frees half a million blocks.
    fragmented_case(
        &mut g,
        "no allocator",
        || 0u32,
        |n, s| {
            *n = n.wrapping_add(1);
            (*n, s)
        },
        |_, r| {
            std::hint::black_box(r);
        },
    );
    g.finish();
}

/// IDs in the next-fit group.
const IDS: usize = 1 << 22;

/// Next fit as an ID allocator: one-unit IDs, `live` of them in `IDS`.
fn next_fit(c: &mut Criterion) {
    let mut g = group(c, "arena_next_fit");
    let live = 10_000;
    let t = trace(live);
    let t = Trace { initial: vec![1; live], steps: t.steps.iter().map(|&(i, _)| (i, 1)).collect() };
    churn(
        &mut g,
        "vmspace",
        live,
        &t,
        || ours_over(4 * live + 1024, IDS),
        |a, s| record(a.alloc(Size(s as usize), Policy::NextFit).unwrap(), s),
        |a, (x, s)| a.free(Addr(x as usize), Size(s as usize)).unwrap(),
    );
    churn(
        &mut g,
        "vmem",
        live,
        &t,
        || vmem_over(IDS),
        |a, s| a.alloc(s as usize, vmem::AllocPolicy::NextFit).unwrap(),
        |a, x| a.free(x).unwrap(),
    );
    g.finish();
}

criterion_group!(benches, instant_fit, fragmented, best_fit, constrained, next_fit);
criterion_main!(benches);
