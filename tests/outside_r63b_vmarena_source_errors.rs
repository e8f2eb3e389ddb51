//! Round 63b outside review: the errors a `VmArena` gives as a `Source`
//! for a give-back it does not hold. `ArenaError::BadImport` is documented
//! (src/arena/error.rs) as "A source handed back a range that breaks the
//! Source contract (wrong size or alignment, or overlapping a span)" and
//! displays "source returned an unusable range" - an *import* problem.
//! But `impl From<VmArenaError> for ArenaError` (src/sources/vmarena.rs)
//! maps `NotAllocated` and `OutOfRange` to `BadImport`, so a *release* of
//! a range the VM arena does not hold (given back twice, or outside it)
//! says the source returned an unusable range. `VmSource` refuses the same
//! give-backs with `ArenaError::BadFree` (src/sources/vm.rs `handed_out`),
//! and `KeepFree`'s docs lean on "the sources of this crate refuse a range
//! they do not hold". Fixed: a release's `NotAllocated` / `OutOfRange`
//! is a `BadFree` now (src/sources/vmarena.rs `stranded`).

use vmspace::arena::{ArenaError, SliceStore, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;

const PAGE: usize = 64;

#[test]
fn vm_source_refuses_a_double_give_back_with_bad_free() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(256 * PAGE), Size(PAGE)).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
        .unwrap_or_else(|_| panic!("source"));
    let r = src.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    src.release(r).unwrap();
    let e = src.release(r).unwrap_err();
    assert!(matches!(e, ArenaError::BadFree { .. }), "{e:?}");
}

/// Was a DEFECT (fixed): BadImport for a double give-back.
#[test]
fn vmarena_source_refuses_a_double_give_back_as_a_bad_free() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    let r = va.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    va.release(r).unwrap();
    let e = va.release(r).unwrap_err();
    va.check().unwrap();
    assert!(
        matches!(e, ArenaError::BadFree { .. }),
        "a give-back of tracts not held reported as {e:?} (\"{e}\")"
    );
}

/// Was a DEFECT (fixed): BadImport for a give-back outside the arena.
#[test]
fn vmarena_source_refuses_a_give_back_outside_it_as_a_bad_free() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
    let outside = Range::from_size(Addr(va.range().limit().0 + 64 * PAGE), Size(PAGE)).unwrap();
    let e = va.release(outside).unwrap_err();
    assert!(
        matches!(e, ArenaError::BadFree { .. }),
        "a give-back outside the arena reported as {e:?} (\"{e}\")"
    );
}
