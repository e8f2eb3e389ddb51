//! An arena over plain integers: process IDs handed out next-fit, so a freed
//! ID is reused as late as possible (what vmem does for PIDs).
//!
//! `cargo run --example id_allocator`

use vmspace::arena::{Arena, Constraints, NoSource, Policy};
use vmspace::{Addr, Size};
use vmspace_user::MmapBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // IDs 1..32768, one unit each; the arena's tags live in mapped pages.
    let mut pids = Arena::on_pages("pids", Size(1), MmapBackend::new(), 1 << 16, NoSource)?;
    pids.add(Addr(1), Size(32767))?;

    // init gets exactly 1.
    let init = pids.xalloc(&Constraints::new(Size(1)).exact(Addr(1)))?;
    let mut live: Vec<Addr> =
        (0..5).map(|_| pids.alloc(Size(1), Policy::NextFit)).collect::<Result<_, _>>()?;
    println!("init {}, then {:?}", init.0, live.iter().map(|a| a.0).collect::<Vec<_>>());

    // Free 3, allocate again: next fit moves on to 7 rather than reusing 3.
    let three = live.remove(1);
    pids.free(three, Size(1))?;
    let next = pids.alloc(Size(1), Policy::NextFit)?;
    println!("freed {}, next is {}", three.0, next.0);
    assert_eq!(next.0, 7);

    // A block of 8 aligned IDs (for a thread group, say), from the top.
    let block = pids.xalloc(&Constraints::new(Size(8)).align(Size(8)).from_top(true))?;
    println!("8 aligned IDs from the top: {}..{}", block.0, block.0 + 7);

    // A double free is refused and changes nothing.
    assert!(pids.free(three, Size(1)).is_err());

    let s = pids.sizes();
    println!(
        "in use {}, free {}, {} bad free refused",
        s.allocated.0,
        s.free.0,
        pids.counters().bad_frees
    );
    pids.check()?;
    Ok(())
}
