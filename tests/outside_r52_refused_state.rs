//! Round 52 (outside review): a refused `Arena::new`/`on_pages` gives back a
//! source that holds state (a `KeepFree` with kept spans, a `VmSource` with
//! unflushed give-backs, a `&RefCell` parent with imports outstanding)
//! exactly as it was, at every failing map; nothing leaks.

use std::cell::RefCell;

use vmspace::arena::{Arena, ArenaError, PageStore, Policy, Source};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};

const PAGE: usize = 4096;

type Vms<'a> = VmSource<&'a SimBackend<'a>, PageStore<&'a SimBackend<'a>>>;

fn vm_source<'a>(sim: &'a SimBackend<'a>, pages: usize) -> Vms<'a> {
    let vm = Vm::reserve(sim, Size(pages * PAGE), Size(PAGE)).unwrap();
    let t = PageStore::new(sim, Size(16 * PAGE)).unwrap();
    let h = PageStore::new(sim, Size(PAGE)).unwrap();
    VmSource::new(vm, t, h).unwrap()
}

/// Everything observable of a `VmSource` and the backend under it.
fn vms_state(s: &Vms<'_>, sim: &SimBackend<'_>) -> String {
    let st = sim.stats();
    format!(
        "{:?} {:?} {:?} mapped={:?} thr={} sim: res={} mapped={} unflushed={} flushes={}",
        s.space().sizes(),
        s.space().counters(),
        s.vm().range(),
        s.vm().mapped(),
        s.flush_threshold(),
        st.reservations,
        st.mapped_pages,
        st.unflushed_pages,
        st.flushes
    )
}

/// A `KeepFree` holding spans keeps every one of them (and its counts)
/// through refusals for a bad quantum, a small tag store, too many tags,
/// and a store map failing at each position; the spans are then reused.
#[test]
fn keep_free_kept_spans_survive_every_refusal() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut kf: KeepFree<Vms<'_>, 4> = KeepFree::new(vm_source(&sim, 256), Size(4 * PAGE));
    let a = kf.import(Size(4 * PAGE), Size(4 * PAGE)).unwrap();
    let b = kf.import(Size(8 * PAGE), Size(4 * PAGE)).unwrap();
    kf.release(a).unwrap();
    kf.release(b).unwrap();
    assert_eq!(kf.kept().len(), 2, "both kept");
    let kept: Vec<Range> = kf.kept().to_vec();
    let counts = kf.counts();
    let inner = vms_state(kf.inner(), &sim);
    let same = |kf: &KeepFree<Vms<'_>, 4>, what: &str| {
        assert_eq!(kf.kept(), &kept[..], "{what}: kept spans");
        assert_eq!(kf.counts(), counts, "{what}: counts");
        assert_eq!(vms_state(kf.inner(), &sim), inner, "{what}: the source below");
        kf.check().unwrap();
    };
    // Bad arguments.
    for q in [0usize, 3, 1 << 28, usize::MAX, 1 << (usize::BITS - 1)] {
        let r = Arena::on_pages("k", Size(q), &sim, 4096, kf);
        let refused = r.err().unwrap_or_else(|| panic!("quantum {q:#x} made"));
        assert!(matches!(refused.error(), ArenaError::InvalidArgument(_)), "{refused}");
        kf = refused.into_inner();
        same(&kf, &format!("quantum {q:#x}"));
    }
    for max_tags in [0, vmspace::arena::MIN_TAGS - 1, vmspace::arena::MAX_TAGS + 1, usize::MAX] {
        let refused = Arena::on_pages("k", Size(PAGE), &sim, max_tags, kf).err().expect("refused");
        kf = refused.into_inner();
        same(&kf, &format!("max_tags {max_tags}"));
    }
    // A store failing at each of its maps.
    let inj = FaultInjector::new(&sim);
    let mut made = None;
    for n in 1..=16 {
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        match Arena::on_pages("k", Size(PAGE), &inj, 4096, kf) {
            Ok(arena) => {
                inj.clear();
                made = Some((n, arena));
                break;
            }
            Err(refused) => {
                assert!(matches!(refused.error(), ArenaError::Backing(_)), "{refused}");
                kf = refused.into_inner();
                same(&kf, &format!("map {n}"));
            }
        }
    }
    let (n, mut arena) = made.expect("made once no map fails");
    assert!(n > 2, "refused at the first two maps at least: made at {n}");
    // The kept span serves the arena's first import.
    let x = arena.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    assert_eq!(arena.source().counts().reused, counts.reused + 1, "a kept span was reused");
    assert!(kept.iter().any(|k| k.contains(&Range::from_size(x, Size(4 * PAGE)).unwrap())));
    arena.free(x, Size(4 * PAGE)).unwrap();
    arena.check().unwrap();
    drop(arena);
    assert_eq!(sim.stats().reservations, 0, "all gone");
}

/// A `VmSource` holding give-backs unflushed (batched) comes back from a
/// refused `on_pages` without a flush and with the same books, at every
/// failing map: the promise "untouched".
#[test]
fn vm_source_with_unflushed_give_backs_comes_back_unflushed() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut src = vm_source(&sim, 256);
    src.set_flush_threshold(1000).unwrap();
    {
        let mut child = Arena::on_pages("c", Size(PAGE), &sim, 4096, &mut src).unwrap();
        let x = child.alloc(Size(16 * PAGE), Policy::InstantFit).unwrap();
        let y = child.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
        child.free(x, Size(16 * PAGE)).unwrap();
        child.free_deferred(y, Size(8 * PAGE)).unwrap();
        // Dropped with `y` unflushed: its span goes back unflushed.
    }
    assert!(!src.space().sizes().unflushed.is_zero(), "some give-back waits for a flush");
    assert!(sim.stats().unflushed_pages > 0);
    let before = vms_state(&src, &sim);
    // A bad quantum through `Arena::new`.
    for q in [3usize, 1 << 28] {
        let t = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
        let h = PageStore::new(&sim, Size(PAGE)).unwrap();
        src = Arena::new("c", Size(q), t, h, src).err().expect("refused").into_inner();
        assert_eq!(vms_state(&src, &sim), before, "quantum {q}");
    }
    let inj = FaultInjector::new(&sim);
    for n in 1..=16u64 {
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        let r = Arena::on_pages("c", Size(PAGE), &inj, 4096, src);
        inj.clear();
        match r {
            Ok(mut a) => {
                assert!(n > 2, "made at {n}");
                assert_eq!(
                    a.source().space().sizes(),
                    {
                        let mut s = a.source().space().sizes();
                        s.unflushed = Size(24 * PAGE);
                        s
                    },
                    "still unflushed"
                );
                assert_eq!(a.source_mut().flush().0, 24 * PAGE, "the give-backs still waited");
                drop(a);
                assert_eq!(sim.stats().reservations, 0);
                return;
            }
            Err(refused) => {
                src = refused.into_inner();
                // The stores' reservations were released; the source's untouched.
                assert_eq!(vms_state(&src, &sim), before, "map {n}");
                src.check().unwrap();
            }
        }
    }
    panic!("never made");
}

/// A parent arena shared through `&RefCell` with another child's import
/// outstanding: refusals of a second child touch none of its books.
#[test]
fn refcell_parent_untouched_by_refused_children() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut p =
        Arena::on_pages("parent", Size(PAGE), &sim, 4096, vmspace::arena::NoSource).unwrap();
    p.add(Addr(0x1000_0000), Size(64 * PAGE)).unwrap();
    let parent = RefCell::new(p);
    let mut c1 = Arena::on_pages("c1", Size(PAGE), &sim, 4096, &parent).unwrap();
    let x = c1.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    let seen = |p: &RefCell<Arena<PageStore<&SimBackend<'_>>, vmspace::arena::NoSource>>| {
        let p = p.borrow();
        format!("{:?} {:?} {:?} {}", p.sizes(), p.counters(), p.tags_in_use(), p.live())
    };
    let before = seen(&parent);
    let inj = FaultInjector::new(&sim);
    let mut refusals = 0;
    for n in 1..=16u64 {
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        let r = Arena::on_pages("c2", Size(PAGE), &inj, 4096, &parent);
        inj.clear();
        match r {
            Ok(mut c2) => {
                let y = c2.alloc(Size(PAGE), Policy::InstantFit).unwrap();
                c2.free(y, Size(PAGE)).unwrap();
                break;
            }
            Err(refused) => {
                refusals += 1;
                let back: &RefCell<_> = refused.into_inner();
                assert!(std::ptr::eq(back, &parent), "the same parent back");
                assert_eq!(seen(&parent), before, "map {n}");
            }
        }
    }
    assert!(refusals >= 2, "{refusals}");
    // While the parent is borrowed elsewhere, a refusal for the child's own
    // quantum still gives the reference back and borrows nothing.
    {
        let held = parent.borrow_mut();
        let r = Arena::on_pages("c3", Size(3), &sim, 4096, &parent);
        assert!(matches!(r.err().map(|e| e.error()), Some(ArenaError::InvalidArgument(_))));
        drop(held);
    }
    c1.free(x, Size(4 * PAGE)).unwrap();
    drop(c1);
    assert_eq!(parent.borrow().sizes().allocated, Size(0));
    drop(parent);
    assert_eq!(sim.stats().reservations, 0);
}
