use vmspace::arena::{Arena, Constraints, NoSource, PageStore, Policy, SliceStore, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Size};

const PAGE: usize = 64;
const TOP: usize = usize::MAX;

/// Imports of absurd sizes and alignments, through the `Source`
/// interface of every source, are errors that change nothing.
#[test]
fn absurd_imports() {
    let mut buf = vec![0u8; 1 << 21];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(256 * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(&sim, Size(64 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let mut src = VmSource::new(vm, tags, hash).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(256 * PAGE)).zone_shift(6)).unwrap();
    let (mut t, mut h) = (vec![0u8; 1 << 14], vec![0u8; 1 << 10]);
    let mut ar =
        Arena::new("a", Size(PAGE), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    ar.add(Addr((TOP & !(PAGE - 1)) - 256 * PAGE), Size(256 * PAGE)).unwrap();
    let cases = [
        (TOP & !(PAGE - 1), PAGE),
        (PAGE, 1usize << 63),
        (1 << 63, 1 << 63),
        (PAGE, TOP),
        (257 * PAGE, PAGE),
        (PAGE, 3),
        (0, PAGE),
    ];
    for (s, al) in cases {
        assert!(src.import(Size(s), Size(al)).is_err(), "vm source {s:#x} {al:#x}");
        assert!(va.import(Size(s), Size(al)).is_err(), "vm arena {s:#x} {al:#x}");
        assert!(ar.import(Size(s), Size(al)).is_err(), "arena {s:#x} {al:#x}");
        src.check().unwrap();
        va.check().unwrap();
        ar.check().unwrap();
    }
    // The whole of each, at its largest alignment that fits.
    let r = src.import(Size(256 * PAGE), Size(PAGE)).unwrap();
    src.release(r).unwrap();
    let r = ar.import(Size(256 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(r.limit(), Addr(TOP & !(PAGE - 1)));
    ar.release(r).unwrap();
    let r = va.import(Size(256 * PAGE), Size(PAGE)).unwrap();
    va.release(r).unwrap();
    src.check().unwrap();
    va.check().unwrap();
    assert_eq!(ar.sizes().allocated, Size(0));
    assert_eq!(va.committed(), Size(0));
    assert_eq!(src.vm().mapped(), Size(0));
}

/// Flush thresholds at their extremes: `usize::MAX` pages (more bytes
/// than a word holds) is an error or a threshold never reached; 1 page
/// flushes at every give-back.
#[test]
fn flush_thresholds_at_the_extremes() {
    let mut buf = vec![0u8; 1 << 21];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(&sim, Size(64 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let mut src = VmSource::new(vm, tags, hash).unwrap();
    for t in [usize::MAX, usize::MAX / PAGE + 1, 1 << 58, usize::MAX / PAGE] {
        match src.set_flush_threshold(t) {
            Ok(()) => assert_eq!(src.flush_threshold(), t, "threshold {t:#x}"),
            Err(_) => {
                assert_eq!(src.flush_threshold(), 0, "a refused threshold changes nothing")
            }
        }
        let r = src.import(Size(64 * PAGE), Size(PAGE)).unwrap();
        src.release(r).unwrap();
        src.check().unwrap();
        // Room comes back when an import needs it.
        let r = src.import(Size(64 * PAGE), Size(PAGE)).unwrap();
        src.release(r).unwrap();
        src.flush();
        src.set_flush_threshold(0).unwrap();
    }
    src.set_flush_threshold(1).unwrap();
    let r = src.import(Size(PAGE), Size(PAGE)).unwrap();
    src.release(r).unwrap();
    assert_eq!(src.space().sizes().unflushed, Size(0), "one page reaches a threshold of one");
    src.check().unwrap();
    // Arena over the source, whole VM at once.
    let mut child = Arena::on_pages("c", Size(16), &sim, 256, &mut src).unwrap();
    let x = child.xalloc(&Constraints::new(Size(64 * PAGE)).policy(Policy::BestFit)).unwrap();
    assert!(child.alloc(Size(1), Policy::InstantFit).is_err());
    child.free(x, Size(64 * PAGE)).unwrap();
    child.check().unwrap();
    assert_eq!(child.sizes().total, Size(0));
    drop(child);
    src.check().unwrap();
    assert_eq!(src.vm().mapped(), Size(0));
}
