//! Held spans through a parent arena shared by two children (`&RefCell`):
//! the parent's note covers its children, so a sibling dropped after a
//! panic below does not call the bottom source, and the parent gives the
//! spans back at its first free after a call into the bottom returns.

mod outside_r51_common;

use std::cell::RefCell;

use outside_r51_common::*;
use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::Size;

/// A give-back that panics below the parent (through child 1) leaves the
/// parent noted; dropping child 2 then frees its span into the parent,
/// which holds it (no call below); a child's import that makes the parent
/// import again clears the parent's note, and the parent's next free gives
/// back every held span. The books agree throughout.
/// DEFECT (if it fails): the parent calls the bottom source while its last
/// call panicked, or never gives the held spans back.
#[test]
fn a_parent_holds_its_childrens_spans_after_a_panic_below() {
    quiet();
    let src = Bot::new();
    let (mut pt, mut ph) = bufs();
    let parent = RefCell::new(
        Arena::new("p", Size(Q), SliceStore::new(&mut pt), SliceStore::new(&mut ph), src.clone())
            .unwrap(),
    );
    let (mut t1, mut h1) = bufs();
    let (mut t2, mut h2) = bufs();
    let mut c1 =
        Arena::new("c1", Size(16), SliceStore::new(&mut t1), SliceStore::new(&mut h1), &parent)
            .unwrap();
    let mut c2 =
        Arena::new("c2", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &parent)
            .unwrap();
    let x1 = c1.alloc(Size(Q), Policy::InstantFit).unwrap();
    let _x2 = c2.alloc(Size(Q), Policy::InstantFit).unwrap();
    inv(&parent.borrow(), &src, "set up");
    assert_eq!(src.st().out.len(), 2);

    src.st().rel.push_back(Rel::PanicBefore);
    assert!(catch(|| c1.free(x1, Size(Q))).is_err());
    c1.check().unwrap();
    inv(&parent.borrow(), &src, "panicked below");
    assert_eq!(src.st().log.len(), 1);

    // The sibling goes: its span goes to the parent, which holds it.
    drop(c2);
    inv(&parent.borrow(), &src, "sibling dropped");
    assert_eq!(src.st().log.len(), 1, "the parent called the source below after its panic");
    assert_eq!(parent.borrow().sizes().imported, Size(Q), "held in the parent");

    // A child import that makes the parent import: the parent's call
    // returns; the parent's next free gives every held span back.
    let y = c1.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    inv(&parent.borrow(), &src, "imported again");
    c1.free(y, Size(2 * Q)).unwrap();
    c1.check().unwrap();
    inv(&parent.borrow(), &src, "freed");
    assert_eq!(parent.borrow().sizes().imported, Size(0), "held spans left in the parent");
    drop(c1);
    let p = parent.into_inner();
    drop(p);
    let s = src.st();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert!(s.out.keys().all(|b| s.lost.contains_key(b)), "spans left below");
}
