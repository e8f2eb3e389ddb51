use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore};
use vmspace::sync::{NoWait, SpinLock, SyncArena, Wait};
use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace::Pages;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Range, Size};

const PAGE: usize = 64;
const TOP: usize = usize::MAX;

/// Zone sets at their extremes (empty, all, zone 63) with the smallest
/// and largest zone shifts: the grant's placement says what the docs
/// say, and `zones_of` never fails on ranges at the ends of the address
/// space.
#[test]
fn zone_sets_at_the_extremes() {
    let mut buf = vec![0u8; 1 << 21];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for shift in [6u32, 12, 63] {
        let mut a =
            VmArena::new(&sim, VmArenaConfig::new(Size(128 * PAGE)).zone_shift(shift)).unwrap();
        assert_eq!(a.zones_of(Range::empty(Addr(0))), ZoneSet::EMPTY);
        assert_eq!(a.zones_of(Range::empty(Addr(TOP))), ZoneSet::EMPTY);
        let _ = a.zones_of(Range::new(Addr(0), Addr(TOP)).unwrap());
        let z = a.zones_of(Range::new(Addr(TOP - 1), Addr(TOP)).unwrap());
        assert_eq!(z, ZoneSet::single(a.zone_of(Addr(TOP - 1))));
        let sets = [ZoneSet::EMPTY, ZoneSet::ALL, ZoneSet::single(63)];
        for prefer in sets {
            for avoid in sets {
                let g =
                    a.alloc(&Request::new(Pages(3), Owner(1)).prefer(prefer).avoid(avoid)).unwrap();
                let zs = a.zones_of(g.range);
                let in_prefer = zs.inter(prefer.complement()).is_empty();
                let clear = zs.inter(avoid).is_empty();
                match g.placement {
                    Placement::Preferred => {
                        assert!(in_prefer && clear, "{shift} {prefer:?} {avoid:?}")
                    }
                    Placement::NotAvoided => {
                        assert!(clear && !in_prefer, "{shift} {prefer:?} {avoid:?}")
                    }
                    Placement::Anywhere => assert!(!clear, "{shift} {prefer:?} {avoid:?}"),
                }
                a.free(g.range, Owner(1)).unwrap();
                a.check().unwrap();
            }
        }
        assert_eq!(a.committed(), Size(0));
    }
}

/// A shared arena's handle and free doors with extreme parts and sizes.
#[test]
fn shared_doors_with_extreme_values() {
    let (mut t, mut h) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("s", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    a.add(Addr((TOP & !15) - 4096), Size(4096)).unwrap();
    let s: SyncArena<SpinLock, NoWait, SliceStore<'_>, NoSource> = SyncArena::new(a);
    let x = s.alloc(Size(4096), Policy::FirstFit, Wait::Forever).unwrap();
    assert!(
        matches!(
            s.alloc(Size(16), Policy::FirstFit, Wait::Forever),
            Err(ArenaError::NoSpace { .. })
        ),
        "no waiter that can sleep: the first result"
    );
    for addr in [0usize, TOP, TOP & !15, x.0] {
        for tag in [0u32, 1, u32::MAX] {
            assert!(s.free_handle_parts(Addr(addr), tag).is_err());
            assert!(s.free_handle_deferred_parts(Addr(addr), tag).is_err());
        }
        for size in [0usize, 1, TOP] {
            assert!(s.free(Addr(addr), Size(size)).is_err());
            assert!(s.free_deferred(Addr(addr), Size(size)).is_err());
        }
    }
    s.check().unwrap();
    s.free_deferred(x, Size(4096)).unwrap();
    assert_eq!(s.flushed(), Size(4096));
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
