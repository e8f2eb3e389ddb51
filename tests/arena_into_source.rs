//! `Arena::into_source`: the source back once nothing is allocated and
//! nothing waits for a flush, every imported span given back first; else
//! the arena back, untouched.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, PageStore, Policy, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::{Addr, Range, ShimError, Size};
use vmspace_shim::sim::SimBackend;

const PAGE: usize = 4096;

/// What the next give-backs do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Give {
    Take,
    Refuse,
    Busy,
    Strand,
    Panic,
}

#[derive(Default)]
struct Books {
    next: usize,
    /// Handed out and not taken back: base -> size.
    out: BTreeMap<usize, usize>,
    stranded: usize,
    script: Vec<Give>,
}

/// A source handing out fresh ranges and taking them back as its script
/// says (then `Take`), with books the test reads after the arena is gone.
#[derive(Clone)]
struct Scripted(Rc<RefCell<Books>>);

impl Scripted {
    fn new() -> Self {
        Scripted(Rc::new(RefCell::new(Books { next: 1 << 30, ..Books::default() })))
    }
    fn outstanding(&self) -> usize {
        self.0.borrow().out.values().sum()
    }
    fn script(&self, s: &[Give]) {
        self.0.borrow_mut().script = s.to_vec();
    }
}

impl Source for Scripted {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let mut b = self.0.borrow_mut();
        let base = b.next;
        b.next += size.0 + PAGE;
        b.out.insert(base, size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        let mut b = self.0.borrow_mut();
        assert_eq!(b.out.get(&r.base().0), Some(&r.size().0), "{r} not handed out");
        let give = if b.script.is_empty() { Give::Take } else { b.script.remove(0) };
        match give {
            Give::Take => {
                b.out.remove(&r.base().0);
                Ok(())
            }
            Give::Refuse => Err(ArenaError::InvalidArgument("scripted refusal")),
            Give::Busy => Err(ArenaError::SourceBusy),
            Give::Strand => {
                b.out.remove(&r.base().0);
                b.stranded += r.size().0;
                Err(ArenaError::Stranded {
                    range: r,
                    error: ShimError::Injected { op: vmspace_shim::Op::Unmap },
                })
            }
            Give::Panic => {
                drop(b);
                panic!("scripted panic in release");
            }
        }
    }
}

type Heap<'a> = Arena<PageStore<&'a SimBackend<'a>>, Scripted>;

fn heap<'a>(sim: &'a SimBackend<'a>, source: Scripted) -> Heap<'a> {
    Arena::on_pages("heap", Size(64), sim, 1 << 12, source).unwrap()
}

#[test]
fn the_source_comes_back_once_everything_is_freed() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let books = Scripted::new();
    let mut a = heap(&sim, books.clone());
    a.add(Addr(0x1000_0000), Size(16 * PAGE)).unwrap();
    let x = a.alloc(Size(64 * PAGE), Policy::InstantFit).unwrap();
    let h = a.alloc_handle(Size(128), Policy::InstantFit).unwrap();
    let before = (a.sizes(), books.outstanding());
    assert!(books.outstanding() >= 64 * PAGE, "imported");
    // Live allocations: the arena back, untouched.
    let refused = a.into_source().err().expect("allocations live");
    let live = before.0.allocated;
    assert_eq!(refused.error(), ArenaError::InUse { what: "allocations live", size: live });
    let mut a = refused.into_inner();
    assert_eq!((a.sizes(), books.outstanding()), before);
    a.free(x, Size(64 * PAGE)).unwrap();
    let mut a = a.into_source().err().expect("a held allocation live").into_inner();
    a.free_handle(h).unwrap();
    a.check().unwrap();
    let back = a.into_source().unwrap_or_else(|_| panic!("nothing allocated"));
    assert_eq!(back.outstanding(), 0, "every import given back");
    assert_eq!(books.0.borrow().stranded, 0);
}

#[test]
fn a_segment_waiting_for_a_flush_keeps_the_arena() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let books = Scripted::new();
    let mut a = heap(&sim, books.clone());
    let x = a.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    a.free_deferred(x, Size(4 * PAGE)).unwrap();
    let refused = a.into_source().err().expect("a segment waits for its flush");
    let want = ArenaError::InUse { what: "segments waiting for a flush", size: Size(4 * PAGE) };
    assert_eq!(refused.error(), want);
    let mut a = refused.into_inner();
    assert_eq!(a.sizes().unflushed, Size(4 * PAGE));
    assert!(books.outstanding() > 0, "not given back before its flush");
    a.flushed();
    assert!(a.into_source().is_ok());
    assert_eq!(books.outstanding(), 0);
    // In a span of the caller's (added, not imported) too: the deferred
    // free is the caller's to complete.
    let mut a = heap(&sim, books.clone());
    a.add(Addr(0x1000_0000), Size(16 * PAGE)).unwrap();
    let y = a.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    a.free_deferred(y, Size(PAGE)).unwrap();
    let mut a = a.into_source().err().expect("a segment of an added span waits").into_inner();
    assert_eq!(a.flushed(), Size(PAGE));
    assert!(a.into_source().is_ok());
}

/// Spans the source refused before (kept, free) are offered again; while
/// it refuses, the arena comes back with them; a stranded span does not
/// keep the arena.
#[test]
fn spans_refused_before_are_offered_again() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let books = Scripted::new();
    let mut a = heap(&sim, books.clone());
    let x = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(1 << 20), Policy::InstantFit).unwrap();
    books.script(&[Give::Refuse, Give::Busy]);
    a.free(x, Size(8 * PAGE)).unwrap();
    a.free(y, Size(1 << 20)).unwrap();
    let kept = a.sizes().imported;
    assert!(kept.0 >= 8 * PAGE + (1 << 20), "both spans kept: {kept:?}");
    books.script(&[Give::Refuse, Give::Take]);
    let refused = a.into_source().err().expect("one span refused again");
    let imported = refused.get_ref().sizes().imported;
    let want = ArenaError::InUse { what: "imported spans not given back", size: imported };
    assert_eq!(refused.error(), want);
    let a = refused.into_inner();
    a.check().unwrap();
    assert!(a.sizes().imported.0 > 0 && a.sizes().imported < kept, "{:?}", a.sizes());
    assert_eq!(a.sizes().free, a.sizes().total, "the refused span free, usable");
    books.script(&[Give::Strand]);
    let back = a.into_source().unwrap_or_else(|_| panic!("a stranded span is the source's"));
    assert_eq!(back.outstanding(), 0);
    assert!(back.0.borrow().stranded > 0);
}

/// While the last call into the source panicked, nothing goes back (the
/// arena comes back); once a call returns, the held span goes.
#[test]
fn after_a_panicked_give_back_the_arena_comes_back() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let books = Scripted::new();
    let mut a = heap(&sim, books.clone());
    let x = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(1 << 20), Policy::InstantFit).unwrap();
    books.script(&[Give::Panic]);
    let r = catch_unwind(AssertUnwindSafe(|| a.free(x, Size(8 * PAGE))));
    assert!(r.is_err(), "the give-back panicked");
    a.free(y, Size(1 << 20)).unwrap();
    assert!(a.sizes().imported.0 > 0, "y's span held while the note stands");
    let mut a = a.into_source().err().expect("the source's last call panicked").into_inner();
    a.check().unwrap();
    // A call that returns clears the note: an import, then its free.
    let z = a.alloc(Size(2 << 20), Policy::InstantFit).unwrap();
    a.free(z, Size(2 << 20)).unwrap();
    let back = a.into_source().unwrap_or_else(|_| panic!("the note cleared"));
    // x's span went off the books as its give-back panicked: lost to both,
    // as documented, never given back twice.
    assert_eq!(back.outstanding(), 8 * PAGE);
}

/// The whole way back: an arena over a `VmSource` gives the source back,
/// which gives the VM back, unmapped, its reservation kept.
#[test]
fn an_arena_over_a_vm_source_gives_back_the_vm() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(256 * PAGE), Size(PAGE)).unwrap();
    let range = vm.range();
    let (t, h) =
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap());
    let source = VmSource::new(vm, t, h).unwrap();
    let mut a = Arena::on_pages("heap", Size(64), &sim, 1 << 12, source).unwrap();
    let x = a.alloc(Size(64 * PAGE), Policy::InstantFit).unwrap();
    assert!(a.source().vm().is_mapped(x));
    let mut a = a.into_source().err().expect("x is live").into_inner();
    a.free(x, Size(64 * PAGE)).unwrap();
    let source = a.into_source().unwrap_or_else(|_| panic!("nothing allocated"));
    source.check().unwrap();
    let vm = source.into_vm().unwrap_or_else(|_| panic!("nothing imported"));
    assert_eq!((vm.range(), vm.mapped()), (range, Size(0)));
}
