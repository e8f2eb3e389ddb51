//! Outside review: sources with extreme or invalid quanta, rounding
//! overflow on import, and the crate's sources' `release` checks. From the
//! public documentation only.

mod outside_source_common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use outside_source_common::*;
use vmspace::arena::{ArenaError, Constraints, Policy, SliceStore, Source};
use vmspace::sources::{VmSource, IMPORT_OWNER};
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::{Addr, Pages, Range, Size};
use vmspace_shim::sim::SimBackend;

#[test]
fn source_quantum_2_pow_63() {
    let (mut src, log) = Evil::honest(1 << 63, 1 << 63);
    src.aligned = true;
    let mut a = arena("q63", 16, src);
    // The arena asks for 2^63 at 2^63: [2^63, 2^64), which no Range can
    // hold, so an honest source fails and so does the allocation.
    let r = a.alloc(Size(16), Policy::InstantFit);
    assert!(r.is_err(), "{r:?}");
    assert_eq!(log.borrow().calls[0], (Size(1 << 63), Size(1 << 63)));
    consistent(&a, "q63");
}

#[test]
fn rounding_to_the_source_quantum_overflows() {
    // Arena quantum 16, source quantum 2^62: a size whose rounding up to
    // 2^62 passes 2^64 must be an error, not a panic or a wrap.
    for aligned in [true, false] {
        let (mut src, log) = Evil::honest(1 << 62, 1 << 62);
        src.aligned = aligned;
        let mut a = arena("round", 16, src);
        for size in [usize::MAX - 15, (3 << 62) + 16, 1 << 63] {
            let r = catch_unwind(AssertUnwindSafe(|| a.alloc(Size(size), Policy::InstantFit)));
            let r = r.unwrap_or_else(|_| panic!("size {size:#x} aligned={aligned}: panic"));
            if let Ok(x) = r {
                a.free(x, Size(size)).unwrap();
            }
            consistent(&a, "round");
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            a.xalloc(&Constraints::new(Size(1 << 62)).align(Size(1 << 63)).phase(Size(1 << 62)))
        }));
        let r = r.unwrap_or_else(|_| panic!("aligned={aligned}: panic on phase near the top"));
        assert!(r.is_err(), "[3*2^62, 2^64) cannot exist: {r:?}");
        consistent(&a, "round");
        assert!(log.borrow().out.is_empty());
    }
}

#[test]
fn source_quantum_not_a_power_of_two() {
    // The trait says the quantum is "a power of two"; the docs do not say
    // the arena checks it. Record what happens (an error is best).
    for q in [0usize, 3, 4096 + 16] {
        let (src, _log) = Evil::honest(q.max(1), 1 << 40);
        let mut src = src;
        src.q = Size(q);
        let r = catch_unwind(AssertUnwindSafe(move || {
            let mut a = match vmspace::arena::Arena::new(
                "badq",
                Size(16),
                SliceStore::new(buf(1 << 16)),
                SliceStore::new(buf(1 << 14)),
                src,
            ) {
                Ok(a) => a,
                Err(e) => {
                    // Refused at construction: the best outcome.
                    assert_eq!(
                        e.error(),
                        ArenaError::InvalidArgument("source quantum is not a power of two")
                    );
                    return Ok(false);
                }
            };
            let r = a.alloc(Size(16), Policy::InstantFit);
            if let Ok(x) = r {
                a.free(x, Size(16)).unwrap();
            }
            a.check().map(|_| r.is_ok())
        }));
        eprintln!("NOTE: source quantum {q}: {:?}", r.as_ref().map_err(|_| "panic"));
        if let Ok(c) = r {
            c.expect("check() after an import from a source with a bad quantum");
        }
    }
}

#[test]
fn vm_source_release_is_exact() {
    let mut mem = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut mem, 4096).unwrap();
    let vm = Vm::reserve(&sim, Size(4 << 20), Size(4096)).unwrap();
    let mut vs =
        VmSource::new(vm, SliceStore::new(buf(1 << 16)), SliceStore::new(buf(1 << 14))).unwrap();
    let r = vs.import(Size(4 * 4096), Size(4096)).unwrap();
    let half = Range::from_size(r.base(), Size(2 * 4096)).unwrap();
    assert!(vs.release(half).is_err(), "VmSource 'refuses all but an exact import'");
    let wider = Range::from_size(r.base(), Size(8 * 4096)).unwrap();
    assert!(vs.release(wider).is_err());
    vs.check().unwrap();
    assert_eq!(vs.vm().mapped(), Size(4 * 4096));
    vs.release(r).unwrap();
    assert!(vs.release(r).is_err(), "double release");
    vs.check().unwrap();
    assert_eq!(vs.vm().mapped(), Size(0));
    // The largest alignment the VM can give.
    let big = vs.import(Size(4096), Size(1 << 62));
    assert!(big.is_err());
    vs.check().unwrap();
}

#[test]
fn vm_arena_release_takes_only_imported_tracts() {
    let mut mem = vec![0u8; 12 << 20];
    let sim = SimBackend::new(&mut mem, 4096).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(8 << 20)).spare_limit(0)).unwrap();
    let g = va.alloc(&Request::new(Pages(2), Owner(7))).unwrap();
    let r = va.import(Size(4 * 4096), Size(4096)).unwrap();
    assert_eq!(va.tract(r.base()).unwrap().owner, IMPORT_OWNER);
    // A client's tracts are not the arena's to release.
    assert!(va.release(g.range).is_err(), "release of owner 7's tracts");
    let straddle = Range::new(g.range.base(), r.limit()).unwrap();
    if g.range.limit() == r.base() {
        assert!(va.release(straddle).is_err(), "release straddling a client's tracts");
    }
    va.check().unwrap();
    va.release(r).unwrap();
    assert!(va.release(r).is_err(), "double release");
    va.free(g.range, Owner(7)).unwrap();
    va.check().unwrap();
    assert_eq!(va.allocated(), Size(0));
    // Off-page ranges and empty ones.
    let odd = Range::from_size(Addr(va.base().0 + 16), Size(4096)).unwrap();
    assert!(va.release(odd).is_err());
    assert!(va.release(Range::empty(va.base())).is_err());
    va.check().unwrap();
    let e = va.import(Size(4096), Size(3 * 4096));
    assert!(matches!(e, Err(ArenaError::InvalidArgument(_))), "{e:?}");
}

/// A source whose quantum changes after the arena was built.
struct Shifty(Evil, std::cell::Cell<usize>, usize);
impl Source for Shifty {
    fn quantum(&self) -> Size {
        let n = self.1.get();
        self.1.set(n + 1);
        if n < 1 {
            Size(4096)
        } else {
            Size(self.2)
        }
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.0.import(size, align)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.0.release(range)
    }
}

#[test]
fn source_quantum_changing_after_construction() {
    // Arena::new refuses a source quantum that is not a power of two (seen
    // in source_quantum_not_a_power_of_two), but nothing says the quantum
    // is read only there. A source whose quantum later reads 0 or 3.
    for bad in [0usize, 3, 1 << 63] {
        let (inner, log) = Evil::honest(1, 1 << 40);
        let mut a = arena("shifty", 4096, Shifty(inner, std::cell::Cell::new(0), bad));
        let r = catch_unwind(AssertUnwindSafe(|| a.alloc(Size(4096), Policy::InstantFit)));
        match r {
            Err(_) => panic!(
                "DEFECT?: source quantum read as {bad} after construction: the arena panicked"
            ),
            Ok(r) => {
                eprintln!("NOTE: quantum later {bad}: {r:?}, asked {:?}", log.borrow().calls);
                consistent(&a, "shifty");
                if let Ok(x) = r {
                    a.free(x, Size(4096)).unwrap();
                }
                consistent(&a, "shifty");
                spans_match_log(&a, &log.borrow(), "shifty");
            }
        }
    }
}
