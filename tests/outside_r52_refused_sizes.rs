//! Round 52 (outside review): refusals at the sizes' edges: tag stores at
//! MIN_TAGS over fixed buffers, empty hash stores, quanta and VM pages at
//! 2^27 and 2^28.

use vmspace::arena::{
    Arena, ArenaError, NoSource, PageStore, Policy, SliceStore, MAX_TAGS, MIN_TAGS, STORE_ALIGN,
    TAG_BYTES,
};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::{Addr, Size};
use vmspace_shim::sim::SimBackend;

/// A source-free marker with an identity, to see it come back.
#[derive(Debug, PartialEq)]
struct Marked(u64);

impl vmspace::arena::Source for Marked {
    fn quantum(&self) -> vmspace::Size {
        Size(16)
    }
    fn import(&mut self, size: Size, _: Size) -> Result<vmspace::Range, ArenaError> {
        panic!("imported {size:?} while being made")
    }
    fn release(&mut self, r: vmspace::Range) -> Result<(), ArenaError> {
        panic!("released {r:?} while being made")
    }
}

/// A buffer of `len` bytes starting at a multiple of `STORE_ALIGN`.
fn aligned(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buf.clear();
    buf.resize(len + STORE_ALIGN, 0);
    let skip = buf.as_ptr().align_offset(STORE_ALIGN);
    &mut buf[skip..skip + len]
}

#[test]
fn slice_stores_at_min_tags() {
    let (mut tb, mut hb) = (Vec::new(), vec![0u8; 4096]);
    // One byte short of MIN_TAGS tags: refused, the source back.
    let r = Arena::new(
        "s",
        Size(16),
        SliceStore::new(aligned(&mut tb, MIN_TAGS * TAG_BYTES - 1)),
        SliceStore::new(&mut hb),
        Marked(1),
    );
    let r = r.err().expect("fewer than MIN_TAGS");
    assert!(matches!(r.error(), ArenaError::InvalidArgument(_)));
    assert_eq!(r.into_inner(), Marked(1));
    // Exactly MIN_TAGS: made; it holds a span and an allocation.
    let mut a = Arena::new(
        "s",
        Size(16),
        SliceStore::new(aligned(&mut tb, MIN_TAGS * TAG_BYTES)),
        SliceStore::new(&mut hb),
        NoSource,
    )
    .unwrap_or_else(|e| panic!("MIN_TAGS tags: {e}"));
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(32), Policy::InstantFit).unwrap();
    a.free(x, Size(32)).unwrap();
    a.check().unwrap();
    drop(a);
    // An empty hash store: refused at construction or made and working,
    // never a panic; refused, the source back.
    let mut empty: [u8; 0] = [];
    match Arena::new(
        "s",
        Size(16),
        SliceStore::new(aligned(&mut tb, 64 * TAG_BYTES)),
        SliceStore::new(&mut empty),
        Marked(2),
    ) {
        Err(r) => assert_eq!(r.into_inner(), Marked(2)),
        Ok(a) => assert_eq!(a.live(), 0),
    }
    // A tag buffer misaligned by one byte loses its first STORE_ALIGN - 1
    // bytes to alignment: MIN_TAGS tags' worth plus one byte is too few.
    let mut raw = Vec::new();
    let buf = aligned(&mut raw, MIN_TAGS * TAG_BYTES + STORE_ALIGN);
    let r = Arena::new(
        "s",
        Size(16),
        SliceStore::new(&mut buf[1..MIN_TAGS * TAG_BYTES + 2]),
        SliceStore::new(&mut hb),
        Marked(3),
    );
    assert_eq!(r.err().expect("too few after alignment").into_inner(), Marked(3));
}

/// Arena quanta: 2^27 is made, 2^28 refused (source back, stores
/// released) for both constructors.
#[test]
fn arena_quantum_at_two_to_the_27_and_28() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut a = Arena::on_pages("q27", Size(1 << 27), &sim, 4096, NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 29)).unwrap();
    let x = a.alloc(Size(1), Policy::InstantFit).unwrap();
    assert_eq!(a.lookup(x).map(|(r, _)| r.size()), Some(Size(1 << 27)));
    drop(a);
    for q in [1usize << 28, 1 << 29, 1 << 40] {
        let r = Arena::on_pages("q", Size(q), &sim, 4096, Marked(q as u64));
        assert_eq!(r.err().expect("refused").into_inner(), Marked(q as u64));
        let t = PageStore::new(&sim, Size(1 << 16)).unwrap();
        let h = PageStore::new(&sim, Size(1 << 12)).unwrap();
        let r = Arena::new("q", Size(q), t, h, Marked(q as u64 + 1));
        assert_eq!(r.err().expect("refused").into_inner(), Marked(q as u64 + 1));
    }
    assert_eq!(sim.stats().reservations, 0);
}

/// A VM of 2^27-byte pages makes a source; one of 2^28-byte pages is
/// refused, and the VM comes back whole, releasable.
#[test]
fn vm_source_over_huge_pages() {
    for shift in [27u32, 28] {
        let page = 1usize << shift;
        let mut buf = vec![0u8; 8 * page];
        let sim = SimBackend::new(&mut buf, page).unwrap();
        let vm = Vm::reserve(&sim, Size(page), Size(page)).unwrap();
        let range = vm.range();
        let t = PageStore::new(&sim, Size(page)).unwrap();
        let h = PageStore::new(&sim, Size(page)).unwrap();
        match VmSource::new(vm, t, h) {
            Ok(s) => {
                assert_eq!(shift, 27, "a 2^28 page was accepted");
                assert_eq!(s.space().sizes().free, range.size());
            }
            Err(r) => {
                assert_eq!(shift, 28, "a 2^27 page was refused: {r}");
                assert!(matches!(r.error(), ArenaError::InvalidArgument(_)));
                let vm = r.into_inner();
                assert_eq!((vm.range(), vm.mapped()), (range, Size(0)));
                assert_eq!(sim.stats().reservations, 1, "the stores released, the VM kept");
                vm.release().unwrap_or_else(|(_, e)| panic!("{e}"));
            }
        }
        assert_eq!(sim.stats().reservations, 0, "page 2^{shift}");
    }
}

/// `max_tags` at its edges on a small simulated space: MIN_TAGS made,
/// MIN_TAGS - 1 and MAX_TAGS + 1 refused as arguments, MAX_TAGS refused
/// for want of room (the source back, nothing reserved left).
#[test]
fn on_pages_max_tags_at_its_edges() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let a = Arena::on_pages("m", Size(16), &sim, MIN_TAGS, Marked(1));
    assert_eq!(a.map(|a| a.tags_in_use().1 as usize).ok(), Some(MIN_TAGS));
    for (m, arg) in [(MIN_TAGS - 1, true), (MAX_TAGS + 1, true), (MAX_TAGS, false)] {
        let r = Arena::on_pages("m", Size(16), &sim, m, Marked(m as u64));
        let r = r.err().unwrap_or_else(|| panic!("{m} tags in 4 MiB"));
        if arg {
            assert!(matches!(r.error(), ArenaError::InvalidArgument(_)), "{m}: {r}");
        } else {
            assert!(matches!(r.error(), ArenaError::Backing(_)), "{m}: {r}");
        }
        assert_eq!(r.into_inner(), Marked(m as u64));
        assert_eq!(sim.stats().reservations, 0, "{m}");
    }
}
