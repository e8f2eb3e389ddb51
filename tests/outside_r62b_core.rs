//! Round 62b (outside reviewer): the newest core claims: the teardowns'
//! `Refused<Self>` / `ArenaError::InUse` (what is returned, what is left,
//! what `Display` says, `?`), `Store::reschedule` through a public arena,
//! and `Vm::mapped_runs_from` at its edges.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proptest::prelude::*;
use vmspace::arena::{NoSource, PageStore, Source, Store};
use vmspace::sources::KeepFree;
use vmspace::vm::Vm;
use vmspace::{Addr, Arena, ArenaError, Policy, Range, Refused, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;

fn mstore(bytes: usize) -> MStore {
    PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()
}

fn parent() -> Arena<MStore, NoSource> {
    let mut p =
        Arena::new("parent", Size(4096), mstore(1 << 20), mstore(1 << 20), NoSource).unwrap();
    p.add(Addr(1 << 32), Size(1 << 30)).unwrap();
    p
}

fn child(p: Arena<MStore, NoSource>) -> Arena<MStore, Arena<MStore, NoSource>> {
    Arena::new("child", Size(64), mstore(1 << 20), mstore(1 << 20), p).unwrap()
}

/// src/arena/teardown.rs:37-58 and src/arena/error.rs:92-97: with an
/// allocation live the arena comes back "its allocations untouched", the
/// error `InUse { what: "allocations live", size }`, and "Nothing changed";
/// `Refused`'s `Display` is its error's (src/arena/refused.rs:23-25), and
/// `InUse` reads "still in use: WHAT (SIZE)" (error.rs:172).
#[test]
fn into_source_refusal_leaves_the_arena_and_says_why() {
    let mut c = child(parent());
    let x = c.alloc(Size(100), Policy::InstantFit).unwrap();
    let before = (c.sizes(), c.live(), c.source().sizes());
    let r = c.into_source().err().expect("an allocation is live");
    let want = ArenaError::InUse { what: "allocations live", size: Size(128) };
    assert_eq!(r.error(), want);
    assert_eq!(r.to_string(), "still in use: allocations live (0x80)");
    assert_eq!(r.to_string(), want.to_string());
    assert!(format!("{r:?}").starts_with("Refused { error: InUse"), "{r:?}");
    assert!(std::error::Error::source(&r).is_none());
    let mut c = r.into_inner();
    assert_eq!((c.sizes(), c.live(), c.source().sizes()), before, "nothing changed");
    c.check().unwrap();
    c.free(x, Size(100)).unwrap();
    let p = c.into_source().unwrap_or_else(|_| panic!("nothing allocated"));
    assert_eq!(p.sizes().allocated, Size(0), "every import went back to the parent");
    p.check().unwrap();
}

/// CHANGELOG.md (Unreleased, Added): the teardowns return `Refused<Self>`
/// because "`?` did not compile on them"; src/arena/refused.rs:23: "`?` in a
/// function returning `ArenaError` drops the value". Also into
/// `Box<dyn Error>` (std) for 'static values.
#[test]
fn question_mark_works_on_the_teardowns() {
    fn take_back(
        c: Arena<MStore, Arena<MStore, NoSource>>,
    ) -> Result<Arena<MStore, NoSource>, ArenaError> {
        Ok(c.into_source()?)
    }
    fn take_back_boxed(
        c: Arena<MStore, Arena<MStore, NoSource>>,
    ) -> Result<Arena<MStore, NoSource>, Box<dyn std::error::Error>> {
        Ok(c.into_source()?)
    }
    let mut c = child(parent());
    c.alloc(Size(64), Policy::InstantFit).unwrap();
    let e = take_back(c).err().unwrap();
    assert_eq!(e, ArenaError::InUse { what: "allocations live", size: Size(64) });
    let mut c = child(parent());
    c.alloc(Size(64), Policy::InstantFit).unwrap();
    let e = take_back_boxed(c).err().unwrap();
    assert_eq!(e.to_string(), "still in use: allocations live (0x40)");
    assert!(take_back(child(parent())).is_ok());
}

/// src/arena/teardown.rs:38-43 + 56: a segment waiting for a flush keeps
/// the arena ("segments waiting for a flush (only then is anything given
/// back)"): the imported span stays imported and the parent's allocation
/// stays.
#[test]
fn into_source_with_an_unflushed_segment_gives_nothing_back() {
    let mut c = child(parent());
    let x = c.alloc(Size(256), Policy::InstantFit).unwrap();
    c.free_deferred(x, Size(256)).unwrap();
    let imported = c.sizes().imported;
    let parent_alloc = c.source().sizes().allocated;
    assert!(imported > Size(0));
    let r = c.into_source().err().expect("unflushed");
    assert_eq!(
        r.error(),
        ArenaError::InUse { what: "segments waiting for a flush", size: Size(256) }
    );
    let mut c = r.into_inner();
    assert_eq!((c.sizes().imported, c.source().sizes().allocated), (imported, parent_alloc));
    c.flushed();
    let p = c.into_source().unwrap_or_else(|_| panic!("flushed"));
    assert_eq!(p.sizes().allocated, Size(0));
}

type Shared = RefCell<Arena<MStore, NoSource>>;

/// src/sources/keep.rs:180-189: "If it refused one, this source comes back
/// instead (`Err`), keeping the spans refused ... `InUse` counts the spans
/// still kept"; then, the source free again, it gives the source back.
#[test]
fn keep_free_into_inner_refused_keeps_its_spans_and_counts_them() {
    let shared: Shared = RefCell::new(parent());
    let mut k: KeepFree<&Shared, 4> = KeepFree::new(&shared, Size(4096));
    let a = k.import(Size(8192), Size(4096)).unwrap();
    let b = k.import(Size(4096), Size(4096)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap();
    assert_eq!(k.kept_size(), Size(3 * 4096), "both kept");
    let kept: Vec<Range> = k.kept().to_vec();
    let r = {
        let _busy = shared.borrow_mut();
        k.into_inner().err().expect("the source refuses (busy)")
    };
    let want = ArenaError::InUse { what: "kept spans not given back", size: Size(3 * 4096) };
    assert_eq!(r.error(), want);
    assert_eq!(r.to_string(), "still in use: kept spans not given back (0x3000)");
    let k = r.into_inner();
    assert_eq!(k.kept(), &kept[..], "the spans refused are still kept");
    assert_eq!(shared.borrow().sizes().allocated, Size(3 * 4096), "still taken below");
    let inner = k.into_inner().unwrap_or_else(|_| panic!("the source is free"));
    assert!(std::ptr::eq(inner, &shared));
    assert_eq!(shared.borrow().sizes().allocated, Size(0), "every kept span went back");
}

/// A `Vec`-backed store that counts its reschedule points (shared count:
/// the arena owns the store).
struct Counting {
    buf: Vec<u64>,
    committed: usize,
    n: Rc<Cell<usize>>,
}

// SAFETY: base fixed (the Vec never reallocates), aligned to 8, all bytes
// initialized; committed only grows and is unchanged on failure.
unsafe impl Store for Counting {
    fn base(&self) -> *mut u8 {
        self.buf.as_ptr() as *mut u8
    }
    fn committed(&self) -> usize {
        self.committed
    }
    fn grow(&mut self, bytes: usize) -> Result<(), ArenaError> {
        if bytes > self.capacity() {
            return Err(ArenaError::TagsExhausted);
        }
        self.committed = self.committed.max(bytes);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.buf.len() * 8
    }
    fn reschedule(&self) {
        self.n.set(self.n.get() + 1);
    }
}

fn counting(bytes: usize, n: &Rc<Cell<usize>>) -> Counting {
    Counting { buf: vec![0u64; bytes / 8], committed: 0, n: n.clone() }
}

/// CHANGELOG.md (Unreleased, Added) and src/arena/hash.rs:26-29: "the
/// address hash calls it every 4,096 buckets or entries it moves when it
/// doubles". 100,000 live allocations: the doubling from 65,536 buckets
/// alone moves 65,536 buckets and 65,537 entries (32 reschedule points);
/// from 4,096 up, at least 62 in all. A few allocations: no doubling that
/// long, no reschedule.
#[test]
fn a_public_arena_reschedules_while_its_hash_doubles() {
    let n = Rc::new(Cell::new(0));
    let mut a =
        Arena::new("r", Size(16), counting(64 << 20, &n), counting(8 << 20, &n), NoSource).unwrap();
    a.add(Addr(1 << 32), Size(1 << 30)).unwrap();
    for _ in 0..100 {
        a.alloc(Size(16), Policy::InstantFit).unwrap();
    }
    assert_eq!(n.get(), 0, "no doubling of 4,096 steps yet");
    for _ in 100..100_000 {
        a.alloc(Size(16), Policy::InstantFit).unwrap();
    }
    let got = n.get();
    assert!((62..=63).contains(&got), "{got} reschedule points over doublings to 131,072 buckets");
    a.check().unwrap();
}

const PAGE: usize = 64;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// src/vm/mod.rs:272-277: the runs from the page holding `addr` on
    /// ("a run that holds that page starts there"); "An address below the
    /// client range starts at its base; one past it yields nothing".
    #[test]
    fn mapped_runs_from_is_the_runs_cut_at_the_page(
        spans in prop::collection::vec((0usize..200, 1usize..12, any::<bool>()), 0..40),
        probes in prop::collection::vec(any::<usize>(), 1..20),
    ) {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let mut vm = Vm::reserve(&sim, Size(200 * PAGE), Size(PAGE)).unwrap();
        let b = vm.base().0;
        let pages = vm.range().size().0 / PAGE;
        let mut model = vec![false; pages];
        for (first, len, map) in spans {
            let end = (first + len).min(pages);
            if first >= end { continue; }
            let r = Range::new(Addr(b + first * PAGE), Addr(b + end * PAGE)).unwrap();
            if map && model[first..end].iter().all(|m| !m) {
                vm.map(r).unwrap();
                model[first..end].fill(true);
            } else if !map && model[first..end].iter().all(|m| *m) {
                vm.unmap(r).unwrap();
                model[first..end].fill(false);
            }
        }
        let runs_from = |p: usize| -> Vec<Range> {
            let mut out = Vec::new();
            let mut i = p;
            while i < pages {
                if !model[i] { i += 1; continue; }
                let s = i;
                while i < pages && model[i] { i += 1; }
                out.push(Range::new(Addr(b + s * PAGE), Addr(b + i * PAGE)).unwrap());
            }
            out
        };
        let all: Vec<Range> = vm.mapped_runs().collect();
        prop_assert_eq!(&all, &runs_from(0));
        let mut addrs = vec![0, 1, b - 1, b, vm.limit().0 - 1, vm.limit().0, usize::MAX];
        addrs.extend(probes.iter().map(|x| b + x % (pages * PAGE + 3 * PAGE)));
        for a in addrs {
            let page = if a < b { 0 } else { ((a - b) / PAGE).min(pages) };
            let got: Vec<Range> = vm.mapped_runs_from(Addr(a)).collect();
            prop_assert_eq!(got, runs_from(page), "from {:#x}", a);
        }
    }
}

/// A `Refused` of a value that is not `Debug` still unwraps
/// (src/arena/refused.rs:23-25), here the arena of `into_source`.
#[test]
fn refused_debug_needs_nothing_of_the_value() {
    fn _is_debug<T: std::fmt::Debug>() {}
    _is_debug::<Refused<Arena<MStore, NoSource>>>();
    let r = Arena::new("x", Size(3), mstore(1 << 16), mstore(1 << 16), NoSource);
    let e = r.err().expect("quantum 3 refused");
    assert!(matches!(e.error(), ArenaError::InvalidArgument(_)));
}
