//! A give-back whose unmap fails part way, through both sources over
//! memory: the source puts the range back read-write (the range stays the
//! importer's, usable), or, when that fails too, keeps it and says
//! `ArenaError::Stranded`, and the importing arena drops the span instead
//! of handing it out again. Each at several buffer offsets, unbatched and
//! batched.

use vmspace::arena::{ArenaError, Policy, Source};
use vmspace::sources::IMPORT_OWNER;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Op, PageOps, Range, Size};

mod outside_stacked_sources;

use outside_stacked_sources::{importer, read_write, stacked, PAGE};

const OFFSETS: [usize; 4] = [0, PAGE, 5 * PAGE + 64, 64 << 10];

/// The next unmap fails part way (it changes a prefix of its range, as
/// `munmap` may at `vm.max_map_count`); with `stuck`, so does the
/// put-back's protect (`inner` sees the part-way change's own protect
/// first, then the put-back).
fn fail_the_give_back<A: PageOps, B: PageOps>(
    outer: &FaultInjector<A>,
    inner: &FaultInjector<B>,
    stuck: bool,
) {
    outer.only(&[Op::Unmap]);
    outer.set_shape(FaultShape::PartWay);
    outer.fail_nth(1);
    if stuck {
        inner.only(&[Op::Protect]);
        inner.fail_nth(2);
    }
}

fn clear<A: PageOps, B: PageOps>(outer: &FaultInjector<A>, inner: &FaultInjector<B>) {
    assert_eq!(outer.changed_part_way(), 1, "the unmap did not fail part way");
    outer.clear();
    inner.clear();
}

#[test]
fn a_vm_source_puts_a_failed_release_back_or_strands_it() {
    for offset in OFFSETS {
        for batch in [0, 1, 64] {
            for stuck in [false, true] {
                let what = format!("offset {offset:#x}, batch {batch}, stuck {stuck}");
                stacked!(let sim, inner, outer, mut src = 4 << 20, offset, 64 * PAGE);
                src.set_flush_threshold(batch).unwrap();
                let r = src.import(Size(8 * PAGE), Size(PAGE)).unwrap();
                fail_the_give_back(&outer, &inner, stuck);
                let e = src.release(r).unwrap_err();
                clear(&outer, &inner);
                src.check().unwrap();
                // Still imported either way: taken in the source, mapped.
                assert_eq!(src.space().lookup(r.base()), Some((r, r.size())), "{what}");
                assert_eq!(src.vm().mapped(), r.size(), "{what}");
                if stuck {
                    assert!(
                        matches!(e, ArenaError::Stranded { range, .. } if range == r),
                        "{what}: {e:?}"
                    );
                    assert!(!read_write(&sim, r), "{what}: stranded, yet all read-write");
                } else {
                    assert!(matches!(e, ArenaError::Vm(_)), "{what}: {e:?}");
                    assert!(read_write(&sim, r), "{what}: not put back read-write");
                    // The caller's still: it can give it back again.
                    src.release(r).unwrap();
                    src.flush();
                    assert!(src.space().lookup(r.base()).is_none(), "{what}");
                    src.check().unwrap();
                }
            }
        }
    }
}

/// Drive an arena over `source` (whose pages `sim` backs, behind `outer`
/// and `inner`) through a failed give-back; the second allocation must be
/// read-write, and a stranded span must be gone from the arena.
fn arena_after_a_failed_give_back<S: Source, A: PageOps, B: PageOps>(
    source: S,
    sim: &SimBackend,
    outer: &FaultInjector<A>,
    inner: &FaultInjector<B>,
    stuck: bool,
    what: &str,
) -> Range {
    importer!(let mut a = source, 16 << 10, 4 << 10);
    let x = a.alloc(Size(8 * PAGE), Policy::FirstFit).unwrap();
    let first = Range::from_size(x, Size(8 * PAGE)).unwrap();
    fail_the_give_back(outer, inner, stuck);
    // The free itself succeeds: the give-back is the arena's business.
    a.free(x, Size(8 * PAGE)).unwrap();
    clear(outer, inner);
    a.check().unwrap();
    let c = a.counters();
    assert_eq!((c.exports, c.export_failures), (0, 1), "{what}: {c:?}");
    let z = a.sizes();
    if stuck {
        assert_eq!(a.span_count(), 0, "{what}: the stranded span is still listed");
        assert_eq!((z.total, z.free, z.imported), (Size(0), Size(0), Size(0)), "{what}");
    } else {
        assert_eq!(a.span_count(), 1, "{what}: a span put back must stay listed");
        assert_eq!(z.imported, Size(8 * PAGE), "{what}");
    }
    let y = a.alloc(Size(8 * PAGE), Policy::FirstFit).unwrap();
    let second = Range::from_size(y, Size(8 * PAGE)).unwrap();
    assert!(read_write(sim, second), "{what}: an allocation handed out pages not read-write");
    assert_eq!(y == x, !stuck, "{what}: reused {y} (first {x})");
    a.free(y, Size(8 * PAGE)).unwrap();
    a.check().unwrap();
    first
}

#[test]
fn an_arena_over_a_vm_source_never_reuses_a_stranded_span() {
    for offset in OFFSETS {
        for batch in [0, 64] {
            for stuck in [false, true] {
                let what = format!("offset {offset:#x}, batch {batch}, stuck {stuck}");
                stacked!(let sim, inner, outer, mut src = 4 << 20, offset, 64 * PAGE);
                src.set_flush_threshold(batch).unwrap();
                let first =
                    arena_after_a_failed_give_back(&mut src, &sim, &outer, &inner, stuck, &what);
                src.flush();
                src.check().unwrap();
                // The source keeps a stranded range imported for good.
                let kept = src.space().lookup(first.base());
                assert_eq!(kept.is_some(), stuck, "{what}: {kept:?}");
            }
        }
    }
}

#[test]
fn an_arena_over_a_vm_arena_never_reuses_a_stranded_span() {
    for offset in OFFSETS {
        for stuck in [false, true] {
            let what = format!("offset {offset:#x}, stuck {stuck}");
            stacked!(let sim, inner, outer = 4 << 20, offset);
            let mut vma = VmArena::new(&outer, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
            let first =
                arena_after_a_failed_give_back(&mut vma, &sim, &outer, &inner, stuck, &what);
            vma.check().unwrap();
            // Stranded tracts stay allocated to the importer's owner.
            let owner = vma.tract(first.base()).map(|t| t.owner);
            assert_eq!(owner == Some(IMPORT_OWNER), stuck, "{what}: {owner:?}");
        }
    }
}
