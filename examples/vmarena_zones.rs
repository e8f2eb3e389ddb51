//! A VM arena: one reservation divided into pages ("tracts") for client
//! pools, placed by zone so that two pools' pages do not share stripes.
//!
//! `cargo run --example vmarena_zones`

use vmspace::vmarena::Owner;
use vmspace::vmarena::{Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace::Pages;
use vmspace::Size;
use vmspace_user::MmapBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1 GiB of tracts, zones of 1 MiB stripes (64 zones repeat every 64 MiB).
    let config = VmArenaConfig::new(Size(1 << 30)).zone_shift(20).spare_limit(64);
    let mut arena = VmArena::new(MmapBackend::new(), config)?;
    let (young, old) = (ZoneSet(0x0000_0000_ffff_ffff), ZoneSet(0xffff_ffff_0000_0000));

    // Pool 1 prefers the low 32 zones, pool 2 the high 32 and avoids pool 1's.
    let a = arena.alloc(&Request::new(Pages(64), Owner(1)).prefer(young))?;
    let b = arena.alloc(&Request::new(Pages(64), Owner(2)).prefer(old).avoid(young))?;
    println!("pool 1: {} in zones {:#x}", a.range, arena.zones_of(a.range).0);
    println!("pool 2: {} in zones {:#x}", b.range, arena.zones_of(b.range).0);
    assert!(arena.zones_of(a.range).inter(old).is_empty());
    assert!(arena.zones_of(b.range).inter(young).is_empty());

    // Free pages stay committed as spares (up to 64) for the next request.
    arena.free(a.range, Owner(1))?;
    println!(
        "after freeing pool 1's pages: committed {}, spare {}",
        arena.committed(),
        arena.spare()
    );
    // Another owner's free is refused.
    assert!(arena.free(b.range, Owner(1)).is_err());
    arena.free(b.range, Owner(2))?;
    arena.purge_spare()?;
    println!("after purging spares: committed {}", arena.committed());
    arena.check()?;
    Ok(())
}
