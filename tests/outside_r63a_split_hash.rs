//! Round 63a (outside reviewer): free_part that splits one allocation into
//! thousands (each split hashes a new tail, doubling the address hash many
//! times in the middle of partial frees), on a growing PageStore hash and
//! on a tiny fixed SliceStore hash (long chains, no doubling); then every
//! piece is looked up, resized and freed, check() throughout.

use vmspace::arena::{NoSource, PageStore, SliceStore, Store};
use vmspace::{Addr, Arena, Policy, Size};
use vmspace_user::MmapBackend;

const Q: usize = 16;
const N: usize = 4096;

fn drive<S: Store>(a: &mut Arena<S, NoSource>) {
    a.add(Addr(0x100000), Size(2 * N * Q)).unwrap();
    let x = a.alloc(Size(N * Q - 3), Policy::FirstFit).unwrap();
    // Free the second quantum of each pair, from the front: the tail (the
    // rest) gets a new tag and hash entry each time.
    let mut head = x.0;
    let mut asked = N * Q - 3;
    let mut pieces = vec![];
    while asked > 2 * Q {
        a.free_part(Addr(head), Size(Q), Size(Q)).unwrap();
        pieces.push((head, Q));
        head += 2 * Q;
        asked -= 2 * Q;
        if pieces.len() % 512 == 0 {
            a.check().unwrap();
        }
    }
    pieces.push((head, asked));
    a.check().unwrap();
    assert_eq!(a.live(), pieces.len());
    for &(p, s) in &pieces {
        assert_eq!(a.lookup(Addr(p)).map(|(r, z)| (r.base().0, z.0)), Some((p, s)), "{p:#x}");
    }
    // Grow each piece into the hole after it, then free.
    for &(p, s) in pieces.iter().rev() {
        if s == Q {
            a.resize(Addr(p), Size(s), Size(2 * Q)).unwrap();
            a.free(Addr(p), Size(2 * Q)).unwrap();
        } else {
            a.free(Addr(p), Size(s)).unwrap();
        }
    }
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
    assert_eq!(a.largest_free(), Size(2 * N * Q));
}

#[test]
fn splits_on_a_growing_hash() {
    let s = || PageStore::new(MmapBackend::new(), Size(1 << 22)).unwrap();
    let mut a = Arena::new("g", Size(Q), s(), s(), NoSource).unwrap();
    drive(&mut a);
    let (buckets, fails) = a.hash_stats();
    assert!(buckets >= 1024, "{buckets}");
    assert_eq!(fails, 0);
}

#[test]
fn splits_on_a_tiny_fixed_hash() {
    let mut tb = vec![0u8; 1 << 20];
    let mut hb = vec![0u8; 64];
    let mut a =
        Arena::new("t", Size(Q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    drive(&mut a);
}
