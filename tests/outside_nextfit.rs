//! Written from the documented contracts by a reviewer outside the project,
//! to break them: next fit must not hand back the address it
//! just freed while room remains past it ("addresses are reused as late as
//! possible (process IDs, catching use after free)", `Policy::NextFit`).

use vmspace::arena::{Arena, NoSource, Policy, SliceStore};
use vmspace::{Addr, Size};

#[test]
fn next_fit_does_not_reuse_the_address_just_freed() {
    let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("pids", Size(1), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    a.add(Addr(1000), Size(1000)).unwrap();
    let p = a.alloc(Size(1), Policy::NextFit).unwrap();
    assert_eq!(p, Addr(1000));
    a.free(p, Size(1)).unwrap();
    let q = a.alloc(Size(1), Policy::NextFit).unwrap();
    assert_ne!(q, p, "pid {} reused at once with 999 never used", p.0);
}

#[test]
fn next_fit_after_a_live_neighbour() {
    let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("pids", Size(1), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    a.add(Addr(1000), Size(1000)).unwrap();
    let ids: Vec<Addr> = (0..5).map(|_| a.alloc(Size(1), Policy::NextFit).unwrap()).collect();
    assert_eq!(ids[4], Addr(1004));
    a.free(ids[4], Size(1)).unwrap(); // the rotor's allocation, beside free room
    let q = a.alloc(Size(1), Policy::NextFit).unwrap();
    assert_eq!(q, Addr(1005), "next fit went back to {}", q.0);
}
