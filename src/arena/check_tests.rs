//! Unit tests of the arena's invariant walker: each kind of damage is
//! reported (a `check()` that could not fail would make every test that
//! calls it vacuous).

extern crate std;

use std::vec;
use std::vec::Vec;

use vmspace_shim::{Addr, Size};

use super::tests::{slice_arena, TAGS};
use super::*;

#[test]
fn check_catches_corruption() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(1024)).unwrap();
    let x = a.alloc(Size(16), Policy::FirstFit).unwrap();
    a.check().unwrap();
    let i = a.hash.find(&a.tags, x.0, &mut 0).unwrap().tag;
    a.tags.get_mut(i).end += 1;
    assert!(matches!(a.check(), Err(ArenaError::Corrupt { .. })));
    a.tags.get_mut(i).end -= 1;
    a.sizes.free.0 += 1;
    assert!(matches!(a.check(), Err(ArenaError::Corrupt { .. })));
    a.sizes.free.0 -= 1;
    a.check().unwrap();
}

/// `check()`'s held-count and rotor branches (round 24: dropping either
/// failed no test), each named exactly.
#[test]
fn check_names_held_and_rotor_damage() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 4096]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(1024)).unwrap();
    let _h = a.alloc_handle(Size(16), Policy::FirstFit).unwrap();
    a.alloc(Size(8), Policy::NextFit).unwrap();
    a.check().unwrap();
    a.held += 1;
    let e = a.check();
    assert!(
        matches!(
            e,
            Err(ArenaError::Corrupt { what: "held count disagrees with the held segments", .. })
        ),
        "{e:?}"
    );
    a.held -= 1;
    a.check().unwrap();
    let rotor = a.rotor;
    a.rotor = a.tags.capacity() - 1;
    let e = a.check();
    assert!(
        matches!(e, Err(ArenaError::Corrupt { what: "rotor is not on the address list", .. })),
        "{e:?}"
    );
    a.rotor = rotor;
    a.check().unwrap();
}

/// The address hash counts the doublings its buffer cannot hold (round
/// 24: dropping the count failed no test) and keeps working at the size
/// it has.
#[test]
fn hash_counts_the_doublings_it_cannot_make() {
    let (mut tb, mut hb) = (vec![0u8; TAGS], vec![0u8; 256]);
    let mut a = slice_arena(&mut tb, &mut hb, 1);
    a.add(Addr(0), Size(4096)).unwrap();
    let (buckets, failures) = a.hash_stats();
    assert_eq!(failures, 0);
    let all: Vec<Addr> = (0..1000).map(|_| a.alloc(Size(1), Policy::FirstFit).unwrap()).collect();
    let (grown, failures) = a.hash_stats();
    assert!(failures > 0, "buckets {buckets} -> {grown}, no failure counted");
    assert_eq!(grown, 256 / 4, "as many buckets as the buffer holds");
    a.check().unwrap();
    for x in all {
        a.free(x, Size(1)).unwrap();
    }
    a.check().unwrap();
}
