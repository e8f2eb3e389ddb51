//! Outside review, round 45a: `KeepFree`'s shortage retry with a source
//! below that panics part way (in the trim, or in the second import), and
//! stacked adapters whose retries have to cascade.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

/// A first-fit source over `pages` pages that records what it holds and
/// panics on the call numbered `panic_at` (1-based, imports and releases
/// counted together), after changing its books if `after`.
#[derive(Default)]
struct Books {
    held: Vec<Range>,
    calls: u64,
    panic_at: u64,
    after: bool,
    pages: usize,
}

#[derive(Clone)]
struct Panicky(Rc<RefCell<Books>>);

const BASE: usize = 1 << 24;

impl Panicky {
    fn new(pages: usize) -> Self {
        Panicky(Rc::new(RefCell::new(Books { pages, ..Default::default() })))
    }
    fn tick(&self, after: bool) {
        let b = self.0.borrow();
        if b.calls == b.panic_at && b.after == after {
            drop(b);
            panic!("injected");
        }
    }
}

impl Source for Panicky {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.0.borrow_mut().calls += 1;
        self.tick(false);
        let found = {
            let b = self.0.borrow();
            let mut a = BASE;
            let mut found = None;
            while a + size.0 <= BASE + b.pages * Q {
                let r = Range::from_size(Addr(a), size).unwrap();
                if !b.held.iter().any(|h| h.overlaps(&r)) {
                    found = Some(r);
                    break;
                }
                a += align.0;
            }
            found
        };
        let Some(r) = found else { return Err(ArenaError::NoSpace { size: size.0 }) };
        self.0.borrow_mut().held.push(r);
        self.tick(true);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.0.borrow_mut().calls += 1;
        self.tick(false);
        let i = self.0.borrow().held.iter().position(|h| *h == range);
        let Some(i) = i else {
            return Err(ArenaError::BadFree {
                addr: range.base(),
                size: range.size(),
                allocated: None,
            });
        };
        self.0.borrow_mut().held.swap_remove(i);
        self.tick(true);
        Ok(())
    }
}

/// Every kept span is held below; no kept span is also one the caller
/// holds.
fn books<const N: usize>(k: &KeepFree<Panicky, N>, user: &[Range], s: &Panicky) {
    k.check().unwrap();
    let b = s.0.borrow();
    for r in k.kept() {
        assert!(b.held.contains(r), "kept {r:?} not held below");
        assert!(!user.iter().any(|u| u.overlaps(r)), "kept {r:?} also with the user");
    }
    for u in user {
        assert!(b.held.contains(u), "user's {u:?} not held below");
    }
}

#[test]
fn a_panic_anywhere_in_the_retry_leaves_consistent_books() {
    // Import 4 single pages of 6, give them back (kept), then ask for 3
    // pages: the first import fails, the trim gives 4 back, the retry
    // succeeds. Panic at every call of that sequence, before and after.
    for panic_at in 1..=6u64 {
        for after in [false, true] {
            let s = Panicky::new(6);
            let mut k = KeepFree::<_, 4>::new(s.clone(), Size(Q));
            let mut user: Vec<Range> =
                (0..4).map(|_| k.import(Size(Q), Size(Q)).unwrap()).collect();
            let filler = k.import(Size(2 * Q), Size(Q)).unwrap();
            for u in user.drain(..) {
                k.release(u).unwrap();
            }
            user.push(filler);
            assert_eq!(k.kept().len(), 4);
            let base_calls = s.0.borrow().calls;
            {
                let mut b = s.0.borrow_mut();
                b.panic_at = base_calls + panic_at;
                b.after = after;
            }
            let res = catch_unwind(AssertUnwindSafe(|| k.import(Size(3 * Q), Size(Q))));
            s.0.borrow_mut().panic_at = 0;
            match res {
                Ok(Ok(r)) => user.push(r),
                Ok(Err(e)) => panic!("{panic_at} {after}: {e:?}"),
                Err(_) => {}
            }
            books(&k, &user, &s);
            // What is lost is at most the one span the panic was about.
            let held = s.0.borrow().held.len();
            let accounted = k.kept().len() + user.len();
            assert!(
                held >= accounted && held <= accounted + 1,
                "{panic_at} {after}: held {held} accounted {accounted}"
            );
            // into_inner still works.
            for u in user.drain(..) {
                k.release(u).unwrap();
            }
            let s2 = k.into_inner().ok().unwrap();
            assert!(s2.0.borrow().held.len() <= 1);
        }
    }
}

#[test]
fn stacked_adapters_cascade_their_retries() {
    for inner_n in [0usize, 1, 2] {
        let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut parent = Arena::new(
            "parent",
            Size(Q),
            SliceStore::new(&mut t),
            SliceStore::new(&mut h),
            NoSource,
        )
        .unwrap();
        parent.add(Addr(1 << 20), Size(2 * Q)).unwrap();
        macro_rules! go {
            ($n:literal) => {{
                let inner = KeepFree::<_, $n>::new(&mut parent, Size(Q));
                let mut outer = KeepFree::<_, 2>::new(inner, Size(Q));
                let a = outer.import(Size(Q), Size(Q)).unwrap();
                let b = outer.import(Size(Q), Size(Q)).unwrap();
                outer.release(a).unwrap();
                outer.release(b).unwrap();
                assert_eq!(outer.kept().len(), 2);
                let big = outer.import(Size(2 * Q), Size(Q));
                assert!(big.is_ok(), "inner N {}: {big:?}", $n);
                outer.check().unwrap();
                outer.inner().check().unwrap();
                outer.release(big.unwrap()).unwrap();
                // And back down to single pages: retries the other way.
                let a = outer.import(Size(Q), Size(Q));
                assert!(a.is_ok(), "inner N {}: {a:?}", $n);
                outer.release(a.unwrap()).unwrap();
                let inner = outer.into_inner().ok().unwrap();
                let p = inner.into_inner().ok().unwrap();
                p.check().unwrap();
                assert_eq!(p.sizes().allocated, Size(0));
            }};
        }
        match inner_n {
            0 => go!(0),
            1 => go!(1),
            _ => go!(2),
        }
    }
}

/// An arena importing from a stack of adapters over a tiny parent, with
/// sizes that force a shortage at nearly every import.
#[test]
fn heap_over_stack_under_pressure() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut parent =
        Arena::new("parent", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    parent.add(Addr(1 << 20), Size(8 * Q)).unwrap();
    let mut inner = KeepFree::<_, 3>::new(&mut parent, Size(Q));
    let mut outer = KeepFree::<_, 3>::new(&mut inner, Size(Q));
    {
        let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut heap = Arena::new(
            "heap",
            Size(16),
            SliceStore::new(&mut t2),
            SliceStore::new(&mut h2),
            &mut outer,
        )
        .unwrap();
        let mut seed = 99u64;
        let mut live: Vec<(Addr, usize)> = Vec::new();
        let mut fails = 0;
        for step in 0..4000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let x = (seed >> 33) as usize;
            if x % 2 == 0 || live.is_empty() {
                let size = Q * (1 + x % 8);
                match heap.alloc(Size(size), Policy::InstantFit) {
                    Ok(a) => live.push((a, size)),
                    Err(ArenaError::NoSpace { .. }) => {
                        fails += 1;
                        // Must really be out of room: nothing kept on the
                        // way down, and no run that large free in the parent.
                        let o = heap.source();
                        assert!(o.kept().is_empty(), "step {step}: outer keeps {:?}", o.kept());
                        assert!(
                            o.inner().kept().is_empty(),
                            "step {step}: inner keeps {:?}",
                            o.inner().kept()
                        );
                        let lf = o.inner().inner().largest_free();
                        assert!(
                            lf < Size(size),
                            "step {step}: NoSpace for {size:#x}, parent has {lf:?} free"
                        );
                    }
                    Err(e) => panic!("step {step}: {e:?}"),
                }
            } else {
                let (a, s) = live.swap_remove(x % live.len());
                heap.free(a, Size(s)).unwrap();
            }
            heap.check().unwrap();
            heap.source().check().unwrap();
            heap.source().inner().check().unwrap();
            heap.source().inner().inner().check().unwrap();
        }
        assert!(fails > 0);
        for (a, s) in live {
            heap.free(a, Size(s)).unwrap();
        }
    }
    drop(outer);
    drop(inner);
    parent.check().unwrap();
    assert_eq!(parent.sizes().allocated, Size(0));
}
