//! An outside reviewer's tests of `VmArena` as a `Source`: an importer
//! dropped with unflushed frees frees their tracts unmapped (none kept
//! spare), within commit and spare limits, with live allocations and
//! handles beside them; a refused import is freed.

use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::Pages;
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Size};

const PAGE: usize = 4096;

fn tracts_unmapped(sim: &SimBackend<'_>, base: Addr, pages: usize) -> bool {
    (0..pages).all(|i| sim.page_state(Addr(base.0 + i * PAGE)) == Some(PageState::Reserved))
}

/// A span with a live allocation, a deferred free and a handle freed
/// deferred, dropped unflushed: nothing stays allocated in the VM arena,
/// no page of that span stays mapped (with a spare limit that would keep
/// them all), and the commit count is the spare pages only.
#[test]
fn dropped_importer_frees_unflushed_spans_unmapped() {
    for handle in [false, true] {
        let mut buf = vec![0u8; 4 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let cfg = VmArenaConfig::new(Size(1 << 20)).spare_limit(64);
        let mut vma = VmArena::new(&sim, cfg).unwrap();
        let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let span;
        let small;
        {
            let mut a = Arena::new(
                "fresh",
                Size(64),
                SliceStore::new(&mut tags),
                SliceStore::new(&mut hash),
                &mut vma,
            )
            .unwrap();
            let x = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
            // A one-page span with a live allocation and a deferred free.
            let y = a.alloc(Size(64), Policy::InstantFit).unwrap();
            let _live = a.alloc(Size(64), Policy::InstantFit).unwrap();
            assert_eq!(_live.0 & !(PAGE - 1), y.0 & !(PAGE - 1), "one span");
            a.free_deferred(y, Size(64)).unwrap();
            small = Addr(y.0 & !(PAGE - 1));
            if handle {
                let h = a.alloc_handle(Size(64), Policy::InstantFit).unwrap();
                a.free_handle_deferred(h).unwrap();
            }
            a.free_deferred(x, Size(8 * PAGE)).unwrap();
            a.check().unwrap();
            span = x;
            assert!(a.source().allocated() >= Size(8 * PAGE));
        }
        assert_eq!(vma.allocated(), Size(0), "handle {handle}: unflushed spans went back");
        vma.check().unwrap();
        assert_eq!(vma.committed().0, vma.spare().0, "handle {handle}: only spare pages committed");
        assert_eq!(vma.spare(), Size(0), "handle {handle}: none kept spare");
        assert!(tracts_unmapped(&sim, span, 8), "handle {handle}: tracts unmapped");
        assert!(tracts_unmapped(&sim, small, 1), "handle {handle}: the small span unmapped");
        // The tracts may be handed out at once.
        let g = vma.alloc(&Request::new(Pages(200), Owner(3))).unwrap();
        vma.free(g.range, Owner(3)).unwrap();
        vma.check().unwrap();
    }
}

/// At a commit limit the importer used up: after its drop with everything
/// unflushed, the whole limit can be committed again.
#[test]
fn dropped_importer_gives_back_its_commit() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cfg = VmArenaConfig::new(Size(1 << 20)).commit_limit(Size(16 * PAGE)).spare_limit(16);
    let mut vma = VmArena::new(&sim, cfg).unwrap();
    // The most tracts one allocation can take under the limit (metadata
    // pages count against it too).
    let most = (1..=16)
        .rev()
        .find(|&n| match vma.alloc(&Request::new(Pages(n), Owner(1))) {
            Ok(g) => {
                vma.free(g.range, Owner(1)).unwrap();
                true
            }
            Err(_) => false,
        })
        .unwrap();
    vma.purge_spare().unwrap();
    for round in 0..4 {
        let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        {
            let mut a = Arena::new(
                "limit",
                Size(PAGE),
                SliceStore::new(&mut tags),
                SliceStore::new(&mut hash),
                &mut vma,
            )
            .unwrap();
            let mut got = Vec::new();
            while let Ok(x) = a.alloc(Size(PAGE), Policy::InstantFit) {
                got.push(x);
                assert!(got.len() <= 16 + 1, "round {round}: past the commit limit");
            }
            assert!(!got.is_empty(), "round {round}: nothing imported (commit lost?)");
            for x in got {
                a.free_deferred(x, Size(PAGE)).unwrap();
            }
            a.check().unwrap();
        }
        assert_eq!(vma.allocated(), Size(0), "round {round}");
        vma.check().unwrap();
        let g = vma
            .alloc(&Request::new(Pages(most), Owner(1)))
            .unwrap_or_else(|e| panic!("round {round}: {most} tracts: {e}"));
        vma.free(g.range, Owner(1)).unwrap();
    }
}

/// A span added to the importer over the VM arena's first tracts makes
/// the import there overlap it: the import is refused and its tracts freed.
#[test]
fn refused_import_is_freed() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vma = VmArena::new(&sim, VmArenaConfig::new(Size(1 << 20))).unwrap();
    let base = vma.base();
    let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    {
        let mut a = Arena::new(
            "refuse",
            Size(PAGE),
            SliceStore::new(&mut tags),
            SliceStore::new(&mut hash),
            &mut vma,
        )
        .unwrap();
        a.add(base, Size(PAGE)).unwrap();
        let x = a.alloc(Size(PAGE), Policy::InstantFit).unwrap();
        assert_eq!(x, base);
        // The next import lands on the VM arena's lowest free tract, or
        // overlaps the added span; either way the VM arena ends up holding
        // only what the importer holds as imported spans.
        for _ in 0..4 {
            let _ = a.alloc(Size(2 * PAGE), Policy::InstantFit);
        }
        a.check().unwrap();
        let imported: usize = a.sizes().imported.0;
        assert_eq!(a.source().allocated().0, imported, "VM arena holds only live imports");
        a.source().check().unwrap();
    }
    assert_eq!(vma.allocated(), Size(0));
    vma.check().unwrap();
}

/// Imports for aligned and nocross requests (asking the VM arena for an
/// alignment above its page), freed deferred and dropped unflushed, and a
/// protected import: nothing stays allocated or committed past the spare
/// pages, and the VM arena checks.
#[test]
fn aligned_and_protected_imports_dropped_unflushed() {
    use vmspace::arena::Constraints;
    use vmspace_shim::Protection;
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cfg = VmArenaConfig::new(Size(2 << 20)).spare_limit(4);
    let mut vma = VmArena::new(&sim, cfg).unwrap();
    let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    {
        let mut a = Arena::new(
            "aligned",
            Size(64),
            SliceStore::new(&mut tags),
            SliceStore::new(&mut hash),
            &mut vma,
        )
        .unwrap();
        let c = Constraints::new(Size(3 * PAGE)).align(Size(16 * PAGE));
        let x = a.xalloc(&c).unwrap();
        assert_eq!(x.0 % (16 * PAGE), 0, "aligned");
        let n = Constraints::new(Size(2 * PAGE)).nocross(Size(4 * PAGE));
        let y = a.xalloc(&n).unwrap();
        assert_eq!(y.0 / (4 * PAGE), (y.0 + 2 * PAGE - 1) / (4 * PAGE), "crosses nothing");
        let z = a.alloc(Size(2 * PAGE), Policy::BestFit).unwrap();
        let zr = vmspace_shim::Range::from_size(z, Size(2 * PAGE)).unwrap();
        a.source_mut().protect(zr, vmspace::sources::IMPORT_OWNER, Protection::Read).unwrap();
        a.free_deferred(x, Size(3 * PAGE)).unwrap();
        a.free_deferred(y, Size(2 * PAGE)).unwrap();
        a.free_deferred(z, Size(2 * PAGE)).unwrap();
        a.check().unwrap();
        a.source().check().unwrap();
    }
    assert_eq!(vma.allocated(), Size(0));
    assert_eq!(vma.spare(), Size(0), "unflushed imports keep nothing spare");
    assert_eq!(vma.committed(), Size(0));
    vma.check().unwrap();
}
