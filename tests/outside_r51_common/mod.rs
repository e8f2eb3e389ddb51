//! Shared scaffolding for the outside_r51 tests: a bottom source whose
//! give-backs succeed, refuse (busy or otherwise), strand or panic as a
//! script says, which checks every give-back against the importer's live
//! allocations (a model the test keeps), and invariant checks.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Once;

use vmspace::arena::{Arena, ArenaError, SegmentKind, SegmentKinds, SliceStore, Source};
use vmspace::{Addr, Range, ShimError, Size};

/// What a give-back does.
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

/// SplitMix64.
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

/// The bottom source's script and books.
pub struct St {
    pub q: usize,
    pub next: usize,
    /// Handed out, not taken back: base -> size.
    pub out: BTreeMap<usize, usize>,
    /// Handed out, then dropped by the importer as a give-back panicked
    /// before the source took it (lost to both).
    pub lost: BTreeMap<usize, usize>,
    pub stranded: BTreeMap<usize, usize>,
    /// The importer's live allocations (kept by the test): base -> end.
    pub live: BTreeMap<usize, usize>,
    /// The importer's unflushed ranges (kept by the test, when `check_unflushed`).
    pub unflushed: Vec<(usize, usize)>,
    pub check_unflushed: bool,
    /// The importer is being dropped (it gives back live spans then).
    pub dropping: bool,
    /// A call panicked and none has returned since.
    pub noted: bool,
    pub violations: Vec<String>,
    pub rel: VecDeque<Rel>,
    pub rel_default: Rel,
    /// Alternate Busy / Ok at every give-back (after `rel`).
    pub alternate: bool,
    flip: bool,
    /// Random outcomes (per mille: busy, other, stranded, panic before,
    /// panic after), after `rel`, when `random` is set.
    pub random: Option<(Rng, [u64; 5])>,
    /// Imports to panic before any succeeds again.
    pub imp_panics: usize,
    /// Random import panics (per mille).
    pub imp_panic_pm: u64,
    /// Every give-back: base, size and outcome.
    pub log: Vec<(usize, usize, Rel)>,
    pub imports: usize,
}

impl St {
    pub fn outstanding(&self) -> usize {
        self.out.values().sum::<usize>() - self.lost.values().sum::<usize>()
    }
    fn pick(&mut self) -> Rel {
        if let Some(r) = self.rel.pop_front() {
            return r;
        }
        if self.alternate {
            self.flip = !self.flip;
            return if self.flip { Rel::Busy } else { Rel::Ok };
        }
        if let Some((rng, w)) = self.random.as_mut() {
            let x = rng.below(1000);
            let mut acc = 0;
            for (p, r) in w.iter().zip([
                Rel::Busy,
                Rel::Other,
                Rel::Stranded,
                Rel::PanicBefore,
                Rel::PanicAfter,
            ]) {
                acc += *p;
                if x < acc {
                    return r;
                }
            }
            return Rel::Ok;
        }
        self.rel_default
    }
}

/// The bottom source (cheap to clone: shares its books).
#[derive(Clone)]
pub struct Bot(pub Rc<RefCell<St>>);

pub const Q: usize = 4096;

impl Bot {
    pub fn new() -> Self {
        Bot(Rc::new(RefCell::new(St {
            q: Q,
            next: 1 << 30,
            out: BTreeMap::new(),
            lost: BTreeMap::new(),
            stranded: BTreeMap::new(),
            live: BTreeMap::new(),
            unflushed: Vec::new(),
            check_unflushed: false,
            dropping: false,
            noted: false,
            violations: Vec::new(),
            rel: VecDeque::new(),
            rel_default: Rel::Ok,
            alternate: false,
            flip: false,
            random: None,
            imp_panics: 0,
            imp_panic_pm: 0,
            log: Vec::new(),
            imports: 0,
        })))
    }
    pub fn st(&self) -> std::cell::RefMut<'_, St> {
        self.0.borrow_mut()
    }
    fn returned(&self) {
        self.0.borrow_mut().noted = false;
    }
    fn panic_now(&self, what: &str) -> ! {
        self.0.borrow_mut().noted = true;
        std::panic::panic_any(format!("r51 scripted panic in {what}"));
    }
    fn give_back(&self, r: Range, how: &str) -> Result<(), ArenaError> {
        let (b, n) = (r.base().0, r.size().0);
        let mut s = self.0.borrow_mut();
        if s.noted {
            s.violations.push(format!("{how} of {r} while the last call had panicked"));
        }
        if s.out.get(&b) != Some(&n) || s.lost.contains_key(&b) {
            s.violations.push(format!("{how} of {r}: not handed out (given back twice?)"));
            drop(s);
            self.returned();
            return Err(ArenaError::BadImport(r));
        }
        if !s.dropping {
            let e = b + n;
            if let Some((&lb, &le)) = s.live.range(..e).next_back() {
                if le > b {
                    s.violations.push(format!("{how} of {r} holding live {lb:#x}..{le:#x}"));
                }
            }
            if s.check_unflushed && s.unflushed.iter().any(|&(ub, ue)| ub < e && ue > b) {
                s.violations.push(format!("{how} of {r} holding an unflushed segment"));
            }
        }
        let o = s.pick();
        s.log.push((b, n, o));
        match o {
            Rel::Ok => {
                s.out.remove(&b);
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
                Err(ArenaError::InvalidArgument("r51 scripted refusal"))
            }
            Rel::Stranded => {
                s.out.remove(&b);
                s.stranded.insert(b, n);
                drop(s);
                self.returned();
                Err(ArenaError::Stranded {
                    range: r,
                    error: ShimError::Injected { op: vmspace_shim::Op::Unmap },
                })
            }
            Rel::PanicBefore => {
                s.lost.insert(b, n);
                drop(s);
                self.panic_now(how)
            }
            Rel::PanicAfter => {
                s.out.remove(&b);
                drop(s);
                self.panic_now(how)
            }
        }
    }
}

impl Default for Bot {
    fn default() -> Self {
        Self::new()
    }
}

impl Source for Bot {
    fn quantum(&self) -> Size {
        self.returned();
        Size(self.0.borrow().q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let mut s = self.0.borrow_mut();
        s.imports += 1;
        let mut panic = false;
        if s.imp_panics > 0 {
            s.imp_panics -= 1;
            panic = true;
        } else if s.imp_panic_pm > 0 {
            let pm = s.imp_panic_pm;
            panic = s.random.as_mut().is_some_and(|(rng, _)| rng.below(1000) < pm);
        }
        if panic {
            drop(s);
            self.panic_now("import");
        }
        let base = (s.next + align.0 - 1) & !(align.0 - 1);
        s.next = base + size.0 + s.q;
        s.out.insert(base, size.0);
        drop(s);
        self.returned();
        Ok(Range::from_size(Addr(base), size).unwrap())
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.give_back(range, "release")
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.give_back(range, "release_unflushed")
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

pub type A<'a> = Arena<SliceStore<'a>, Bot>;

/// Silence the scripted panics (others still print).
pub fn quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let scripted = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s.starts_with("r51 scripted panic"));
            if !scripted {
                prev(info);
            }
        }));
    });
}

/// Run `f`, catching a scripted panic: whether it panicked.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ())
}

/// The imported spans that are wholly free.
pub fn wholly_free_imported(a: &A<'_>) -> Vec<Range> {
    let segs: Vec<_> = a.walk(SegmentKinds::ALL).collect();
    let mut v = Vec::new();
    for w in segs.windows(2) {
        if w[0].kind == SegmentKind::Span
            && w[0].imported
            && w[1].kind == SegmentKind::Free
            && w[1].range == w[0].range
        {
            v.push(w[0].range);
        }
    }
    v
}

/// The arena's invariants and its books against the source's.
pub fn inv(a: &A<'_>, src: &Bot, at: &str) {
    if let Err(e) = a.check() {
        panic!("{at}: check failed: {e:?}");
    }
    let s = src.0.borrow();
    assert!(s.violations.is_empty(), "{at}: source saw {:?}", s.violations);
    assert_eq!(
        a.sizes().imported.0,
        s.outstanding(),
        "{at}: sizes().imported != source's outstanding"
    );
    for seg in a.walk(SegmentKinds::SPANS) {
        if seg.imported {
            let b = seg.range.base().0;
            assert_eq!(
                s.out.get(&b),
                Some(&seg.range.size().0),
                "{at}: span {} not out",
                seg.range
            );
            assert!(!s.lost.contains_key(&b), "{at}: span {} lost yet listed", seg.range);
        }
    }
}

/// A pair of buffers for an arena's stores.
pub fn bufs() -> (Vec<u8>, Vec<u8>) {
    (vec![0u8; 512 << 10], vec![0u8; 128 << 10])
}

pub fn arena<'a>(t: &'a mut [u8], h: &'a mut [u8], src: &Bot) -> A<'a> {
    Arena::new("r51", Size(16), SliceStore::new(t), SliceStore::new(h), src.clone()).unwrap()
}
