//! Outside review, round 64c: `Source for VmArena`'s release of a range it
//! did not hand out. Round 63b made "not allocated" and "out of range" a
//! `BadFree` ("as `VmSource` says of a range it did not hand out"); a range
//! allocated in the VM arena to a client (not imported) was not handed out
//! by the source either, and `VmSource` calls that a `BadFree` too. All
//! three were DEFECTS (fixed): `WrongOwner` in a release is a `BadFree`
//! now, and so are `NoSource`'s and the C API's import-less releases.

use vmspace::arena::{ArenaError, Source};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Pages, Size};

const PAGE: usize = 256;

/// A client's allocation released through the source: a bad free, as for
/// any other range the source did not hand out; nothing changes.
#[test]
fn release_of_a_clients_range_is_a_bad_free() {
    let mut b = Placed::new(1 << 20, 0);
    let s = SimBackend::new(b.bytes(), PAGE).unwrap();
    let mut a = VmArena::new(&s, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let g = a.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let got = Source::release(&mut a, g.range);
    let want = ArenaError::BadFree { addr: g.range.base(), size: g.range.size(), allocated: None };
    assert_eq!(got, Err(want), "a range the source never handed out");
    // Still the client's.
    a.free(g.range, Owner(1)).unwrap();
    a.check().unwrap();
}

/// Half imported, half a client's: not all handed out by the source.
#[test]
fn release_over_an_import_and_a_clients_range_is_a_bad_free() {
    let mut b = Placed::new(1 << 20, 0);
    let s = SimBackend::new(b.bytes(), PAGE).unwrap();
    let mut a = VmArena::new(&s, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let imp = Source::import(&mut a, Size(4 * PAGE), Size(PAGE)).unwrap();
    let g = a.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let (lo, hi) = if imp.base() < g.range.base() { (imp, g.range) } else { (g.range, imp) };
    if lo.limit() != hi.base() {
        return; // not adjacent: nothing to say
    }
    let both = vmspace_shim::Range::new(lo.base(), hi.limit()).unwrap();
    let got = Source::release(&mut a, both);
    assert!(matches!(got, Err(ArenaError::BadFree { .. })), "{got:?}");
    a.check().unwrap();
}

/// The same refusal by `NoSource` (and the C API's arena with no import,
/// capi/src/source.rs `Import::None`) is still `BadImport`, "source
/// returned an unusable range": a release of a range never handed out,
/// which the round calls a `BadFree` everywhere else.
#[test]
fn nosource_release_is_a_bad_free() {
    use vmspace::arena::NoSource;
    let r =
        vmspace_shim::Range::new(vmspace_shim::Addr(0x1000), vmspace_shim::Addr(0x2000)).unwrap();
    let got = Source::release(&mut NoSource, r);
    assert!(matches!(got, Err(ArenaError::BadFree { .. })), "{got:?}");
}
