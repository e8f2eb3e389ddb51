//! An outside reviewer (a language runtime's author): the VM arena as the
//! source of heap arenas, where the crate's other sources give ranges
//! back. First: a per-thread heap
//! arena importing tracts from the VM arena frees an object deferred (its
//! TLB shootdown batched) and the thread exits before the flush, dropping
//! its arena. The README: "An arena dropped while a span it imported holds
//! such a range gives the span back through `Source::release_unflushed`:
//! a parent arena [...] takes it as a deferred free of its own [...]; a
//! `VmSource` unmaps it at once (its pages go back to the system) and
//! holds the address range until its own next flush; other sources keep it
//! taken." The VM arena is one of the "other sources": its tracts stay
//! allocated and committed for good, and count against its commit limit,
//! so a runtime whose threads come and go runs out of memory with nothing
//! live (the defect the CHANGELOG records as fixed for `VmSource`).

use vmspace::arena::{Arena, Policy};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::Size;
use vmspace_shim::sim::SimBackend;

const PAGE: usize = 256;

#[test]
fn thread_heaps_dropped_with_unflushed_frees_give_their_tracts_back() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    // Room for 64 committed tracts (tables included).
    let cfg = VmArenaConfig::new(Size(1024 * PAGE)).commit_limit(Size(64 * PAGE));
    let mut va = VmArena::new(&sim, cfg).unwrap();
    let mut failed_at = None;
    for generation in 0..40 {
        let mut heap = Arena::on_pages("thread heap", Size(16), &sim, 256, &mut va).unwrap();
        let obj = match heap.alloc(Size(8 * PAGE), Policy::InstantFit) {
            Ok(a) => a,
            Err(e) => {
                failed_at = Some((generation, format!("{e:?}")));
                break;
            }
        };
        heap.free_deferred(obj, Size(8 * PAGE)).unwrap();
        // The thread exits before its flush: nothing of the dropped heap
        // waits for anything any more.
        drop(heap);
        va.check().unwrap();
    }
    let (allocated, committed) = (va.allocated().0 / PAGE, va.committed().0 / PAGE);
    assert!(
        failed_at.is_none(),
        "with nothing live, allocation failed at generation {:?}: the VM arena still holds \
         {allocated} tracts allocated and {committed} pages committed from dropped heaps' \
         unflushed spans, and no flush or call of its API gives them back",
        failed_at
    );
}

/// The CHANGELOG: an import the arena refused because it overlapped a span
/// added to the arena inside its source's range "stayed mapped and taken in
/// the source until the arena went [...] `VmSource::refused` now takes it
/// back as a give-back" ("a caller's mistake, which should cost nothing").
/// The VM arena, the other source of this crate with committed memory
/// behind it, keeps the default `refused` (nothing): the tracts stay
/// allocated and committed for as long as the VM arena lives.
#[test]
fn a_refused_import_goes_back_to_the_vm_arena() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(1024 * PAGE))).unwrap();
    let lowest = va.base();
    let mut heap = Arena::on_pages("heap", Size(16), &sim, 256, &mut va).unwrap();
    // The caller's mistake: it adds address space of the VM arena's own
    // (free tracts) as a span.
    heap.add(lowest, Size(8 * PAGE)).unwrap();
    // Too large for that span: an import, first fit from the lowest tract,
    // overlapping the span: refused.
    let r = heap.alloc(Size(16 * PAGE), Policy::InstantFit);
    assert!(r.is_err(), "{r:?}");
    heap.check().unwrap();
    let imported = heap.sizes().imported;
    let (allocated, committed) = (heap.source().allocated(), heap.source().committed());
    drop(heap);
    va.check().unwrap();
    assert_eq!(imported, Size(0));
    assert_eq!(
        (allocated, committed),
        (Size(0), Size(0)),
        "the refused import ({r:?}) stayed allocated and committed in the VM arena"
    );
}

/// (The maintainers' addition.) The tracts of a span given back unflushed
/// are unmapped, never kept spare: a spare tract stays mapped, with no TLB
/// flush to complete the importer's, so handing it out again would reissue
/// the range before its flush.
#[test]
fn an_unflushed_span_is_never_kept_spare() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cfg = VmArenaConfig::new(Size(1024 * PAGE)).spare_limit(64);
    let mut va = VmArena::new(&sim, cfg).unwrap();
    let mut heap = Arena::on_pages("thread heap", Size(16), &sim, 256, &mut va).unwrap();
    let obj = heap.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    heap.free_deferred(obj, Size(8 * PAGE)).unwrap();
    drop(heap);
    va.check().unwrap();
    assert_eq!((va.allocated(), va.spare()), (Size(0), Size(0)));
    // A span given back flushed is kept spare as usual.
    let mut heap = Arena::on_pages("thread heap", Size(16), &sim, 256, &mut va).unwrap();
    let obj = heap.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    heap.free(obj, Size(8 * PAGE)).unwrap();
    drop(heap);
    va.check().unwrap();
    assert_eq!(va.allocated(), Size(0));
    assert!(!va.spare().is_zero());
}
