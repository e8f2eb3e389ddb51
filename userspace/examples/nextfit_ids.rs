//! Next fit as an ID allocator, for counts: the `arena_next_fit` bench's
//! workload (10,000 live one-unit IDs in a space of 2^22; a pair frees a
//! random live ID and allocates the next one) for a fixed number of pairs.
//! It prints the CPU time and the arena's search steps a pair; under
//! cachegrind, the instructions of a run less those of a run of 0 pairs
//! are the pairs' own.
//!
//! ```sh
//! cargo run --release -p vmspace-user --example nextfit_ids -- 20000000
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/nextfit_ids 1000000
//! ```

use std::time::Instant;

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::{Addr, Size};
use vmspace_user::MmapBackend;

fn main() {
    let live = 10_000usize;
    let pairs: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 20_000_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: nextfit_ids [PAIRS]: {e}");
            std::process::exit(2);
        }
    };
    let mut a: Arena<PageStore<MmapBackend>, NoSource> =
        Arena::on_pages("ids", Size(1), MmapBackend::new(), 4 * live + 1024, NoSource)
            .expect("arena");
    a.add(Addr(1 << 20), Size(1 << 22)).expect("add");
    let mut held: Vec<Addr> =
        (0..live).map(|_| a.alloc(Size(1), Policy::NextFit).expect("alloc")).collect();
    // Xorshift64: the slot each pair frees.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let before = a.counters();
    let t = Instant::now();
    for _ in 0..pairs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % live as u64) as usize;
        a.free(held[i], Size(1)).expect("free");
        held[i] = a.alloc(Size(1), Policy::NextFit).expect("alloc");
    }
    let n = pairs.max(1) as f64;
    let ns = t.elapsed().as_nanos() as f64 / n;
    let steps = (a.counters().search_steps - before.search_steps) as f64 / n;
    println!("{ns:.1} ns CPU time a pair, {steps:.3} search steps a pair, over {pairs} pairs");
}
