//! An import the arena refuses because it overlaps a span of its own.
//!
//! The arena never gives such a range back (`Source::refused` tells the
//! source instead): a source that hands out a range twice, or a parent a
//! caller freed behind the arena's back, would then free a live span. A
//! `VmSource`, which only the arena holding it can give ranges back to,
//! knows the range is its fresh import and takes it back, so a caller who
//! adds spans inside the source's range cannot drain the source one
//! refused import at a time (found through `/dev/vmspace` by an outside
//! reviewer: the source VM's mapped bytes grew with every refused import
//! and stayed mapped after everything was freed). A parent arena keeps the
//! range allocated: it cannot tell that case from a caller's double free.

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy, SliceStore, Source};
use vmspace::sources::VmSource;
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::vm::Vm;
use vmspace_shim::sim::{at_offsets, SimBackend};
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::MmapBackend;

const PAGE: usize = 4096;

fn vm_source<P: PageOps + Clone>(
    ops: P,
    pages: usize,
    threshold: usize,
) -> VmSource<P, PageStore<P>> {
    let vm = Vm::reserve(ops.clone(), Size(pages * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(ops.clone(), Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(ops, Size(PAGE)).unwrap();
    let mut s = VmSource::new(vm, tags, hash).unwrap();
    s.set_flush_threshold(threshold).unwrap();
    s
}

/// Spans added at every other page of the source's range above the first
/// import: each larger import overlaps one, is refused, and is given back;
/// the source maps exactly what the arena imported after every step.
#[test]
fn a_vm_source_takes_back_an_import_that_overlaps_only_added_spans() {
    for threshold in [0, 4] {
        at_offsets(2, 4 << 20, |off, buf| {
            let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
            let mut src = vm_source(&sim, 64, threshold);
            let what = format!("offset {off}, threshold {threshold}");
            let base = src.vm().base().0;
            {
                let mut child: Arena<PageStore<MmapBackend>, _> =
                    Arena::on_pages("child", Size(PAGE), MmapBackend::new(), 1024, &mut src)
                        .unwrap();
                let one = child.alloc(Size(PAGE), Policy::InstantFit).unwrap();
                assert_eq!(one.0, base, "{what}");
                for k in 0..16 {
                    child.add(Addr(base + (2 + 2 * k) * PAGE), Size(PAGE)).unwrap();
                }
                for _ in 0..3 {
                    let e = child.alloc(Size(2 * PAGE), Policy::InstantFit).unwrap_err();
                    assert!(matches!(e, ArenaError::BadImport(_)), "{what}: {e:?}");
                    assert_eq!(child.sizes().imported, Size(PAGE), "{what}");
                    child.check().unwrap();
                }
                child.free(one, Size(PAGE)).unwrap();
                child.check().unwrap();
            }
            src.flush();
            src.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(src.vm().mapped(), Size(0), "{what}: refused imports left mapped");
            assert_eq!(src.space().sizes().allocated, Size(0), "{what}");
            let c = src.space().counters();
            assert_eq!(c.allocs, c.frees, "{what}");
            // Nothing lost: the whole VM imports again.
            let all = src.import(Size(64 * PAGE), Size(PAGE)).unwrap();
            src.release(all).unwrap();
        });
    }
}

type Shared<'b> = SyncArena<SpinLock, NoWait, SliceStore<'b>, NoSource>;

fn shared_parent<'b>(bufs: &'b mut (Vec<u8>, Vec<u8>), base: usize, pages: usize) -> Shared<'b> {
    let (t, h) = bufs;
    let mut a =
        Arena::new("parent", Size(PAGE), SliceStore::new(t), SliceStore::new(h), NoSource).unwrap();
    a.add(Addr(base), Size(pages * PAGE)).unwrap();
    SyncArena::new(a)
}

fn bufs() -> (Vec<u8>, Vec<u8>) {
    (vec![0u8; 1 << 16], vec![0u8; 1 << 14])
}

fn child_of<'p, 'b>(parent: &'p Shared<'b>) -> Arena<PageStore<MmapBackend>, &'p Shared<'b>> {
    Arena::on_pages("child", Size(PAGE), MmapBackend::new(), 1024, parent).unwrap()
}

/// A parent arena keeps a refused import allocated (the documented cost
/// of adding to a child what its parent holds: `vmspace_arena_add`'s doc),
/// and hands none of it out again while the child lives.
#[test]
fn a_parent_arena_keeps_an_import_that_overlaps_added_spans() {
    let base = 0x100_0000;
    let mut b = bufs();
    let parent = shared_parent(&mut b, base, 64);
    let mut child = child_of(&parent);
    let one = child.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    child.add(Addr(base + 2 * PAGE), Size(PAGE)).unwrap();
    let e = child.alloc(Size(2 * PAGE), Policy::FirstFit).unwrap_err();
    let ArenaError::BadImport(kept) = e else { panic!("{e:?}") };
    assert_eq!(parent.with(|a| a.sizes().allocated), Size(3 * PAGE));
    parent.check().unwrap();
    child.check().unwrap();
    child.free(one, Size(PAGE)).unwrap();
    drop(child);
    assert_eq!(parent.with(|a| a.lookup(kept.base())), Some((kept, kept.size())));
    parent.free(kept.base(), kept.size()).unwrap();
    parent.check().unwrap();
}

/// A source that hands out again a span it gave the arena (here a parent
/// whose caller freed the child's span behind its back): the arena refuses
/// it and does not give it back, which would free the child's live span in
/// the parent a second time.
#[test]
fn an_import_overlapping_an_imported_span_stays_taken_in_the_source() {
    let base = 0x200_0000;
    let mut b = bufs();
    let parent = shared_parent(&mut b, base, 4);
    let mut child = child_of(&parent);
    let one = child.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    let span = Range::from_size(one, Size(4 * PAGE)).unwrap();
    // The caller's double free, through the parent.
    parent.free(one, Size(4 * PAGE)).unwrap();
    let e = child.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap_err();
    assert_eq!(e, ArenaError::BadImport(span));
    // Taken again in the parent, and kept so: the child's span is not
    // handed out a third time.
    assert_eq!(parent.with(|a| a.sizes().allocated), Size(4 * PAGE));
    let mut p = &parent;
    assert!(
        p.import(Size(PAGE), Size(PAGE)).is_err(),
        "the parent handed out the child's live span"
    );
    child.check().unwrap();
    parent.check().unwrap();
}
