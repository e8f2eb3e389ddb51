//! Round 62b (outside reviewer): `Arena::into_source` when the source
//! refuses some spans and takes others, and what a refused teardown leaves.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use vmspace::arena::{NoSource, PageStore, Source};
use vmspace::{Addr, Arena, ArenaError, Policy, Range, Size};
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;

fn mstore() -> MStore {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}

const Q: usize = 1 << 16;

#[derive(Default)]
struct Books {
    next: usize,
    out: BTreeSet<usize>,
    refuse: BTreeSet<usize>,
    releases: usize,
}

/// Imports fresh ranges; refuses (as busy) the give-back of bases listed.
#[derive(Clone)]
struct Scripted(Rc<RefCell<Books>>);

impl Source for Scripted {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let mut b = self.0.borrow_mut();
        let base = (1 << 32) + b.next;
        b.next += size.0 + Q; // a gap: no two imports adjacent
        b.out.insert(base);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        let mut b = self.0.borrow_mut();
        b.releases += 1;
        if b.refuse.contains(&range.base().0) {
            return Err(ArenaError::SourceBusy);
        }
        assert!(b.out.remove(&range.base().0), "a give-back of what was imported");
        Ok(())
    }
}

/// src/arena/teardown.rs:44-49: "Spans given back before one is refused
/// stay given back (the arena comes back without them ...)"; the refused
/// span "stays in the arena, free"; the error is `InUse { what: "imported
/// spans not given back", size }` with what is left imported
/// (teardown.rs:54-58); and the next `into_source` offers the refused span
/// again ("spans the source refused before are offered again",
/// CHANGELOG.md).
#[test]
fn a_refused_span_keeps_the_arena_the_others_go_back() {
    let books = Rc::new(RefCell::new(Books::default()));
    let mut a = Arena::new("c", Size(64), mstore(), mstore(), Scripted(books.clone())).unwrap();
    let xs: Vec<Addr> = (0..3).map(|_| a.alloc(Size(Q), Policy::InstantFit).unwrap()).collect();
    assert_eq!(books.borrow().out.len(), 3, "three imports");
    let busy = *books.borrow().out.iter().nth(1).unwrap();
    books.borrow_mut().refuse.insert(busy);
    for x in &xs {
        a.free(*x, Size(Q)).unwrap();
    }
    // The free of the busy one was refused: it stays, free.
    assert_eq!(a.sizes().imported, Size(Q));
    assert_eq!(books.borrow().out.len(), 1);
    let releases = books.borrow().releases;
    let r = a.into_source().err().expect("the source refuses the span");
    assert_eq!(
        r.error(),
        ArenaError::InUse { what: "imported spans not given back", size: Size(Q) }
    );
    assert!(books.borrow().releases > releases, "into_source offered the refused span again");
    let mut a = r.into_inner();
    assert_eq!((a.sizes().imported, a.sizes().free, a.live()), (Size(Q), Size(Q), 0));
    a.check().unwrap();
    // Free in the arena: allocatable without an import.
    let y = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    assert_eq!(y, Addr(busy));
    assert_eq!(books.borrow().out.len(), 1, "no import");
    books.borrow_mut().refuse.clear();
    a.free(y, Size(Q)).unwrap();
    let s = a.into_source().unwrap_or_else(|r| panic!("{r}"));
    assert!(s.0.borrow().out.is_empty(), "every span went back");
}

/// src/arena/teardown.rs:38: "while an allocation is live (a held one, a
/// quantum-cache slab's, included)": a handle's allocation refuses too.
#[test]
fn a_held_allocation_refuses_into_source() {
    let books = Rc::new(RefCell::new(Books::default()));
    let mut a = Arena::new("c", Size(64), mstore(), mstore(), Scripted(books.clone())).unwrap();
    let h = a.alloc_handle(Size(192), Policy::InstantFit).unwrap();
    let r = a.into_source().err().expect("a held allocation is live");
    assert_eq!(r.error(), ArenaError::InUse { what: "allocations live", size: Size(192) });
    let mut a = r.into_inner();
    assert_eq!(books.borrow().out.len(), 1, "nothing given back");
    a.free_handle(h).unwrap();
    assert!(a.into_source().is_ok());
}

/// src/arena/teardown.rs:34-35: "spans added with `add` go with the arena":
/// they are not offered to the source.
#[test]
fn added_spans_are_not_given_to_the_source() {
    let books = Rc::new(RefCell::new(Books::default()));
    let mut a = Arena::new("c", Size(64), mstore(), mstore(), Scripted(books.clone())).unwrap();
    a.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let x = a.alloc(Size(1 << 20), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(64), Policy::InstantFit).unwrap(); // imports
    a.free(x, Size(1 << 20)).unwrap();
    a.free(y, Size(64)).unwrap();
    let releases = books.borrow().releases;
    assert!(a.into_source().is_ok());
    assert_eq!(books.borrow().releases, releases, "only imports go back; none was left");
    assert!(books.borrow().out.is_empty());
}

/// `into_source` over an arena with no source and nothing allocated.
#[test]
fn an_empty_arena_gives_back_its_no_source() {
    let a = Arena::new("c", Size(64), mstore(), mstore(), NoSource).unwrap();
    assert!(a.into_source().is_ok());
}

/// Strands (as `Stranded`) the give-back of bases listed.
#[derive(Clone)]
struct Stranding(Rc<RefCell<Books>>);

impl Source for Stranding {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        Scripted(self.0.clone()).import(size, align)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        let mut b = self.0.borrow_mut();
        b.releases += 1;
        if b.refuse.contains(&range.base().0) {
            let error = vmspace::ShimError::InvalidArgument("stranded on purpose");
            return Err(ArenaError::Stranded { range, error });
        }
        assert!(b.out.remove(&range.base().0));
        Ok(())
    }
}

/// src/arena/teardown.rs:43-44: "A span the source strands
/// ([`Stranded`]) is the source's for good and does not keep the arena";
/// src/arena/span.rs:40-43 `give_back_free_spans` "Returns the bytes that
/// left the arena: given back, or stranded with the source".
#[test]
fn a_stranded_span_does_not_keep_the_arena() {
    let books = Rc::new(RefCell::new(Books::default()));
    let mut a = Arena::new("c", Size(64), mstore(), mstore(), Stranding(books.clone())).unwrap();
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    books.borrow_mut().refuse.insert(x.0);
    a.free(x, Size(Q)).unwrap();
    assert_eq!(a.sizes().imported, Size(Q), "the stranded span left the arena");
    a.free(y, Size(Q)).unwrap();
    let s = a.into_source().unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(s.0.borrow().out.len(), 1, "only the stranded one stays taken in the source");
}

#[test]
fn give_back_free_spans_returns_the_bytes_that_left() {
    let books = Rc::new(RefCell::new(Books::default()));
    let mut a = Arena::new("c", Size(64), mstore(), mstore(), Scripted(books.clone())).unwrap();
    let xs: Vec<Addr> = (0..3).map(|_| a.alloc(Size(Q), Policy::InstantFit).unwrap()).collect();
    let all: Vec<usize> = books.borrow().out.iter().copied().collect();
    books.borrow_mut().refuse.extend(all);
    for x in &xs {
        a.free(*x, Size(Q)).unwrap();
    }
    assert_eq!(a.sizes().imported, Size(3 * Q));
    assert_eq!(a.give_back_free_spans(), Size(0), "all refused again: nothing left");
    let second = *books.borrow().out.iter().nth(1).unwrap();
    books.borrow_mut().refuse.remove(&second);
    assert_eq!(a.give_back_free_spans(), Size(Q));
    books.borrow_mut().refuse.clear();
    assert_eq!(a.give_back_free_spans(), Size(2 * Q));
    assert_eq!(a.give_back_free_spans(), Size(0));
    assert_eq!(a.sizes().imported, Size(0));
    a.check().unwrap();
}

/// src/sources/keep.rs:182-183: "Spans handed out and not given back stay
/// with whoever holds them": they do not refuse `into_inner`.
#[test]
fn keep_free_into_inner_with_spans_out_succeeds() {
    use vmspace::sources::KeepFree;
    let books = Rc::new(RefCell::new(Books::default()));
    let mut k: KeepFree<Scripted, 2> = KeepFree::new(Scripted(books.clone()), Size(Q));
    let out = k.import(Size(Q), Size(Q)).unwrap();
    let kept = k.import(Size(2 * Q), Size(Q)).unwrap();
    k.release(kept).unwrap();
    assert_eq!(k.kept_size(), Size(2 * Q));
    let mut s = k.into_inner().unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(s.0.borrow().out.len(), 1, "the kept span went back below; the other is out");
    s.release(out).unwrap();
}
