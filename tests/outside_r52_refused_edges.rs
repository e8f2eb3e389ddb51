//! Round 52 (outside review): refusals at the edges: sources that panic or
//! answer odd quanta, `VmSource::new` with deferred unmaps and huge pages,
//! `SyncArena` caches refused over an arena with imports and deferred
//! frees, and `Refused` as a `std::error::Error`.

use std::error::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace::arena::{Arena, ArenaError, PageStore, Policy, Source};
use vmspace::qcache::{QCacheConfig, MAX_CLASSES, MAX_QUANTUM};
use vmspace::sources::VmSource;
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::vm::Vm;
use vmspace::{Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};

const PAGE: usize = 4096;

/// A source with a settable quantum, that may panic in its questions, and
/// counts every call made to it.
struct Odd {
    quantum: usize,
    can: bool,
    panic_quantum: bool,
    panic_can: bool,
    calls: std::cell::Cell<u32>,
}

impl Odd {
    fn new(quantum: usize, can: bool) -> Self {
        Odd { quantum, can, panic_quantum: false, panic_can: false, calls: Default::default() }
    }
}

impl Source for Odd {
    fn quantum(&self) -> Size {
        assert!(!self.panic_quantum, "quantum panics");
        Size(self.quantum)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        self.calls.set(self.calls.get() + 1);
        Err(ArenaError::NoSpace { size: size.0 })
    }
    fn release(&mut self, _range: Range) -> Result<(), ArenaError> {
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }
    fn can_import(&self) -> bool {
        assert!(!self.panic_can, "can_import panics");
        self.can
    }
}

#[test]
fn source_quanta_at_their_edges() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    // Refused: not a power of two, and the source can import.
    for q in [0, 3, PAGE + 1, usize::MAX, (1 << 27) + 1] {
        let r = Arena::on_pages("o", Size(16), &sim, 4096, Odd::new(q, true));
        let back = r.err().unwrap_or_else(|| panic!("source quantum {q:#x} accepted"));
        assert!(matches!(back.error(), ArenaError::InvalidArgument(_)));
        let back = back.into_inner();
        assert_eq!((back.quantum, back.calls.get()), (q, 0));
    }
    // Accepted: a source that cannot import, whatever its quantum; a power
    // of two as large as a usize holds.
    for (q, can) in [(3, false), (0, false), (1 << (usize::BITS - 1), true), (1, true)] {
        let a = Arena::on_pages("o", Size(16), &sim, 4096, Odd::new(q, can));
        let a = a.unwrap_or_else(|e| panic!("quantum {q:#x}, can {can}: {e}"));
        assert_eq!(a.source().calls.get(), 0);
    }
    assert_eq!(sim.stats().reservations, 0, "every store released");
}

/// A source panicking in `quantum` or `can_import` unwinds out of the
/// constructor with its own message; the stores already reserved are
/// released; one that cannot import is never asked its quantum.
#[test]
fn panicking_source_questions_unwind_cleanly() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for (pq, pc, msg) in [(true, false, "quantum panics"), (false, true, "can_import panics")] {
        let mut s = Odd::new(PAGE, true);
        (s.panic_quantum, s.panic_can) = (pq, pc);
        let r = catch_unwind(AssertUnwindSafe(|| Arena::on_pages("p", Size(16), &sim, 4096, s)));
        let payload = r.err().expect("panicked");
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        assert!(text.contains(msg), "{text}");
        assert_eq!(sim.stats().reservations, 0, "{msg}: stores released while unwinding");
        // Through `Arena::new`, the stores given.
        let mut s = Odd::new(PAGE, true);
        (s.panic_quantum, s.panic_can) = (pq, pc);
        let t = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
        let h = PageStore::new(&sim, Size(PAGE)).unwrap();
        assert!(catch_unwind(AssertUnwindSafe(|| Arena::new("p", Size(16), t, h, s))).is_err());
        assert_eq!(sim.stats().reservations, 0, "{msg}: given stores released");
    }
    let mut s = Odd::new(PAGE, false);
    s.panic_quantum = true;
    assert!(Arena::on_pages("p", Size(16), &sim, 4096, s).is_ok(), "quantum not asked");
}

/// `VmSource::new` over a VM with deferred unmaps: refused for a mapped
/// page, nothing flushed (the VM as it was); refused at a store's map,
/// the VM flushed and able to map those pages again.
#[test]
fn vm_source_new_with_deferred_unmaps() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let lo = Range::from_size(vm.base(), Size(4 * PAGE)).unwrap();
    let hi = Range::from_size(vm.base().checked_add(Size(8 * PAGE)).unwrap(), Size(PAGE)).unwrap();
    vm.map(lo).unwrap();
    vm.map(hi).unwrap();
    vm.unmap_deferred(lo).unwrap();
    let before = sim.stats();
    let t = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let h = PageStore::new(&sim, Size(PAGE)).unwrap();
    let refused = VmSource::new(vm, t, h).err().expect("a page is mapped");
    vm = refused.into_inner();
    let after = sim.stats();
    assert_eq!((after.unflushed_pages, after.flushes), (before.unflushed_pages, before.flushes));
    assert_eq!((vm.mapped(), after.reservations), (Size(PAGE), before.reservations));
    vm.unmap_deferred(hi).unwrap();
    // Now wholly unmapped, five pages deferred: each store map failing.
    let inj = FaultInjector::new(&sim);
    let mut refusals = 0;
    for n in 1..=8 {
        let res = sim.stats().reservations;
        let t = PageStore::new(&inj, Size(16 * PAGE)).unwrap();
        let h = PageStore::new(&inj, Size(PAGE)).unwrap();
        inj.only(&[Op::Map]);
        inj.fail_nth(n);
        let r = VmSource::new(vm, t, h);
        inj.clear();
        vm = match r {
            Ok(s) => s.into_vm().unwrap_or_else(|_| panic!("nothing imported")),
            Err(refused) => {
                refusals += 1;
                let e = refused.error();
                assert!(refused.source().is_some(), "a backing error has a source: {e:?}");
                refused.into_inner()
            }
        };
        let st = sim.stats();
        assert_eq!((st.unflushed_pages, st.reservations), (0, res), "map {n}");
        assert_eq!(vm.mapped(), Size(0));
    }
    assert!(refusals >= 2);
    vm.map(lo).unwrap();
    vm.map(hi).unwrap();
    vm.check().unwrap();
    drop(vm);
    assert_eq!(sim.stats().reservations, 0);
}

type Shared<'a, 'b> = SyncArena<
    SpinLock,
    NoWait,
    PageStore<&'a FaultInjector<&'b SimBackend<'b>>>,
    VmSource<
        &'a FaultInjector<&'b SimBackend<'b>>,
        PageStore<&'a FaultInjector<&'b SimBackend<'b>>>,
    >,
>;

/// An arena over a `VmSource`, with an import outstanding and a deferred
/// free unflushed, refused caches for every reason: it comes back with its
/// books, its source's and the backend's as they were.
#[test]
fn refused_caches_leave_an_importing_arena_as_it_was() {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    let vm = Vm::reserve(&inj, Size(256 * PAGE), Size(PAGE)).unwrap();
    let src = VmSource::new(
        vm,
        PageStore::new(&inj, Size(16 * PAGE)).unwrap(),
        PageStore::new(&inj, Size(PAGE)).unwrap(),
    )
    .unwrap();
    let mut a = Arena::on_pages("imp", Size(64), &inj, 4096, src).unwrap();
    let x = a.alloc(Size(3 * PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(5 * PAGE), Policy::InstantFit).unwrap();
    a.free_deferred(y, Size(5 * PAGE)).unwrap();
    let state = |a: &Arena<_, _>| {
        let s: &VmSource<_, _> = a.source();
        format!(
            "{:?} {:?} {} {:?} | {:?} {:?} {:?}",
            a.sizes(),
            a.counters(),
            a.live(),
            a.tags_in_use(),
            s.space().sizes(),
            s.space().counters(),
            s.vm().mapped()
        )
    };
    let before = state(&a);
    let sim_before = (sim.stats().mapped_pages, sim.stats().unflushed_pages, sim.stats().flushes);
    let mut n_refused = 0;
    for (classes, fail) in [(0, 0), (MAX_CLASSES + 1, 0), (usize::MAX, 0), (4, 1), (4, 2), (4, 3)] {
        let store = PageStore::new(&inj, Size(1 << 20)).unwrap();
        if fail > 0 {
            inj.only(&[Op::Map]);
            inj.fail_nth(fail);
        }
        let r: Result<Shared<'_, '_>, _> = SyncArena::with_lock_and_caches(
            a,
            SpinLock::new(),
            NoWait::default(),
            QCacheConfig::new(classes, store),
        );
        inj.clear();
        a = match r {
            Ok(s) => s.into_inner().unwrap(),
            Err(refused) => {
                n_refused += 1;
                refused.into_inner()
            }
        };
        assert_eq!(state(&a), before, "classes {classes}, map {fail}");
        let st = sim.stats();
        assert_eq!(
            (st.mapped_pages, st.unflushed_pages, st.flushes),
            sim_before,
            "classes {classes}"
        );
        a.check().unwrap();
    }
    assert!(n_refused >= 4, "{n_refused}");
    // Caches for a quantum above MAX_QUANTUM: refused, the arena back.
    let mut big =
        Arena::on_pages("big", Size(MAX_QUANTUM * 2), &inj, 4096, vmspace::arena::NoSource)
            .unwrap();
    big.add(vmspace::Addr(1 << 40), Size(MAX_QUANTUM * 8)).unwrap();
    let z = big.alloc(Size(MAX_QUANTUM * 2), Policy::InstantFit).unwrap();
    let store = PageStore::new(&inj, Size(1 << 20)).unwrap();
    let r: Result<SyncArena<SpinLock, NoWait, _, _>, _> =
        SyncArena::with_quantum_caches(big, QCacheConfig::new(1, store));
    let mut big = r.err().expect("quantum above MAX_QUANTUM").into_inner();
    assert_eq!(big.live(), 1);
    big.free(z, Size(MAX_QUANTUM * 2)).unwrap();
    drop(big);
    a.free(x, Size(3 * PAGE)).unwrap();
    a.flushed();
    drop(a);
    assert_eq!(sim.stats().reservations, 0);
}

/// A refusal through `?` into `Box<dyn Error>`: its message is the error's,
/// and its source chain is the error's own (a backing error's cause).
#[test]
fn refused_is_an_error_with_the_errors_chain() {
    fn make(sim: &SimBackend<'_>, q: usize, fail: u64) -> Result<(), Box<dyn Error>> {
        let inj = FaultInjector::new(sim);
        if fail > 0 {
            inj.only(&[Op::Map]);
            inj.fail_nth(fail);
        }
        Arena::on_pages("e", Size(q), &inj, 4096, Odd::new(PAGE, true))?;
        Ok(())
    }
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let e = make(&sim, 3, 0).unwrap_err();
    assert!(e.source().is_none(), "an argument error has no cause");
    let r = e.downcast_ref::<vmspace::Refused<Odd>>().expect("the Refused itself");
    assert_eq!(r.get_ref().quantum, PAGE);
    assert_eq!(e.to_string(), r.error().to_string());
    let e = make(&sim, PAGE, 1).unwrap_err();
    let cause = e.source().expect("a backing error's cause");
    let inner = ArenaError::from(
        Arena::on_pages("e", Size(3), &sim, 4096, Odd::new(PAGE, true)).err().unwrap(),
    );
    assert!(matches!(inner, ArenaError::InvalidArgument(_)));
    let r = e.downcast_ref::<vmspace::Refused<Odd>>().unwrap();
    let ArenaError::Backing(b) = r.error() else { panic!("{r:?}") };
    assert_eq!(cause.to_string(), b.to_string());
    assert_eq!(format!("{r:?}"), format!("Refused {{ error: {:?}, .. }}", r.error()));
    assert!(format!("{r:#?}").starts_with("Refused {\n    error: Backing("), "{r:#?}");
    assert_eq!(sim.stats().reservations, 0);
}

/// `on_pages` refused because a store cannot even be reserved (the tag
/// store's reservation, then the hash store's, after the tag store's was
/// made): the source back never called, nothing left reserved.
#[test]
fn on_pages_refused_at_each_reservation() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    for n in 1..=2 {
        inj.only(&[Op::Reserve]);
        inj.fail_nth(n);
        let r = Arena::on_pages("r", Size(16), &inj, 4096, Odd::new(PAGE, true));
        inj.clear();
        let refused = r.err().unwrap_or_else(|| panic!("reservation {n} failed, yet made"));
        assert!(matches!(refused.error(), ArenaError::Backing(_)), "{refused}");
        let (e, back) = refused.into_parts();
        assert!(matches!(e, ArenaError::Backing(_)));
        assert_eq!((back.quantum, back.calls.get()), (PAGE, 0));
        assert_eq!(sim.stats().reservations, 0, "reservation {n}: the tag store released");
    }
}
