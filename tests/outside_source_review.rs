//! Outside review: the arena against sources that break the `Source`
//! contract. Written from the public documentation (README, rustdoc of
//! `vmspace::arena::Source`, `Arena`, `ArenaError`) only.
//!
//! Doc lines relied on (vmspace::arena::Source):
//! - "import returns exactly `size` units aligned to `align` [...]"
//! - "A range the arena cannot use is given back through `release`, unless it
//!   overlaps a span the arena holds (a source that broke the contract): then
//!   the arena keeps away from it and tells the source through `refused`."
//! - ArenaError::BadImport: "A source handed back a range that breaks the
//!   Source contract (wrong size or alignment, or overlapping a span)."
//! - ArenaError: "Every failing operation leaves the arena exactly as it was
//!   before the call (its failure counter aside), whatever the variant."

mod outside_source_common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use outside_source_common::*;
use vmspace::arena::{ArenaError, Constraints, Counters, Policy, Sizes};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const BASE: usize = 1 << 40;

fn snapshot<I: vmspace::arena::Source>(a: &A<I>) -> (Sizes, Counters, Vec<Range>) {
    (a.sizes(), a.counters(), imported_spans(a))
}

/// After a failed allocation nothing but `failures` may change.
fn unchanged<I: vmspace::arena::Source>(
    a: &A<I>,
    before: &(Sizes, Counters, Vec<Range>),
    what: &str,
) {
    consistent(a, what);
    let now = snapshot(a);
    assert_eq!(now.0, before.0, "{what}: sizes changed by a failed allocation");
    assert_eq!(now.2, before.2, "{what}: spans changed by a failed allocation");
    let (mut c0, mut c1) = (before.1, now.1);
    assert_eq!(c1.failures, c0.failures + 1, "{what}: failure not counted once");
    c0.failures = 0;
    c1.failures = 0;
    c0.search_steps = 0;
    c1.search_steps = 0;
    assert_eq!(c1, c0, "{what}: counters other than failures changed");
}

/// One bad answer (from `bend`), then honest ones: the bad answer must be
/// refused (BadImport), given back exactly once through `release`, and leave
/// the arena unchanged; the next allocation must work.
fn bad_answer_then_honest(what: &str, req: Constraints, bend: fn(Range) -> Range) {
    let (src, log) =
        Evil::scripted(Q, BASE, Box::new(move |n, _, _, r| Ok(if n == 0 { bend(r) } else { r })));
    let mut a = arena("evil", Q, src);
    let before = snapshot(&a);
    let e = a.xalloc(&req).expect_err(&format!("{what}: arena accepted an unusable import"));
    let bad = log.borrow().returned[0];
    assert_eq!(e, ArenaError::BadImport(bad), "{what}: error for an unusable import");
    unchanged(&a, &before, what);
    {
        let l = log.borrow();
        assert_eq!(
            l.releases,
            vec![(bad, true)],
            "{what}: the unusable range must be released exactly once"
        );
        assert!(l.refused.is_empty(), "{what}: refused() for a range that overlaps nothing");
    }
    let x = a.xalloc(&req).expect("honest import after a bad one");
    consistent(&a, what);
    spans_match_log(&a, &log.borrow(), what);
    a.free(x, req.size()).unwrap();
    consistent(&a, what);
    assert_eq!(a.sizes().total, Size(0), "{what}: wholly free imported span kept");
    assert!(log.borrow().out.is_empty(), "{what}: span not given back");
    drop(a);
    assert_eq!(log.borrow().releases.len(), 2, "{what}: drop released again");
}

#[test]
fn import_too_small_is_refused_and_released() {
    bad_answer_then_honest("too small", Constraints::new(Size(4 * Q)), |r| {
        Range::from_size(r.base(), Size(r.size().0 - Q)).unwrap()
    });
}

#[test]
fn import_too_large_is_refused_or_used_whole() {
    // A larger range: the contract says "exactly size"; the arena may refuse
    // it (released) or use it. Either way nothing may be lost.
    let (src, log) = Evil::scripted(
        Q,
        BASE,
        Box::new(|n, _, _, r| {
            Ok(if n == 0 {
                Range::from_size(r.base(), Size(r.size().0 + 8 * Q)).unwrap()
            } else {
                r
            })
        }),
    );
    let mut a = arena("evil", Q, src);
    match a.alloc(Size(Q), Policy::InstantFit) {
        Err(e) => {
            assert!(matches!(e, ArenaError::BadImport(_)), "too large: {e:?}");
            assert_eq!(log.borrow().releases.len(), 1);
        }
        Ok(x) => {
            consistent(&a, "too large");
            spans_match_log(&a, &log.borrow(), "too large");
            a.free(x, Size(Q)).unwrap();
        }
    }
    consistent(&a, "too large");
    drop(a);
    assert!(log.borrow().out.is_empty(), "too large: lost {:?}", log.borrow().out);
}

#[test]
fn import_off_quantum_is_refused_and_released() {
    bad_answer_then_honest("off quantum", Constraints::new(Size(2 * Q)), |r| {
        Range::from_size(Addr(r.base().0 + Q / 2), r.size()).unwrap()
    });
}

#[test]
fn import_off_requested_alignment_is_refused_and_released() {
    // The arena asks for align 1 MiB (imports_aligned() is true); the source
    // answers at a quantum multiple that is not a multiple of 1 MiB.
    bad_answer_then_honest("off align", Constraints::new(Size(Q)).align(Size(1 << 20)), |r| {
        Range::from_size(Addr(r.base().0 + Q), r.size()).unwrap()
    });
}

#[test]
fn import_of_zero_length_is_refused() {
    let (src, log) = Evil::scripted(
        Q,
        BASE,
        Box::new(|n, _, _, r| Ok(if n == 0 { Range::empty(r.base()) } else { r })),
    );
    let mut a = arena("evil", Q, src);
    let before = snapshot(&a);
    let r = catch_unwind(AssertUnwindSafe(|| a.alloc(Size(Q), Policy::InstantFit)));
    let r = r.expect("a zero-length import made the arena panic");
    let e = r.expect_err("zero-length import accepted");
    assert!(matches!(e, ArenaError::BadImport(_)), "zero length: {e:?}");
    unchanged(&a, &before, "zero length");
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    a.free(x, Size(Q)).unwrap();
    drop(a);
    let l = log.borrow();
    assert!(l.out.is_empty() || l.out.iter().all(|r| r.is_empty()), "lost {:?}", l.out);
}

#[test]
fn import_overlapping_an_added_span_is_refused_not_released() {
    let (src, log) = Evil::scripted(
        Q,
        BASE,
        Box::new(|n, _, _, r| {
            Ok(if n == 0 {
                Range::from_size(Addr(BASE + 2 * Q), r.size()).unwrap()
            } else {
                Range::from_size(Addr(BASE + (1 << 30)), r.size()).unwrap()
            })
        }),
    );
    let mut a = arena("evil", Q, src);
    a.add(Addr(BASE), Size(4 * Q)).unwrap();
    let _x = a.alloc(Size(4 * Q), Policy::InstantFit).unwrap(); // the added span is full
    let before = snapshot(&a);
    let e = a.alloc(Size(4 * Q), Policy::InstantFit).expect_err("overlap accepted");
    let bad = log.borrow().returned[0];
    assert_eq!(e, ArenaError::BadImport(bad));
    unchanged(&a, &before, "overlap added");
    {
        let l = log.borrow();
        assert_eq!(l.refused, vec![bad], "overlap: refused() must be told");
        assert!(l.releases.is_empty(), "overlap: a live span was handed back: {:?}", l.releases);
    }
    let y = a.alloc(Size(4 * Q), Policy::InstantFit).unwrap();
    assert_eq!(y, Addr(BASE + (1 << 30)));
    a.free(y, Size(4 * Q)).unwrap();
    consistent(&a, "overlap added");
}

#[test]
fn import_overlapping_an_earlier_import_is_refused_not_released() {
    // The source hands out the same range twice (and then a partly
    // overlapping one), while the first is live in the arena.
    let (src, log) = Evil::scripted(
        Q,
        BASE,
        Box::new(|n, _, _, r| {
            Ok(match n {
                0 => Range::from_size(Addr(BASE), r.size()).unwrap(),
                1 => Range::from_size(Addr(BASE), r.size()).unwrap(),
                2 => Range::from_size(Addr(BASE + r.size().0 - Q), r.size()).unwrap(),
                3 => Range::from_size(Addr(BASE + r.size().0), r.size()).unwrap(), // touching: fine
                _ => r,
            })
        }),
    );
    let mut a = arena("evil", Q, src);
    let x = a.alloc(Size(4 * Q), Policy::InstantFit).unwrap();
    for i in 1..3 {
        let before = snapshot(&a);
        let e = a.alloc(Size(4 * Q), Policy::InstantFit).expect_err("overlap accepted");
        let bad = log.borrow().returned[i];
        assert_eq!(e, ArenaError::BadImport(bad));
        unchanged(&a, &before, "overlap import");
        assert_eq!(log.borrow().refused.last(), Some(&bad));
        assert!(
            log.borrow().releases.is_empty(),
            "released a live span: {:?}",
            log.borrow().releases
        );
    }
    let y = a.alloc(Size(4 * Q), Policy::InstantFit).expect("adjacent import");
    assert_eq!(y, Addr(BASE + 4 * Q));
    assert_eq!(a.span_count(), 2, "two imports stay two spans");
    a.free(x, Size(4 * Q)).unwrap();
    a.free(y, Size(4 * Q)).unwrap();
    consistent(&a, "overlap import");
    let l = log.borrow();
    assert_eq!(l.releases.len(), 2);
    assert!(l.out.is_empty());
}

#[test]
fn import_at_the_top_of_the_address_space() {
    // The highest usable range ends at 2^64 - Q (a Range cannot end at
    // 2^64). Use it, free it, get it released.
    let top = usize::MAX - Q + 1; // 2^64 - Q
    let (src, log) = Evil::scripted(
        Q,
        BASE,
        Box::new(move |n, size, _, _| {
            Ok(match n {
                0 => Range::new(Addr(top - size.0), Addr(top)).unwrap(),
                // Unaligned limit: [2^64 - 1 - size, 2^64 - 1), off the quantum.
                1 => Range::new(Addr(usize::MAX - size.0), Addr(usize::MAX)).unwrap(),
                _ => Range::from_size(Addr(BASE), size).unwrap(),
            })
        }),
    );
    let mut a = arena("top", Q, src);
    let x = a.xalloc(&Constraints::new(Size(2 * Q)).from_top(true)).expect("top import");
    assert_eq!(x, Addr(top - 2 * Q));
    consistent(&a, "top");
    let before = snapshot(&a);
    let e = a.alloc(Size(2 * Q), Policy::InstantFit).expect_err("unaligned top import accepted");
    assert!(matches!(e, ArenaError::BadImport(_)), "{e:?}");
    unchanged(&a, &before, "top unaligned");
    a.free(x, Size(2 * Q)).unwrap();
    consistent(&a, "top");
    drop(a);
    assert!(log.borrow().out.is_empty(), "lost {:?}", log.borrow().out);
}

#[test]
fn import_of_the_largest_size_near_the_top() {
    // A source with quantum 2^62 handing out [2^62, 2^63) and [2^63, 2^63+2^62).
    let (src, log) = Evil::honest(1 << 62, 1 << 62);
    let mut a = arena("huge", 1 << 27, src);
    let x = a.alloc(Size(1 << 27), Policy::InstantFit).unwrap();
    let y = a.xalloc(&Constraints::new(Size(1 << 61)).align(Size(1 << 63))).unwrap();
    assert_eq!(y, Addr(1 << 63));
    consistent(&a, "huge");
    assert_eq!(a.sizes().imported, Size(1 << 63));
    a.free(x, Size(1 << 27)).unwrap();
    a.free(y, Size(1 << 61)).unwrap();
    consistent(&a, "huge");
    assert!(log.borrow().out.is_empty());
    // Asking for more than the source could ever hold: an error, not a panic.
    let e = a.alloc(Size(usize::MAX - (1 << 27) + 1), Policy::InstantFit);
    assert!(e.is_err());
    let e = a.xalloc(&Constraints::new(Size(1 << 62)).align(Size(1 << 63)).phase(Size(1 << 62)));
    assert!(e.is_err(), "no range [2^63+2^62, 2^64) can be returned: {e:?}");
    consistent(&a, "huge");
}

#[test]
fn source_failing_every_third_call() {
    let (src, log) =
        Evil::scripted(
            Q,
            BASE,
            Box::new(|n, _, _, r| {
                if n % 3 == 2 {
                    Err(ArenaError::NoSpace { size: r.size().0 })
                } else {
                    Ok(r)
                }
            }),
        );
    let mut a = arena("flaky", Q, src);
    let mut held = Vec::new();
    for i in 0..60usize {
        let size = Size(Q * (1 + i % 7));
        let before = snapshot(&a);
        match a.alloc(size, Policy::BestFit) {
            Ok(x) => held.push((x, size)),
            Err(_) => unchanged(&a, &before, "flaky"),
        }
        if i % 4 == 3 {
            let (x, s) = held.swap_remove(held.len() / 2);
            a.free(x, s).unwrap();
        }
        consistent(&a, "flaky");
        spans_match_log(&a, &log.borrow(), "flaky");
    }
    for (x, s) in held {
        a.free(x, s).unwrap();
    }
    consistent(&a, "flaky");
    let c = a.counters();
    assert_eq!(c.imports, log.borrow().returned.len() as u64, "imports counter vs source");
    assert_eq!(c.exports, c.imports, "exports counter after everything was freed");
    assert!(log.borrow().out.is_empty());
}

#[test]
fn release_refused_keeps_the_span_and_drop_gives_it_back() {
    // "A wholly free imported span goes back to the source; if the source
    // refuses, the span stays, free, and the free still succeeds."
    let (mut src, log) = Evil::honest(Q, BASE);
    src.fail_release = Box::new(|n| n == 0);
    let mut a = arena("sticky", Q, src);
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    a.free(x, Size(Q)).unwrap();
    consistent(&a, "sticky");
    assert_eq!(a.counters().export_failures, 1);
    assert_eq!(a.counters().exports, 0, "a refused give-back counted as an export");
    assert_eq!(a.span_count(), 1, "span refused by the source must stay");
    assert_eq!(a.sizes().free, Size(Q));
    // Reused without importing again.
    let y = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    assert_eq!(y, x);
    assert_eq!(log.borrow().calls.len(), 1);
    a.free(y, Size(Q)).unwrap();
    consistent(&a, "sticky");
    drop(a);
    let l = log.borrow();
    assert!(l.out.is_empty(), "span never given back: {:?}", l.out);
    assert_eq!(l.releases.iter().filter(|r| r.1).count(), 1);
}

#[test]
fn drop_releases_every_import_exactly_once() {
    let (src, log) = Evil::honest(Q, BASE);
    let mut a = arena("drop", Q, src);
    let mut xs = Vec::new();
    for i in 0..20 {
        xs.push(
            a.xalloc(&Constraints::new(Size(Q * (1 + i % 3))).align(Size(Q << (i % 5)))).unwrap(),
        );
    }
    a.free(xs[3], Size(Q)).unwrap();
    consistent(&a, "drop");
    let n = log.borrow().out.len();
    assert!(n > 0);
    drop(a); // 19 live allocations: the leak hook, then every span back
    let l = log.borrow();
    assert!(l.out.is_empty(), "not released at drop: {:?}", l.out);
    releases_sane(&l, "drop");
}

#[test]
fn panicking_import_leaves_the_arena_usable() {
    // The docs mention a panicking source (sync::SyncArena's waiter guard).
    // After the panic is caught the arena must still be consistent.
    let (src, log) = Evil::scripted(
        Q,
        BASE,
        Box::new(|n, _, _, r| if n == 1 { panic!("source panics on purpose") } else { Ok(r) }),
    );
    let mut a = arena("panicky", Q, src);
    a.add(Addr(1 << 20), Size(Q)).unwrap();
    let x = a.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    let before = snapshot(&a);
    let r = catch_unwind(AssertUnwindSafe(|| a.alloc(Size(2 * Q), Policy::InstantFit)));
    assert!(r.is_err());
    consistent(&a, "after a panicking import");
    let now = snapshot(&a);
    assert_eq!(now.0, before.0, "sizes after a panicking import");
    assert_eq!(now.2, before.2);
    let y = a.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    let z = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    a.free(x, Size(2 * Q)).unwrap();
    a.free(y, Size(2 * Q)).unwrap();
    a.free(z, Size(Q)).unwrap();
    consistent(&a, "after a panicking import");
    assert_eq!(a.sizes().total, Size(Q));
    assert!(log.borrow().out.is_empty());
}

#[test]
fn source_quantum_smaller_than_the_arena_quantum() {
    // An honest source of quantum 1 whose bump pointer sits at an odd
    // address. It returns what it is asked: `size` at a multiple of `align`.
    // If the arena asks for an alignment below its own quantum the answer
    // is unusable though honest.
    let (src, log) = Evil::honest(1, BASE + 1);
    let mut a = arena("fine", Q, src);
    let r = a.alloc(Size(Q), Policy::InstantFit);
    let calls = log.borrow().calls.clone();
    let x = r.unwrap_or_else(|e| {
        panic!("honest source of a smaller quantum: {e:?}; the arena asked {calls:?}")
    });
    assert_eq!(x.0 % Q, 0);
    a.free(x, Size(Q)).unwrap();
    consistent(&a, "small source quantum");
    assert!(log.borrow().out.is_empty());
}

#[test]
fn source_quantum_larger_than_the_arena_quantum() {
    let (src, log) = Evil::honest(1 << 40, 1 << 40);
    let mut a = arena("coarse", 16, src);
    let x = a.alloc(Size(16), Policy::InstantFit).unwrap();
    assert_eq!(log.borrow().calls[0].0, Size(1 << 40), "import rounded up to the source quantum");
    let y = a.alloc(Size(16), Policy::InstantFit).unwrap();
    assert_eq!(log.borrow().calls.len(), 1, "second allocation served from the span");
    a.free(x, Size(16)).unwrap();
    a.free(y, Size(16)).unwrap();
    consistent(&a, "coarse");
    assert!(log.borrow().out.is_empty());
}

#[test]
fn unaligned_source_gets_asked_for_more() {
    // imports_aligned() == false: "an arena then asks it for align - quantum
    // more at the quantum's alignment, and places the request inside".
    let (mut src, log) = Evil::honest(Q, BASE + Q);
    src.aligned = false;
    let mut a = arena("unaligned", Q, src);
    let c = Constraints::new(Size(Q)).align(Size(1 << 30));
    let x = a.xalloc(&c).unwrap();
    assert_eq!(x.0 % (1 << 30), 0);
    assert_eq!(log.borrow().calls[0], (Size(Q + (1 << 30) - Q), Size(Q)));
    consistent(&a, "unaligned");
    a.free(x, Size(Q)).unwrap();
    consistent(&a, "unaligned");
    assert!(log.borrow().out.is_empty());
    // The biggest alignment: 2^63 with a source that cannot align.
    let x = a.xalloc(&Constraints::new(Size(Q)).align(Size(1 << 63)));
    match x {
        Ok(x) => {
            assert_eq!(x.0, 1 << 63);
            a.free(x, Size(Q)).unwrap();
        }
        Err(e) => {
            assert!(matches!(e, ArenaError::NoSpace { .. } | ArenaError::BadImport(_)), "{e:?}")
        }
    }
    consistent(&a, "unaligned 2^63");
    assert!(log.borrow().out.is_empty());
}

// ---------------------------------------------------------------------------
// Recursion through a `&RefCell<_>` source: "A source shared by several
// importing arenas (one thread): each call borrows it for its duration; a
// call made while it is borrowed (from inside the source itself) fails with
// ArenaError::SourceBusy."

type Parent = A<Hook>;
type Child = A<&'static RefCell<Parent>>;

/// The parent's source: honest, and on its first import calls into a child
/// arena that imports from the parent itself.
struct Hook {
    child: &'static std::cell::Cell<Option<&'static RefCell<Child>>>,
    inner: Evil,
    seen: &'static std::cell::Cell<Option<Result<Addr, ArenaError>>>,
}

impl vmspace::arena::Source for Hook {
    fn quantum(&self) -> Size {
        self.inner.quantum()
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if let Some(child) = self.child.take() {
            let r = child.borrow_mut().alloc(Size(Q), Policy::InstantFit);
            self.seen.set(Some(r));
        }
        self.inner.import(size, align)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.inner.release(range)
    }
}

#[test]
fn recursion_through_a_refcell_source_is_source_busy() {
    let slot: &'static std::cell::Cell<Option<&'static RefCell<Child>>> =
        keep(Box::new(std::cell::Cell::new(None)));
    let seen = keep(Box::new(std::cell::Cell::new(None)));
    let (inner, log) = Evil::honest(Q, BASE);
    let parent: &'static RefCell<Parent> =
        keep(Box::new(RefCell::new(arena("parent", Q, Hook { child: slot, inner, seen }))));
    let child: &'static RefCell<Child> = keep(Box::new(RefCell::new(arena("child", Q, parent))));
    let other: &'static RefCell<Child> = keep(Box::new(RefCell::new(arena("other", Q, parent))));
    slot.set(Some(other));
    // child -> parent -> Hook -> other -> parent (borrowed): SourceBusy, no panic.
    let r =
        catch_unwind(AssertUnwindSafe(|| child.borrow_mut().alloc(Size(Q), Policy::InstantFit)));
    let r = r
        .expect("DEFECT: a re-entrant call through &RefCell source panicked instead of SourceBusy");
    let x = r.expect("the outer allocation");
    assert_eq!(seen.take(), Some(Err(ArenaError::SourceBusy)), "the inner call");
    consistent(&other.borrow(), "other");
    consistent(&child.borrow(), "child");
    consistent(&parent.borrow(), "parent");
    assert_eq!(other.borrow().sizes().total, Size(0));
    child.borrow_mut().free(x, Size(Q)).unwrap();
    consistent(&parent.borrow(), "parent");
    assert_eq!(parent.borrow().sizes().total, Size(0));
    assert!(log.borrow().out.is_empty());
}
