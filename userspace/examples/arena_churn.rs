//! The arena benchmarks' workloads on one allocator, for a fixed number of
//! steps: what `make bench-counts` runs under cachegrind to count
//! instructions, cache misses and mispredicted branches per operation,
//! which on a shared machine are reproducible where times are not.
//!
//! ```sh
//! cargo run --release -p vmspace-user --example arena_churn -- vmspace 10000 100000
//! cargo run --release -p vmspace-user --example arena_churn -- --fragmented vmspace 1000000 100000
//! ```
//!
//! Arguments: the allocator (`vmspace`, `vmspace-handle` for ours freed by
//! handle, `vmspace-xalloc` for ours allocating with the constraints of the
//! `arena_xalloc` bench, `offset-allocator`, `vmem`, or `none` for the
//! harness alone), the
//! live count, and the steps to run after filling: free+alloc pairs of the
//! churn trace (`vmspace_workload::Churn`). With `--fragmented`, the
//! allocation-only workload instead: LIVE one-unit blocks, every other one
//! freed, then STEPS two-unit allocations (which no hole holds), timed
//! after one untimed round of 100,000 of them freed again (as in
//! `benches/arena.rs`); `--fragmented-cold` times the first round. It prints
//! the CPU time per pair or allocation (meaningful outside cachegrind only),
//! and with `CHURN_STATS` set in the environment our arena's tags in use and
//! free segments at the end.

use std::process::ExitCode;

use vmspace::arena::{Arena, Constraints, NoSource, PageStore, Policy};
use vmspace::{Addr, Size};
use vmspace_user::MmapBackend;
use vmspace_workload::Churn;

#[path = "../benches/peers/mod.rs"]
mod peers;
use peers::Tags;

/// Units of address space every allocator gets (as in benches/arena.rs).
const SPACE: usize = 1 << 31;

/// What one allocator needs for the churn: allocate a size, free a handle.
/// Every implementation's `alloc` and `free` is a function of its own
/// (`#[inline(never)]`), so that the harness around them costs every
/// allocator the same, whatever the compiler would inline where.
trait Churner {
    type Handle: Copy;
    /// Diagnostics for `CHURN_STATS`.
    fn stats(&self) {}
    fn alloc(&mut self, size: usize) -> Self::Handle;
    fn free(&mut self, h: Self::Handle);
}

type OurArena = Arena<PageStore<MmapBackend>, NoSource>;

struct Ours(OurArena);

fn our_stats(a: &OurArena) {
    let free = a.walk(vmspace::arena::SegmentKinds::FREE).count();
    eprintln!("tags in use {:?}, free segments {free}, live {}", a.tags_in_use(), a.live());
}

/// The address and the size, 4 bytes each (as in benches/arena.rs): the
/// same 8 bytes a handle as `offset-allocator`'s.
impl Churner for Ours {
    type Handle = (u32, u32);
    fn stats(&self) {
        our_stats(&self.0);
    }
    #[inline(never)]
    fn alloc(&mut self, size: usize) -> (u32, u32) {
        let a = self.0.alloc(Size(size), Policy::InstantFit).expect("alloc");
        (u32::try_from(a.0).expect("addresses fit in u32"), size as u32)
    }
    #[inline(never)]
    fn free(&mut self, (a, s): (u32, u32)) {
        self.0.free(Addr(a as usize), Size(s as usize)).expect("free");
    }
}

/// Ours by handle, no address hash on either side. The caller keeps the
/// handle's address and tag in 4 bytes each (`Arena::handle_from_parts` rebuilds
/// it; the free checks it): the same 8 bytes as the other records.
struct OursByHandle(OurArena);

impl Churner for OursByHandle {
    type Handle = (u32, u32);
    fn stats(&self) {
        our_stats(&self.0);
    }
    #[inline(never)]
    fn alloc(&mut self, size: usize) -> (u32, u32) {
        let h = self.0.alloc_handle(Size(size), Policy::InstantFit).expect("alloc_handle");
        (u32::try_from(h.addr().0).expect("addresses fit in u32"), h.tag())
    }
    #[inline(never)]
    fn free(&mut self, (a, t): (u32, u32)) {
        let h = self.0.handle_from_parts(Addr(a as usize), t).expect("a held tag");
        self.0.free_handle(h).expect("free_handle");
    }
}

struct Offset(offset_allocator::Allocator<u32>);

impl Churner for Offset {
    type Handle = offset_allocator::Allocation<u32>;
    #[inline(never)]
    fn alloc(&mut self, size: usize) -> Self::Handle {
        self.0.allocate(size as u32).expect("allocate")
    }
    #[inline(never)]
    fn free(&mut self, h: Self::Handle) {
        self.0.free(h);
    }
}

struct Vmem(vmem::Arena<'static, 'static, Tags, std::sync::Mutex<()>>);

impl Churner for Vmem {
    type Handle = usize;
    #[inline(never)]
    fn alloc(&mut self, size: usize) -> usize {
        self.0.alloc(size, vmem::AllocPolicy::InstantFit).expect("vmem alloc")
    }
    #[inline(never)]
    fn free(&mut self, h: usize) {
        self.0.free(h).expect("vmem free");
    }
}

/// No allocator: the harness alone (reading the trace, the caller's record
/// of each allocation, the loop), with the same 8-byte records. What it
/// costs at each live count is the floor under every allocator's figure.
struct NoAllocator(u32);

impl Churner for NoAllocator {
    type Handle = (u32, u32);
    #[inline(never)]
    fn alloc(&mut self, size: usize) -> (u32, u32) {
        self.0 = self.0.wrapping_add(1);
        (self.0, size as u32)
    }
    #[inline(never)]
    fn free(&mut self, h: (u32, u32)) {
        std::hint::black_box(h);
    }
}

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn run<C: Churner>(mut c: C, live: usize, steps: usize) -> f64 {
    let mut trace = Churn::new(live);
    let mut held: Vec<C::Handle> =
        std::iter::from_fn(|| trace.initial()).map(|s| c.alloc(s)).collect();
    let pairs: Vec<(usize, usize)> = (0..steps).map(|_| trace.step()).collect();
    let t0 = cpu_ns();
    for &(slot, size) in &pairs {
        c.free(held[slot]);
        held[slot] = c.alloc(size);
    }
    let dt = cpu_ns() - t0;
    finish(c, held, dt, steps)
}

/// Allocations in the untimed round of the fragmented workload (a constant,
/// so that runs of different lengths differ only in the timed ones).
const WARM_ROUND: usize = 100_000;

/// The fragmented workload: `blocks` one-unit allocations, every other
/// one freed, then `steps` two-unit allocations (timed). Unless `cold`,
/// the timed allocations come after one untimed round of [`WARM_ROUND`]
/// of them freed again (last first, so the arena is as fragmented as
/// before), as in the criterion bench: every allocator then has its
/// metadata memory in use already (`offset-allocator` writes its whole node
/// array when it is made; our tag table maps and first touches pages as it
/// grows, and on this machine a first touch costs about 3.5 us a page).
fn run_fragmented<C: Churner>(mut c: C, blocks: usize, steps: usize, cold: bool) -> f64 {
    let mut held: Vec<C::Handle> = (0..blocks).map(|_| c.alloc(1)).collect();
    for h in held.iter().skip(1).step_by(2) {
        c.free(*h);
    }
    held.clear();
    held.reserve(steps);
    if !cold {
        held.extend((0..WARM_ROUND).map(|_| c.alloc(2)));
        while let Some(h) = held.pop() {
            c.free(h);
        }
    }
    let t0 = cpu_ns();
    for _ in 0..steps {
        held.push(c.alloc(2));
    }
    let dt = cpu_ns() - t0;
    finish(c, held, dt, steps)
}

/// Report, then leak rather than free everything one by one (like the
/// criterion bench): the time per step.
/// Ours allocating under constraints (16-unit alignment, never crossing a
/// 4096-unit boundary: the `arena_xalloc` bench's), freeing by address.
struct OursConstrained(OurArena);

impl Churner for OursConstrained {
    type Handle = (u32, u32);
    fn stats(&self) {
        our_stats(&self.0);
    }
    #[inline(never)]
    fn alloc(&mut self, size: usize) -> (u32, u32) {
        let c = Constraints::new(Size(size)).align(Size(16)).nocross(Size(4096));
        let a = self.0.xalloc(&c).expect("xalloc");
        (u32::try_from(a.0).expect("addresses fit in u32"), size as u32)
    }
    #[inline(never)]
    fn free(&mut self, (a, s): (u32, u32)) {
        self.0.free(Addr(a as usize), Size(s as usize)).expect("free");
    }
}

fn finish<C: Churner>(c: C, held: Vec<C::Handle>, dt: u64, steps: usize) -> f64 {
    if std::env::var_os("CHURN_STATS").is_some() {
        c.stats();
    }
    std::mem::forget(c);
    std::mem::forget(held);
    dt as f64 / steps.max(1) as f64
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("--fragmented") => Some(false),
        Some("--fragmented-cold") => Some(true),
        _ => None,
    };
    if mode.is_some() {
        args.remove(0);
    }
    let fragmented = mode.is_some();
    let parsed = match args.as_slice() {
        [who, live, steps] => {
            live.parse::<usize>().ok().zip(steps.parse::<usize>().ok()).map(|p| (who.as_str(), p))
        }
        _ => None,
    };
    let Some((who, (live, steps))) = parsed else {
        eprintln!(
            "usage: arena_churn [--fragmented|--fragmented-cold] \
             vmspace|vmspace-handle|vmspace-xalloc|offset-allocator|vmem|none \
             LIVE STEPS"
        );
        return ExitCode::from(2);
    };
    let arena = || {
        // The fragmented workload keeps every allocation it makes.
        let tags = 4 * live + 1024 + if fragmented { steps.max(WARM_ROUND) } else { 0 };
        let mut a =
            Arena::on_pages("churn", Size(1), MmapBackend::new(), tags, NoSource).expect("arena");
        a.add(Addr(1 << 20), Size(SPACE)).expect("add");
        a
    };
    fn pick<C: Churner>(c: C, mode: Option<bool>, live: usize, steps: usize) -> f64 {
        match mode {
            Some(cold) => run_fragmented(c, live, steps, cold),
            None => run(c, live, steps),
        }
    }
    let ns = match who {
        "vmspace" => pick(Ours(arena()), mode, live, steps),
        "vmspace-handle" => pick(OursByHandle(arena()), mode, live, steps),
        "vmspace-xalloc" => pick(OursConstrained(arena()), mode, live, steps),
        "offset-allocator" => {
            let max = (2 * live + 1024 + if fragmented { steps.max(WARM_ROUND) } else { 0 }) as u32;
            let a = offset_allocator::Allocator::with_max_allocs(SPACE as u32, max);
            pick(Offset(a), mode, live, steps)
        }
        "vmem" => {
            let a = vmem::Arena::create("churn", 1, None, Tags).expect("vmem arena");
            a.add_span(1 << 20, SPACE).expect("vmem span");
            pick(Vmem(a), mode, live, steps)
        }
        "none" => pick(NoAllocator(0), mode, live, steps),
        _ => {
            eprintln!(
                "unknown allocator {who}: vmspace, vmspace-handle, vmspace-xalloc, \
                 offset-allocator, vmem or none"
            );
            return ExitCode::from(2);
        }
    };
    let what = if fragmented { "an allocation" } else { "a pair" };
    println!("{who} {live} live: {ns:.1} ns CPU time {what} over {steps} steps");
    ExitCode::SUCCESS
}
