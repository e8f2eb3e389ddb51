//! Round 27 outside review: the VM arena's documented contract
//! (`src/vmarena/`, `src/sources/vmarena.rs`): the VM arena as an
//! arena's `Source`: release rules, `release_unflushed` and `refused`.

mod outside_r27_vmarena_common;

use vmspace::arena::{ArenaError, Source};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, Pages, Range, Size};

use outside_r27_vmarena_common::{snap, PAGE};

/// Source: imports are owned by IMPORT_OWNER, whole-tract releases of
/// imported tracts (part of one, or spanning two) are taken; anything else
/// is refused and changes nothing.
#[test]
fn source_release_rules() {
    let mut buf = Placed::new(1 << 20, 31 * 256);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).spare_limit(4)).unwrap();
    let r1 = Source::import(&mut a, Size(4 * PAGE), Size(PAGE)).unwrap();
    let r2 = Source::import(&mut a, Size(4 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(r1.limit(), r2.base());
    let other = a.alloc(&Request::new(Pages(2), Owner(5))).unwrap();
    let before = snap(&a);
    // Misaligned, empty, other owner's, spanning an import and a free tract.
    assert!(Source::release(&mut a, Range::from_size(Addr(r1.base().0 + 8), Size(PAGE)).unwrap())
        .is_err());
    assert!(Source::release(&mut a, Range::empty(r1.base())).is_err());
    assert!(Source::release(&mut a, other.range).is_err());
    let span = Range::new(r2.base(), Addr(other.range.limit().0 + PAGE)).unwrap();
    assert!(Source::release(&mut a, span).is_err());
    assert_eq!(snap(&a), before);
    // Spanning both imports, part of each.
    let mid = Range::new(Addr(r1.base().0 + 2 * PAGE), Addr(r2.base().0 + 2 * PAGE)).unwrap();
    Source::release(&mut a, mid).unwrap();
    a.check().unwrap();
    // Import with size not a page multiple or align below the page.
    assert!(Source::import(&mut a, Size(PAGE + 1), Size(PAGE)).is_err());
    assert!(Source::import(&mut a, Size(PAGE), Size(PAGE / 2)).is_err());
    // Too big: NoSpace in bytes.
    assert_eq!(
        Source::import(&mut a, Size(1024 * PAGE), Size(PAGE)),
        Err(ArenaError::NoSpace { size: 1024 * PAGE })
    );
    a.check().unwrap();
}

/// Source: `release_unflushed` frees keeping no page spare; `refused`
/// frees the fresh import.
#[test]
fn source_unflushed_and_refused() {
    let mut buf = Placed::new(1 << 20, 64 * 256 + 8);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).spare_limit(16)).unwrap();
    let r = Source::import(&mut a, Size(4 * PAGE), Size(4 * PAGE)).unwrap();
    assert_eq!(r.base().0 % (4 * PAGE), 0);
    Source::release_unflushed(&mut a, r).unwrap();
    assert_eq!(a.spare(), Size(0));
    assert_eq!(a.committed(), Size(0));
    let r = Source::import(&mut a, Size(2 * PAGE), Size(PAGE)).unwrap();
    Source::refused(&mut a, r);
    assert_eq!(a.allocated(), Size(0));
    assert_eq!(a.spare(), Size(2 * PAGE));
    a.check().unwrap();
}
