//! An arena over `KeepFree` over a parent arena over a source that panics
//! in one of its methods (quantum, can_import, imports_aligned, import,
//! release, release_unflushed, refused). Two checks per method: dropped as
//! the panic unwinds, with the source then panicking in *every* call, the
//! chain must not call it again (an abort: run in a child process); and,
//! the panic caught and the source healed, the books balance and after a
//! call returns everything goes back, nothing twice.

mod child_process;
use child_process::{run_child, scenario};

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use vmspace::arena::{Arena, ArenaError, Constraints, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const VAR: &str = "VMSPACE_R49_LAYERS_CHILD";

const METHODS: [&str; 7] = [
    "quantum",
    "can_import",
    "imports_aligned",
    "import",
    "release",
    "release_unflushed",
    "refused",
];

#[derive(Default)]
struct Books {
    next: AtomicUsize,
    out: Mutex<BTreeSet<(usize, usize)>>,
    /// Index into METHODS + 1 of the method that panics; 0 none.
    armed: AtomicU8,
    /// Once a call panicked: every call panics (until healed).
    poisoned: AtomicBool,
    /// Poison on the first panic (the unwinding scenario).
    sticky: AtomicBool,
    twice: AtomicUsize,
    calls_while_poisoned: AtomicUsize,
}

#[derive(Clone, Default)]
struct Bomb(Arc<Books>);

impl Bomb {
    fn enter(&self, m: &str) {
        let b = &self.0;
        if b.poisoned.load(SeqCst) {
            b.calls_while_poisoned.fetch_add(1, SeqCst);
            panic!("bomb panics");
        }
        let i = METHODS.iter().position(|x| *x == m).unwrap() as u8 + 1;
        if b.armed.load(SeqCst) == i {
            if b.sticky.load(SeqCst) {
                b.poisoned.store(true, SeqCst);
            } else {
                b.armed.store(0, SeqCst);
            }
            panic!("bomb panics");
        }
    }
    fn arm(&self, m: &str, sticky: bool) {
        self.0.sticky.store(sticky, SeqCst);
        let i = METHODS.iter().position(|x| *x == m).unwrap() as u8 + 1;
        self.0.armed.store(i, SeqCst);
    }
    fn heal(&self) {
        self.0.armed.store(0, SeqCst);
        self.0.poisoned.store(false, SeqCst);
    }
    fn out_bytes(&self) -> usize {
        self.0.out.lock().unwrap().iter().map(|&(_, s)| s).sum()
    }
}

impl Source for Bomb {
    fn quantum(&self) -> Size {
        self.enter("quantum");
        Size(Q)
    }
    fn can_import(&self) -> bool {
        self.enter("can_import");
        true
    }
    fn imports_aligned(&self) -> bool {
        self.enter("imports_aligned");
        true
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.enter("import");
        let b = &self.0;
        if b.armed.load(SeqCst) == 7 {
            // Hand out a range overlapping one already out: the parent refuses it.
            let &(base, _) = b.out.lock().unwrap().iter().next().unwrap();
            return Ok(Range::from_size(Addr(base), size)?);
        }
        let mut base = b.next.load(SeqCst).max(1 << 24);
        base = (base + align.0 - 1) & !(align.0 - 1);
        b.next.store(base + size.0 + Q, SeqCst);
        b.out.lock().unwrap().insert((base, size.0));
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        if self.0.poisoned.load(SeqCst) {
            self.enter("release");
        }
        if !self.0.out.lock().unwrap().remove(&(r.base().0, r.size().0)) {
            self.0.twice.fetch_add(1, SeqCst);
            return Err(ArenaError::BadImport(r));
        }
        self.enter("release"); // taken back, then panics
        Ok(())
    }
    fn release_unflushed(&mut self, r: Range) -> Result<(), ArenaError> {
        if self.0.poisoned.load(SeqCst) {
            self.enter("release_unflushed");
        }
        if !self.0.out.lock().unwrap().remove(&(r.base().0, r.size().0)) {
            self.0.twice.fetch_add(1, SeqCst);
            return Err(ArenaError::BadImport(r));
        }
        self.enter("release_unflushed");
        Ok(())
    }
    fn refused(&mut self, _r: Range) {
        self.enter("refused");
    }
}

fn quiet() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if msg != "bomb panics" {
            prev(info);
        }
    }));
}

type Parent<'a> = Arena<SliceStore<'a>, Bomb>;

/// Build the chain and run the trigger for method `m` (returns the child's
/// live allocations); `then` runs after the trigger (the panic caught).
fn chain(m: &str, bomb: &Bomb, caught: bool) {
    let (mut pt, mut ph) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let (mut ct, mut ch) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut parent: Parent<'_> = Arena::new(
        "parent",
        Size(Q),
        SliceStore::new(&mut pt),
        SliceStore::new(&mut ph),
        bomb.clone(),
    )
    .unwrap();
    let keep = KeepFree::<_, 1>::new(&mut parent, Size(16 << 10));
    let mut child =
        Arena::new("child", Size(16), SliceStore::new(&mut ct), SliceStore::new(&mut ch), keep)
            .unwrap();
    let x1 = child.alloc(Size(16), Policy::InstantFit).unwrap();
    let x2 = child.alloc(Size(32 << 10), Policy::InstantFit).unwrap();
    let x3 = child.alloc(Size(16 << 10), Policy::InstantFit).unwrap();
    let mut live = vec![(x2, Size(32 << 10)), (x3, Size(16 << 10))];
    bomb.arm(m, !caught);
    let trigger = |child: &mut Arena<_, _>, live: &mut Vec<(Addr, Size)>| match m {
        "release" => {
            // x1's span is kept (N = 1); x2's goes to the parent, whose span
            // is then wholly free: the parent gives it to the bomb.
            child.free(x1, Size(16)).unwrap();
            let (a, s) = live.remove(0);
            let _ = child.free(a, s);
        }
        "release_unflushed" => {
            child.free_deferred(x1, Size(16)).unwrap();
            if let Ok(a) = child.alloc(Size(1 << 20), Policy::InstantFit) {
                live.push((a, Size(1 << 20)));
            }
        }
        _ => {
            let c = Constraints::new(Size(64 << 10)).align(Size(64 << 10));
            if let Ok(a) = child.xalloc(&c) {
                live.push((a, Size(64 << 10)));
            }
        }
    };
    if !caught {
        if m == "release_unflushed" {
            // The parent's drop gives its span holding an unflushed range
            // back through release_unflushed, which panics; the child and
            // the adapter go first.
            child.free_deferred(x1, Size(16)).unwrap();
            drop(child);
            drop(parent);
            unreachable!("the parent's drop panicked");
        }
        trigger(&mut child, &mut live);
        panic!("bomb panics"); // (if the trigger did not) unwind with everything live
    }
    let r = catch_unwind(AssertUnwindSafe(|| trigger(&mut child, &mut live)));
    bomb.heal();
    let _ = r;
    child.check().unwrap();
    child.source().check().unwrap();
    // A call returns all the way down: a big import.
    let big = child.alloc(Size(1 << 20), Policy::InstantFit).unwrap();
    live.push((big, Size(1 << 20)));
    for (a, s) in live.drain(..) {
        child.free(a, s).unwrap();
    }
    if m != "release_unflushed" && m != "release" {
        child.free(x1, Size(16)).unwrap();
    } else if m == "release_unflushed" {
        child.flushed();
    }
    child.check().unwrap();
    assert_eq!(child.sizes().allocated, Size(0), "{m}");
    assert_eq!(child.sizes().imported, Size(0), "{m}: the child gave every span back");
    drop(child);
    parent.check().unwrap();
    assert_eq!(
        parent.sizes().allocated,
        Size(0),
        "{m}: the adapter's drop gave every kept span back"
    );
    assert_eq!(parent.sizes().imported.0, bomb.out_bytes(), "{m}: parent's books = the bomb's");
    assert_eq!(parent.sizes().imported, Size(0), "{m}: everything went back to the bomb");
    assert_eq!(bomb.0.twice.load(SeqCst), 0, "{m}: given back twice");
}

/// Caught and healed: books balance, everything goes back after a call
/// returns, nothing twice, for a panic in each method.
#[test]
fn panics_in_each_method_caught_then_everything_goes_back() {
    quiet();
    for m in METHODS {
        let bomb = Bomb::default();
        chain(m, &bomb, true);
    }
}

/// Dropped as the panic unwinds, the source panicking in every call from
/// then on: no call is made (the child process would abort).
#[test]
fn chain_dropped_as_each_methods_panic_unwinds_makes_no_call() {
    let name = "chain_dropped_as_each_methods_panic_unwinds_makes_no_call";
    if let Some(m) = scenario(VAR) {
        quiet();
        let bomb = Bomb::default();
        let b = bomb.clone();
        let m2 = m.clone();
        let r = catch_unwind(AssertUnwindSafe(move || chain(&m2, &b, false)));
        assert!(r.is_err());
        assert!(bomb.0.poisoned.load(SeqCst), "{m}: the trigger reached the method");
        assert_eq!(bomb.0.calls_while_poisoned.load(SeqCst), 0, "{m}: called after its panic");
        assert_eq!(bomb.0.twice.load(SeqCst), 0);
        return;
    }
    let mut bad = Vec::new();
    for m in METHODS {
        let st = run_child(name, VAR, m);
        if !st.success() {
            bad.push((m, st));
        }
    }
    assert!(bad.is_empty(), "child scenarios that failed or aborted: {bad:?}");
}

/// Two arenas share one `KeepFree` through `&RefCell` (the adapter's note
/// is shared, unlike a plain source's). The first arena's import panics
/// below the adapter; the second empties a span meanwhile: the adapter
/// refuses it (`SourceBusy`), the arena keeps it, free. Then a call into
/// the source returns (the first arena imports), and the second arena
/// frees something else: does the span it kept go back now ("after a call
/// into the source panics, ... gives the source nothing back ... until a
/// call into the source returns again; spans kept meanwhile go back at the
/// first free after that")?
///
/// Was a DEFECT (fixed: a span refused with `SourceBusy` is held, free,
/// and offered again at the next free; arguable, the `Source` docs say
/// siblings through `&RefCell` do
/// not share the arena's note): the second arena took the `SourceBusy`
/// as an ordinary refusal (src/arena/alloc.rs:488-497, counted in
/// `export_failures`, `held_back` not set), so the span it kept stays free
/// in it for its whole life, although `KeepFree` refused only because of
/// the transient note and takes give-backs again.
#[test]
fn a_sibling_refused_by_a_busy_adapter_gives_back_after_it_resumes() {
    quiet();
    let bomb = Bomb::default();
    let (mut pt, mut ph) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut parent: Parent<'_> = Arena::new(
        "parent",
        Size(Q),
        SliceStore::new(&mut pt),
        SliceStore::new(&mut ph),
        bomb.clone(),
    )
    .unwrap();
    let keep = std::cell::RefCell::new(KeepFree::<_, 4>::new(&mut parent, Size(Q)));
    let (mut t1, mut h1) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let (mut t2, mut h2) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a1 =
        Arena::new("a1", Size(16), SliceStore::new(&mut t1), SliceStore::new(&mut h1), &keep)
            .unwrap();
    let mut a2 =
        Arena::new("a2", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &keep)
            .unwrap();
    let y1 = a2.alloc(Size(Q), Policy::InstantFit).unwrap();
    let y2 = a2.alloc(Size(Q), Policy::InstantFit).unwrap();
    bomb.arm("import", false);
    assert!(catch_unwind(AssertUnwindSafe(|| a1.alloc(Size(1 << 20), Policy::InstantFit))).is_err());
    a2.free(y1, Size(Q)).unwrap(); // refused by the adapter: kept free in a2
    assert_eq!(a2.sizes().imported, Size(2 * Q));
    // A call into the source returns.
    let z = a1.alloc(Size(1 << 20), Policy::InstantFit).unwrap();
    a1.free(z, Size(1 << 20)).unwrap();
    // The first free after that.
    a2.free(y2, Size(Q)).unwrap();
    a2.check().unwrap();
    assert_eq!(
        a2.sizes().imported,
        Size(0),
        "a2 still holds a wholly free span (export_failures {})",
        a2.counters().export_failures
    );
}
