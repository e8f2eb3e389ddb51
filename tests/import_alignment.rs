//! Imports and alignment: a source that cannot honour an alignment above
//! its quantum (as a C import function, which takes none) still serves
//! aligned, phased and nocross requests, because the arena asks it for
//! room to align in; and the sources of this crate refuse import arguments
//! outside `Source::import`'s contract (an outside reviewer found them
//! taken: half a quantum, a size not a multiple of it, an alignment below
//! it).

use vmspace::arena::{Arena, ArenaError, Constraints, PageStore, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Range, Size};

const PAGE: usize = 4096;

/// Hands out consecutive page-aligned ranges from one page up, whatever
/// the alignment asked; `aligned` is what it says of itself.
struct Bump {
    next: usize,
    aligned: bool,
    asked: Vec<(usize, usize)>,
    released: Vec<Range>,
}

impl Source for Bump {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.asked.push((size.0, align.0));
        let r = Range::from_size(Addr(self.next), size)?;
        self.next = r.limit().0;
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.released.push(range);
        Ok(())
    }
    fn imports_aligned(&self) -> bool {
        self.aligned
    }
}

fn child<'s>(sim: &'s SimBackend<'s>, aligned: bool) -> Arena<PageStore<&'s SimBackend<'s>>, Bump> {
    let source = Bump { next: PAGE, aligned, asked: Vec::new(), released: Vec::new() };
    let tags = PageStore::new(sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(sim, Size(PAGE)).unwrap();
    Arena::new("child", Size(PAGE), tags, hash, source).unwrap()
}

#[test]
fn a_source_that_only_aligns_to_its_quantum_is_asked_for_room_to_align_in() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = child(&sim, false);
    let mb = 1 << 20;
    let x = a.xalloc(&Constraints::new(Size(PAGE)).align(Size(mb))).unwrap();
    assert_eq!(x.0 % mb, 0);
    // The size plus the alignment less a quantum, at the quantum.
    assert_eq!(a.source().asked, [(mb, PAGE)]);
    let y = a.xalloc(&Constraints::new(Size(2 * PAGE)).align(Size(1 << 16)).phase(Size(PAGE)));
    assert_eq!(y.unwrap().0 % (1 << 16), PAGE);
    let z = a.xalloc(&Constraints::new(Size(2 * PAGE)).nocross(Size(2 * PAGE))).unwrap();
    let last = z.0 + 2 * PAGE - 1;
    assert_eq!(z.0 / (2 * PAGE), last / (2 * PAGE), "{z:?} crosses a boundary");
    a.check().unwrap();
    // Each span goes back whole, as it was imported, once wholly free.
    let imported: Vec<usize> = a.source().asked.iter().map(|&(s, _)| s).collect();
    a.free(x, Size(PAGE)).unwrap();
    a.free(y.unwrap(), Size(2 * PAGE)).unwrap();
    a.free(z, Size(2 * PAGE)).unwrap();
    let mut given: Vec<usize> = a.source().released.iter().map(|r| r.size().0).collect();
    given.sort_unstable();
    let mut want = imported;
    want.sort_unstable();
    assert_eq!(given, want);
    assert_eq!(a.sizes().total, Size(0));
    a.check().unwrap();
}

#[test]
fn a_source_that_claims_alignment_and_breaks_it_is_refused_and_nothing_changes() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = child(&sim, true);
    let got = a.xalloc(&Constraints::new(Size(PAGE)).align(Size(1 << 20)));
    assert!(matches!(got, Err(ArenaError::BadImport(_))), "{got:?}");
    assert_eq!(a.source().asked, [(PAGE, 1 << 20)]);
    assert_eq!(a.source().released.len(), 1);
    assert_eq!(a.sizes().total, Size(0));
    a.check().unwrap();
}

#[test]
fn the_sources_of_this_crate_refuse_imports_outside_the_contract() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let bad = [(0, PAGE), (PAGE / 2, PAGE), (PAGE + 1, PAGE), (PAGE, PAGE / 2), (PAGE, 3 * PAGE)];
    let mut parent = child(&sim, true);
    parent.add(Addr(1 << 30), Size(64 * PAGE)).unwrap();
    let vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(PAGE)).unwrap();
    let mut vs = VmSource::new(vm, tags, hash).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    for (size, align) in bad {
        let (s, al) = (Size(size), Size(align));
        assert!(parent.import(s, al).is_err(), "Arena import({size:#x}, {align:#x})");
        assert!(vs.import(s, al).is_err(), "VmSource import({size:#x}, {align:#x})");
        assert!(va.import(s, al).is_err(), "VmArena import({size:#x}, {align:#x})");
    }
    assert_eq!(parent.sizes().allocated, Size(0));
    assert_eq!(vs.vm().mapped(), Size(0));
    parent.check().unwrap();
    vs.check().unwrap();
    // What the contract allows is taken.
    let r = parent.import(Size(2 * PAGE), Size(2 * PAGE)).unwrap();
    assert_eq!(r.base().0 % (2 * PAGE), 0);
    parent.release(r).unwrap();
}

/// A nocross request asks its source for the size at the size's power of
/// two (which keeps any block from crossing a larger boundary), not at the
/// boundary itself: aligned to a 1 GiB boundary, an import found no room
/// in a parent whose only 1 GiB-aligned address was taken, though the
/// parent itself served the request (an outside reviewer's case).
#[test]
fn a_nocross_import_asks_for_the_size_aligned_not_for_the_boundary() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let gib = 1usize << 30;
    // Asked of a source that aligns only to its quantum: three pages at
    // four pages' alignment, that is six pages at one page's.
    let mut a = child(&sim, false);
    let c = Constraints::new(Size(3 * PAGE)).nocross(Size(gib));
    let x = a.xalloc(&c).unwrap();
    assert_eq!(x.0 / gib, (x.0 + 3 * PAGE - 1) / gib);
    assert_eq!(a.source().asked, [(6 * PAGE, PAGE)]);
    a.check().unwrap();
    a.free(x, Size(3 * PAGE)).unwrap();
    assert_eq!(a.sizes().total, Size(0));
    drop(a);

    // Asked of an arena (which aligns): its one boundary-aligned address
    // is taken, yet it has room for the request.
    let tags = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(PAGE)).unwrap();
    let mut parent =
        Arena::new("parent", Size(PAGE), tags, hash, vmspace::arena::NoSource).unwrap();
    parent.add(Addr(gib), Size(gib)).unwrap();
    let first = parent.alloc(Size(PAGE), vmspace::arena::Policy::InstantFit).unwrap();
    assert_eq!(first, Addr(gib));
    let c = Constraints::new(Size(PAGE)).nocross(Size(gib));
    let direct = parent.xalloc(&c).unwrap();
    parent.free(direct, Size(PAGE)).unwrap();
    let tags = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(PAGE)).unwrap();
    let mut child = Arena::new("child", Size(PAGE), tags, hash, &mut parent).unwrap();
    let x = child.xalloc(&c).unwrap();
    child.check().unwrap();
    child.free(x, Size(PAGE)).unwrap();
    drop(child);
    parent.check().unwrap();
    assert_eq!(parent.sizes().allocated, Size(PAGE));
}
