//! One arena shared by threads, small sizes served by quantum caches (a
//! per-thread magazine layer over slabs), large ones by the arena itself.
//!
//! `cargo run --example shared_qcache`

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let be = MmapBackend::new();
    let mut arena = Arena::on_pages("shared", Size(16), be, 1 << 16, NoSource)?;
    arena.add(Addr(1 << 40), Size(1 << 30))?;
    // Caches for 1 to 8 quanta (16 to 128 units); their slab records in `slabs`.
    let slabs = PageStore::new(be, Size(1 << 20))?;
    let shared = UserArena::with_quantum_caches(arena, QCacheConfig::new(8, slabs))?;

    std::thread::scope(|s| {
        for t in 0..4u64 {
            let shared = &shared;
            s.spawn(move || {
                let mut cache = CacheHandle::new(shared); // this thread's magazines
                let mut held = Vec::new();
                for i in 0..10_000u64 {
                    let size = Size(16 * (1 + ((i * 7 + t) % 8) as usize));
                    held.push((cache.alloc(size).expect("alloc"), size));
                    if held.len() > 32 {
                        let (a, s) = held.swap_remove(0);
                        cache.free(a, s).expect("free");
                    }
                }
                // A large allocation goes to the arena, under its lock.
                let big = shared.alloc(Size(1 << 20), Policy::BestFit, Wait::No).expect("big");
                shared.free(big, Size(1 << 20)).expect("free big");
                for (a, s) in held {
                    cache.free(a, s).expect("free");
                }
            });
        }
    });
    let q = shared.qcache_stats();
    println!("cache hits {}, misses {}, slabs {}", q.hits, q.misses, q.slabs);
    let slabs_back = shared.reclaim();
    println!(
        "reclaim gave {slabs_back} slabs back; allocated now {}",
        shared.with(|a| a.sizes().allocated)
    );
    shared.check()?;
    Ok(())
}
