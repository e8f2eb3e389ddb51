//! Shared scaffolding for the outside_r50 tests: a scripted bottom source
//! whose give-backs and imports succeed, refuse (busy or otherwise), strand
//! or panic as a seeded script says, and a recording wrapper that keeps the
//! books of what one importer holds.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use vmspace::arena::{ArenaError, Source};
use vmspace::{Addr, Range, ShimError, Size};

/// SplitMix64: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a scripted give-back does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rel {
    Ok,
    Busy,
    Other,
    Stranded,
    /// Panics before taking the range (lost to both).
    PanicBefore,
    /// Takes the range, then panics.
    PanicAfter,
}

/// What a scripted import does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imp {
    Ok,
    NoSpace,
    Panic,
}

/// The script and books of a [`Scripted`] source.
pub struct Script {
    pub rng: Rng,
    /// Per mille of give-backs: busy, other error, stranded, panic before,
    /// panic after (the rest succeed).
    pub rel_busy: u64,
    pub rel_other: u64,
    pub rel_stranded: u64,
    pub rel_panic_before: u64,
    pub rel_panic_after: u64,
    /// Per mille of imports that fail with NoSpace, and that panic.
    pub imp_nospace: u64,
    pub imp_panic: u64,
    /// Forced outcomes first (front is next).
    pub forced_rel: Vec<Rel>,
    pub forced_imp: Vec<Imp>,
    /// Outcome for every give-back while set (after forced ones).
    pub always_rel: Option<Rel>,
    pub next: usize,
    /// Ranges handed out and not taken back (base -> size).
    pub out: BTreeMap<usize, usize>,
    /// Ranges stranded (kept by the source for good).
    pub stranded: BTreeMap<usize, usize>,
    /// A call panicked and none has returned since.
    pub noted: bool,
    pub violations: Vec<String>,
    pub release_calls: usize,
    pub import_calls: usize,
    pub calls: usize,
    /// Every give-back: the range's base and what the script said.
    pub log: Vec<(usize, Rel)>,
}

impl Script {
    pub fn new(seed: u64) -> Self {
        Script {
            rng: Rng(seed),
            rel_busy: 0,
            rel_other: 0,
            rel_stranded: 0,
            rel_panic_before: 0,
            rel_panic_after: 0,
            imp_nospace: 0,
            imp_panic: 0,
            forced_rel: Vec::new(),
            forced_imp: Vec::new(),
            always_rel: None,
            next: 1 << 24,
            out: BTreeMap::new(),
            stranded: BTreeMap::new(),
            noted: false,
            violations: Vec::new(),
            release_calls: 0,
            import_calls: 0,
            calls: 0,
            log: Vec::new(),
        }
    }
    fn pick_rel(&mut self) -> Rel {
        if !self.forced_rel.is_empty() {
            return self.forced_rel.remove(0);
        }
        if let Some(r) = self.always_rel {
            return r;
        }
        let x = self.rng.below(1000);
        let mut acc = 0;
        for (p, r) in [
            (self.rel_busy, Rel::Busy),
            (self.rel_other, Rel::Other),
            (self.rel_stranded, Rel::Stranded),
            (self.rel_panic_before, Rel::PanicBefore),
            (self.rel_panic_after, Rel::PanicAfter),
        ] {
            acc += p;
            if x < acc {
                return r;
            }
        }
        Rel::Ok
    }
    fn pick_imp(&mut self) -> Imp {
        if !self.forced_imp.is_empty() {
            return self.forced_imp.remove(0);
        }
        let x = self.rng.below(1000);
        if x < self.imp_nospace {
            Imp::NoSpace
        } else if x < self.imp_nospace + self.imp_panic {
            Imp::Panic
        } else {
            Imp::Ok
        }
    }
    pub fn outstanding(&self) -> usize {
        self.out.values().sum()
    }
}

/// The bottom source: quantum `q`, hands out consecutive ranges (with a gap
/// between them, so that no two are adjacent), follows its [`Script`].
#[derive(Clone)]
pub struct Scripted {
    pub q: usize,
    pub s: Rc<RefCell<Script>>,
}

impl Scripted {
    pub fn new(q: usize, seed: u64) -> Self {
        Scripted { q, s: Rc::new(RefCell::new(Script::new(seed))) }
    }
    fn returned(&self) {
        let mut s = self.s.borrow_mut();
        s.noted = false;
        s.calls += 1;
    }
    fn panic_now(&self, what: &str) -> ! {
        self.s.borrow_mut().noted = true;
        std::panic::panic_any(format!("scripted panic in {what}"));
    }
    fn take_back(&self, range: Range, how: &str) -> Result<(), ArenaError> {
        let mut s = self.s.borrow_mut();
        s.release_calls += 1;
        if s.noted {
            let v = format!("{how} of {range} while the last call had panicked");
            s.violations.push(v);
        }
        match s.out.get(&range.base().0) {
            Some(&sz) if sz == range.size().0 => {}
            _ => {
                let v = format!("{how} of {range}, not handed out (twice?)");
                s.violations.push(v);
                drop(s);
                self.returned();
                return Err(ArenaError::BadImport(range));
            }
        }
        let outcome = s.pick_rel();
        s.log.push((range.base().0, outcome));
        match outcome {
            Rel::Ok => {
                s.out.remove(&range.base().0);
                drop(s);
                self.returned();
                Ok(())
            }
            Rel::Busy => {
                drop(s);
                self.returned();
                Err(ArenaError::SourceBusy)
            }
            Rel::Other => {
                drop(s);
                self.returned();
                Err(ArenaError::InvalidArgument("scripted refusal"))
            }
            Rel::Stranded => {
                s.out.remove(&range.base().0);
                s.stranded.insert(range.base().0, range.size().0);
                drop(s);
                self.returned();
                Err(ArenaError::Stranded {
                    range,
                    error: ShimError::Injected { op: vmspace_shim::Op::Unmap },
                })
            }
            Rel::PanicBefore => {
                drop(s);
                self.panic_now(how)
            }
            Rel::PanicAfter => {
                s.out.remove(&range.base().0);
                drop(s);
                self.panic_now(how)
            }
        }
    }
}

impl Source for Scripted {
    fn quantum(&self) -> Size {
        self.returned();
        Size(self.q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let mut s = self.s.borrow_mut();
        s.import_calls += 1;
        match s.pick_imp() {
            Imp::Ok => {}
            Imp::NoSpace => {
                drop(s);
                self.returned();
                return Err(ArenaError::NoSpace { size: size.0 });
            }
            Imp::Panic => {
                drop(s);
                self.panic_now("import");
            }
        }
        let base = (s.next + align.0 - 1) & !(align.0 - 1);
        s.next = base + size.0 + self.q;
        s.out.insert(base, size.0);
        drop(s);
        self.returned();
        Ok(Range::from_size(Addr(base), size).unwrap())
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.take_back(range, "release")
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.take_back(range, "release_unflushed")
    }
    fn can_import(&self) -> bool {
        self.returned();
        true
    }
    fn imports_aligned(&self) -> bool {
        self.returned();
        true
    }
}

/// The importer's side of the books, kept by a [`Recorder`].
#[derive(Default)]
pub struct Books {
    /// Spans the importer holds (base -> size).
    pub held: BTreeMap<usize, usize>,
    /// Ranges the importer must not give back now (its live allocations
    /// and unflushed frees), kept by the test.
    pub live: BTreeMap<usize, usize>,
    /// A call through the recorder unwound and none has returned since.
    pub noted: bool,
    pub violations: Vec<String>,
    pub releases: usize,
    pub calls: usize,
    /// Set while the importer is being dropped (live ranges may go back).
    pub dropping: bool,
}

impl Books {
    pub fn held_size(&self) -> usize {
        self.held.values().sum()
    }
    /// Whether `[a, a + n)` lies inside one span the importer holds.
    pub fn inside_held(&self, a: usize, n: usize) -> bool {
        self.held.range(..=a).next_back().is_some_and(|(&b, &s)| a + n <= b + s)
    }
}

/// Forwards to `S`, keeping the importer's [`Books`].
pub struct Recorder<S: Source> {
    pub inner: S,
    pub b: Rc<RefCell<Books>>,
}

impl<S: Source> Recorder<S> {
    pub fn new(inner: S) -> (Self, Rc<RefCell<Books>>) {
        let b = Rc::new(RefCell::new(Books::default()));
        (Recorder { inner, b: b.clone() }, b)
    }
    fn call<T>(&self, f: impl FnOnce() -> T) -> T {
        guarded(&self.b, f)
    }
    fn give_back(&mut self, range: Range, unflushed: bool) -> Result<(), ArenaError> {
        {
            let mut b = self.b.borrow_mut();
            b.releases += 1;
            if b.noted {
                let v = format!("give-back of {range} while the last call had unwound");
                b.violations.push(v);
            }
            if b.held.get(&range.base().0) != Some(&range.size().0) {
                let v = format!("give-back of {range}, not held (given back twice?)");
                b.violations.push(v);
            }
            if !b.dropping {
                let (lo, hi) = (range.base().0, range.limit().0);
                if let Some((&a, &n)) = b.live.range(..hi).next_back() {
                    if a + n > lo {
                        let v = format!("give-back of {range} over live {a:#x}+{n:#x}");
                        b.violations.push(v);
                    }
                }
            }
            // Off the importer's books before the source sees it.
            b.held.remove(&range.base().0);
        }
        let inner = &mut self.inner;
        let b = self.b.clone();
        let r = guarded(&b, || {
            if unflushed {
                inner.release_unflushed(range)
            } else {
                inner.release(range)
            }
        });
        match r {
            Ok(()) | Err(ArenaError::Stranded { .. }) => {}
            Err(_) => {
                self.b.borrow_mut().held.insert(range.base().0, range.size().0);
            }
        }
        r
    }
}

impl<S: Source> Source for Recorder<S> {
    fn quantum(&self) -> Size {
        self.call(|| self.inner.quantum())
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let inner = &mut self.inner;
        let b = self.b.clone();
        let r = guarded(&b, || inner.import(size, align));
        if let Ok(range) = r {
            let mut b = self.b.borrow_mut();
            if b.held
                .range(..range.limit().0)
                .next_back()
                .is_some_and(|(&a, &n)| a + n > range.base().0)
            {
                let v = format!("import of {range} overlapping a held span");
                b.violations.push(v);
            }
            b.held.insert(range.base().0, range.size().0);
        }
        r
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.give_back(range, false)
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.give_back(range, true)
    }
    fn can_import(&self) -> bool {
        self.call(|| self.inner.can_import())
    }
    fn imports_aligned(&self) -> bool {
        self.call(|| self.inner.imports_aligned())
    }
    fn refused(&mut self, range: Range) {
        self.b.borrow_mut().held.remove(&range.base().0);
        let inner = &mut self.inner;
        let b = self.b.clone();
        guarded(&b, || inner.refused(range))
    }
}

/// Run `f` (a call into a source), noting in `b` whether it unwound.
fn guarded<T>(b: &RefCell<Books>, f: impl FnOnce() -> T) -> T {
    struct G<'a>(&'a RefCell<Books>);
    impl Drop for G<'_> {
        fn drop(&mut self) {
            self.0.borrow_mut().noted = true;
        }
    }
    let g = G(b);
    let r = f();
    std::mem::forget(g);
    let mut bb = b.borrow_mut();
    bb.noted = false;
    bb.calls += 1;
    r
}

/// Silence the default panic hook's messages for scripted panics.
pub fn quiet() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let scripted = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|s| s.starts_with("scripted panic"));
        if !scripted {
            prev(info);
        }
    }));
}
