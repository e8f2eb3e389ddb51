//! A refused constructor gives back what it took that holds the caller's
//! state ([`Refused`]): an arena's source, a `VmSource`'s VM, the arena a
//! `SyncArena` was to share. Refused for a bad argument, and refused because
//! a store could not grow, at every map the construction makes.

use std::cell::Cell;

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy, Refused, Source};
use vmspace::qcache::{QCacheConfig, MAX_CLASSES};
use vmspace::sources::VmSource;
use vmspace::sync::{NoWait, SpinLock, SyncArena, Wait};
use vmspace::vm::Vm;
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};

const PAGE: usize = 4096;

/// A source that counts the calls made to it, questions included, and
/// carries an identity.
struct Counted {
    id: u64,
    calls: u32,
    questions: Cell<u32>,
}

impl Counted {
    fn new(id: u64) -> Self {
        Counted { id, calls: 0, questions: Cell::new(0) }
    }
}

impl Source for Counted {
    fn quantum(&self) -> Size {
        self.questions.set(self.questions.get() + 1);
        Size(PAGE)
    }
    fn can_import(&self) -> bool {
        self.questions.set(self.questions.get() + 1);
        true
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        self.calls += 1;
        Err(ArenaError::NoSpace { size: size.0 })
    }
    fn release(&mut self, _range: Range) -> Result<(), ArenaError> {
        self.calls += 1;
        Ok(())
    }
}

#[test]
fn arena_new_gives_the_source_back_for_a_bad_argument() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let stores = || {
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap())
    };
    for (quantum, tag_bytes) in [(3, 16 * PAGE), (1 << 28, 16 * PAGE), (0, 16 * PAGE)] {
        let (_, h) = stores();
        let t = PageStore::new(&sim, Size(tag_bytes)).unwrap();
        let r = Arena::new("r", Size(quantum), t, h, Counted::new(7));
        let Err(refused) = r else { panic!("quantum {quantum}, {tag_bytes} tag bytes: made") };
        assert!(matches!(refused.error(), ArenaError::InvalidArgument(_)), "{refused}");
        let back = refused.into_inner();
        let asked = back.questions.get();
        assert_eq!((back.id, back.calls, asked), (7, 0, 0), "the same source, never asked");
    }
    // Refused for the arena's own arguments or stores: not even asked.
    let r = Arena::on_pages("r", Size(16), &sim, 1, Counted::new(8));
    let back = r.err().expect("one tag is too few").into_inner();
    assert_eq!((back.id, back.calls, back.questions.get()), (8, 0, 0));
    let inj = FaultInjector::new(&sim);
    inj.only(&[Op::Map]);
    inj.fail_nth(1);
    let r = Arena::on_pages("r", Size(16), &inj, 4096, Counted::new(9));
    let back = r.err().expect("the tag store's first map fails").into_inner();
    assert_eq!((back.id, back.calls, back.questions.get()), (9, 0, 0));
    assert_eq!(sim.stats().reservations, 0, "the refused stores were released");
}

/// An arena over a `VmSource`, refused because a store cannot map (its
/// first map, then its second, ...): the `VmSource`, its reservation
/// whole, comes back each time, and serves the arena made at last.
#[test]
fn arena_on_pages_gives_a_vm_source_back_at_every_failing_map() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let (t, h) =
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap());
    let mut source = VmSource::new(vm, t, h).unwrap();
    let range = source.vm().range();
    for n in 1.. {
        let inj = FaultInjector::new(&sim);
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        match Arena::on_pages("child", Size(PAGE), &inj, 4096, source) {
            Ok(mut a) => {
                assert!(n > 2, "both stores' first maps were reached: made at {n}");
                let x = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
                assert!(range.contains(&Range::from_size(x, Size(8 * PAGE)).unwrap()));
                a.free(x, Size(8 * PAGE)).unwrap();
                a.check().unwrap();
                return;
            }
            Err(refused) => {
                assert!(matches!(refused.error(), ArenaError::Backing(_)), "{refused}");
                source = refused.into_inner();
            }
        }
        assert_eq!((source.vm().range(), source.vm().mapped()), (range, Size(0)), "map {n}");
        source.check().unwrap();
    }
}

#[test]
fn vm_source_new_gives_the_vm_back_mapped_pages_and_all() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let range = vm.range();
    let page = Range::from_size(vm.base(), Size(PAGE)).unwrap();
    vm.map(page).unwrap();
    // SAFETY: the page is mapped read-write and ours.
    unsafe { *(page.base().0 as *mut u8) = 0x5a };
    let (t, h) =
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap());
    let refused = VmSource::new(vm, t, h).err().expect("a mapped VM is refused");
    assert!(matches!(refused.error(), ArenaError::InvalidArgument(_)));
    let mut vm = refused.into_inner();
    assert_eq!((vm.range(), vm.mapped()), (range, Size(PAGE)), "the same VM, still mapped");
    // SAFETY: still mapped: the check above.
    assert_eq!(unsafe { *(page.base().0 as *const u8) }, 0x5a, "its contents kept");
    vm.unmap(page).unwrap();
    vm.check().unwrap();
}

#[test]
fn vm_source_new_gives_the_vm_back_at_every_failing_store_map() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let range = vm.range();
    let mut refusals = 0;
    for n in 1..=8 {
        let inj = FaultInjector::new(&sim);
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        let (t, h) = (
            PageStore::new(&inj, Size(16 * PAGE)).unwrap(),
            PageStore::new(&inj, Size(PAGE)).unwrap(),
        );
        vm = match VmSource::new(vm, t, h) {
            Ok(mut s) => {
                let a = s.import(Size(4 * PAGE), Size(PAGE)).unwrap();
                s.release(a).unwrap();
                s.into_vm().unwrap_or_else(|_| panic!("nothing imported"))
            }
            Err(refused) => {
                refusals += 1;
                assert!(matches!(refused.error(), ArenaError::Backing(_)), "{refused}");
                refused.into_inner()
            }
        };
        assert_eq!((vm.range(), vm.mapped()), (range, Size(0)), "map {n}");
        vm.check().unwrap();
    }
    assert!(refusals >= 2, "both stores' first maps were reached: {refusals}");
}

type Shared<'a, 'b> =
    SyncArena<SpinLock, NoWait, PageStore<&'a FaultInjector<&'b SimBackend<'b>>>, NoSource>;

/// The arena given to a `SyncArena` with caches that cannot be made comes
/// back with its spans and allocations, ready to use.
#[test]
fn with_quantum_caches_gives_the_arena_back_with_its_allocations() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    let mut a = Arena::on_pages("shared", Size(16), &inj, 1 << 12, NoSource).unwrap();
    a.add(Addr(0x10_0000), Size(0x10_0000)).unwrap();
    let x = a.alloc(Size(48), Policy::InstantFit).unwrap();
    let h = a.alloc_handle(Size(32), Policy::InstantFit).unwrap();
    let before = a.sizes();
    // A bad argument.
    let store = PageStore::new(&inj, Size(1 << 20)).unwrap();
    let r: Result<Shared<'_, '_>, _> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(MAX_CLASSES + 1, store));
    let refused: Refused<_> = r.err().expect("more classes than MAX_CLASSES");
    assert!(matches!(refused.error(), ArenaError::InvalidArgument(_)));
    a = refused.into_inner();
    assert_eq!(a.sizes(), before);
    // The caches' store failing at each of its maps.
    let mut refusals = 0;
    for n in 1..=4 {
        let store = PageStore::new(&inj, Size(1 << 20)).unwrap();
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        let r: Result<Shared<'_, '_>, _> =
            SyncArena::with_quantum_caches(a, QCacheConfig::new(4, store));
        inj.clear();
        a = match r {
            Ok(s) => {
                let y = s.alloc(Size(16), Policy::InstantFit, Wait::No).unwrap();
                s.free(y, Size(16)).unwrap();
                s.reclaim();
                s.into_inner().unwrap()
            }
            Err(refused) => {
                refusals += 1;
                assert!(matches!(refused.error(), ArenaError::Backing(_)), "{refused}");
                refused.into_inner()
            }
        };
        assert_eq!(a.sizes(), before, "map {n}");
        a.check().unwrap();
    }
    assert!(refusals >= 1, "the caches' store was made to fail");
    a.free(x, Size(48)).unwrap();
    a.free_handle(h).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
}

/// `?` still reads a refusal as its error, and `unwrap` prints it whatever
/// the value given back.
#[test]
fn a_refusal_converts_to_its_error() {
    fn make(q: usize) -> Result<(), ArenaError> {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        Arena::on_pages("q", Size(q), &sim, 4096, NoSource)?;
        Ok(())
    }
    assert!(matches!(make(3), Err(ArenaError::InvalidArgument(_))));
    assert_eq!(make(16), Ok(()));
    let refused = Arena::<PageStore<&SimBackend<'_>>, _>::on_pages(
        "q",
        Size(3),
        &SimBackend::new(&mut vec![0u8; 1 << 20], PAGE).unwrap(),
        4096,
        Counted::new(1),
    )
    .err()
    .unwrap();
    assert_eq!(format!("{refused:?}"), format!("Refused {{ error: {:?}, .. }}", refused.error()));
    assert_eq!(refused.to_string(), refused.error().to_string());
}
