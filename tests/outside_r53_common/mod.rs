//! Round 53's shared source: hands out fresh aligned ranges and takes
//! give-backs as its script says, keeping books the tests read after the
//! arena is gone (what is out, what came back, twice-given ranges).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use vmspace::arena::{ArenaError, Source};
use vmspace::{Addr, Range, ShimError, Size};

pub const PAGE: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Give {
    Take,
    Refuse,
    Busy,
    Strand,
    /// Panic before touching the books (the range stays out).
    PanicBefore,
    /// Take the range back, then panic.
    PanicAfter,
}

#[derive(Default, Debug)]
pub struct Books {
    pub next: usize,
    pub out: BTreeMap<usize, usize>,
    pub stranded: usize,
    pub script: Vec<Give>,
    /// Every release call, with the answer given.
    pub calls: Vec<(usize, Give)>,
    /// Releases of a range not out (given back twice, or never imported).
    pub bogus: usize,
    /// While set, every release answers this (after the script).
    pub always: Option<Give>,
}

#[derive(Clone)]
pub struct Model(pub Rc<RefCell<Books>>);

impl Model {
    pub fn new() -> Self {
        Model(Rc::new(RefCell::new(Books { next: 1 << 32, ..Books::default() })))
    }
    pub fn outstanding(&self) -> usize {
        self.0.borrow().out.values().sum()
    }
    pub fn script(&self, s: &[Give]) {
        self.0.borrow_mut().script = s.to_vec();
    }
    pub fn always(&self, g: Option<Give>) {
        self.0.borrow_mut().always = g;
    }
    pub fn calls(&self) -> usize {
        self.0.borrow().calls.len()
    }
    pub fn bogus(&self) -> usize {
        self.0.borrow().bogus
    }
    pub fn stranded(&self) -> usize {
        self.0.borrow().stranded
    }
}

impl Source for Model {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let mut b = self.0.borrow_mut();
        let base = b.next.next_multiple_of(align.0.max(PAGE));
        b.next = base + size.0 + PAGE;
        b.out.insert(base, size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        let mut b = self.0.borrow_mut();
        let give =
            if !b.script.is_empty() { b.script.remove(0) } else { b.always.unwrap_or(Give::Take) };
        b.calls.push((r.base().0, give));
        if b.out.get(&r.base().0) != Some(&r.size().0) {
            b.bogus += 1;
        }
        match give {
            Give::Take => {
                b.out.remove(&r.base().0);
                Ok(())
            }
            Give::Refuse => Err(ArenaError::InvalidArgument("scripted refusal")),
            Give::Busy => Err(ArenaError::SourceBusy),
            Give::Strand => {
                b.out.remove(&r.base().0);
                b.stranded += r.size().0;
                Err(ArenaError::Stranded {
                    range: r,
                    error: ShimError::Injected { op: vmspace_shim::Op::Unmap },
                })
            }
            Give::PanicBefore => {
                drop(b);
                panic!("scripted panic before taking {r}");
            }
            Give::PanicAfter => {
                b.out.remove(&r.base().0);
                drop(b);
                panic!("scripted panic after taking {r}");
            }
        }
    }
}

pub fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes, borrowed as long as `v`.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// Silence the scripted panics' messages (others still print).
pub fn quiet() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let scripted =
            info.payload().downcast_ref::<String>().is_some_and(|s| s.starts_with("scripted"));
        if !scripted {
            default(info);
        }
    }));
}

/// Buffers for [`cached`]: tags, hash and the quantum caches' tables.
pub fn cached_buffers() -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    (vec![0u64; 1 << 12], vec![0u64; 1 << 10], vec![0u64; 1 << 16])
}

/// An arena of quantum 16 over `m` in the buffers of [`cached_buffers`],
/// shared behind a spin lock with quantum caches of 4 classes.
pub fn cached<'a>(
    m: &Model,
    (t, h, q): (&'a mut [u64], &'a mut [u64], &'a mut [u64]),
) -> vmspace::sync::SyncArena<
    vmspace::sync::SpinLock,
    vmspace::sync::NoWait,
    vmspace::arena::SliceStore<'a>,
    Model,
> {
    use vmspace::arena::{Arena, SliceStore};
    let a =
        Arena::new("q", Size(16), SliceStore::new(bytes(t)), SliceStore::new(bytes(h)), m.clone())
            .unwrap();
    let caches = vmspace::qcache::QCacheConfig::new(4, SliceStore::new(bytes(q)));
    vmspace::sync::SyncArena::with_quantum_caches(a, caches).unwrap()
}

/// An arena of quantum [`PAGE`] over `m`, its tags and hash in `t` and `h`
/// (as [`cached_buffers`] makes them).
pub fn paged<'a>(
    m: &Model,
    t: &'a mut [u64],
    h: &'a mut [u64],
) -> vmspace::arena::Arena<vmspace::arena::SliceStore<'a>, Model> {
    use vmspace::arena::{Arena, SliceStore};
    Arena::new("c", Size(PAGE), SliceStore::new(bytes(t)), SliceStore::new(bytes(h)), m.clone())
        .unwrap()
}
