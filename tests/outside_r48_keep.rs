//! Round 48 outside review: `KeepFree` (`below`/`below_ref`, `in_below`,
//! `SourceBusy` while a call below has not returned, the shortage retry,
//! `into_inner`) against a strict source that panics at random calls of any
//! of its methods, driven directly and under an arena; `KeepCounts`
//! against what the source saw.
//!
//! src/sources/keep.rs:58-64: "once a call into `S` (any of its methods)
//! panics, `S` is given nothing back until a call into it returns again
//! (an import): a give-back is refused with `SourceBusy` ..., `trim` gives
//! nothing back, and the drop leaves the kept spans taken on `S`'s books".

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

mod outside_common;
use outside_common::Rng;

#[derive(Default)]
struct St {
    next: usize,
    out: BTreeSet<(usize, usize)>,
    /// Room left (in bytes): imports past it are `NoSpace`.
    room: usize,
    rng: u64,
    panic_one_in: u64,
    /// A call panicked and none has returned since.
    pending: bool,
    imports_ok: u64,
    releases_ok: u64,
    releases_err: u64,
    violations: Vec<String>,
    /// Panic in the next call of this method.
    panic_in: Option<&'static str>,
}

impl St {
    fn maybe_panic(&mut self, what: &str) -> bool {
        if self.panic_in == Some(what) {
            self.panic_in = None;
            self.pending = true;
            return true;
        }
        if self.panic_one_in == 0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if self.rng % self.panic_one_in == 0 {
            self.pending = true;
            let _ = what;
            return true;
        }
        false
    }
}

#[derive(Clone)]
struct Strict(Rc<RefCell<St>>);

impl Strict {
    /// Run `f` on the state; panic (after releasing the borrow) when drawn.
    fn call<T>(&self, what: &str, give_back: bool, f: impl FnOnce(&mut St) -> T) -> T {
        let p = {
            let mut s = self.0.borrow_mut();
            if give_back && s.pending {
                s.violations.push(format!("{what} while a panicked call has not returned"));
            }
            s.maybe_panic(what)
        };
        if p {
            panic!("the source panics in {what}");
        }
        let mut s = self.0.borrow_mut();
        s.pending = false;
        f(&mut s)
    }
}

impl Source for Strict {
    fn quantum(&self) -> Size {
        self.call("quantum", false, |_| Size(Q))
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.call("import", false, |s| {
            if size.0 > s.room {
                return Err(ArenaError::NoSpace { size: size.0 });
            }
            if s.next == 0 {
                s.next = 1 << 30;
            }
            let base = s.next.next_multiple_of(align.0);
            s.next = base + size.0 + Q;
            s.room -= size.0;
            s.out.insert((base, size.0));
            s.imports_ok += 1;
            Ok(Range::from_size(Addr(base), size).unwrap())
        })
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        self.call("release", true, |s| {
            if s.out.remove(&(r.base().0, r.size().0)) {
                s.room += r.size().0;
                s.releases_ok += 1;
                Ok(())
            } else {
                s.releases_err += 1;
                Err(ArenaError::BadFree { addr: r.base(), size: r.size(), allocated: None })
            }
        })
    }
    fn release_unflushed(&mut self, r: Range) -> Result<(), ArenaError> {
        // Kept taken for good, but counted as a successful give-back.
        self.call("release_unflushed", true, |s| {
            if s.out.contains(&(r.base().0, r.size().0)) {
                s.releases_ok += 1;
                Ok(())
            } else {
                s.releases_err += 1;
                Err(ArenaError::SourceBusy)
            }
        })
    }
    fn can_import(&self) -> bool {
        self.call("can_import", false, |_| true)
    }
    fn imports_aligned(&self) -> bool {
        self.call("imports_aligned", false, |_| true)
    }
    fn refused(&mut self, r: Range) {
        self.call("refused", false, |s| {
            s.out.remove(&(r.base().0, r.size().0));
        })
    }
}

fn strict(seed: u64, panic_one_in: u64, room: usize) -> Strict {
    Strict(Rc::new(RefCell::new(St { rng: seed | 1, panic_one_in, room, ..Default::default() })))
}

/// `KeepFree` driven directly, against a model: ranges live with the
/// caller, ranges lost in a panicking give-back. After every step: its
/// `check`, nothing handed out twice, S's books = live + kept + lost, and
/// the counts against S's.
fn drive<const N: usize>(seed: u64) {
    let s = strict(seed, 9, 24 * Q);
    let st = s.0.clone();
    let mut k = KeepFree::<_, N>::new(s, Size(Q));
    let mut rng = Rng(seed);
    let mut live: Vec<Range> = Vec::new();
    let mut lost: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut from_kept_released = 0u64;
    for step in 0..400 {
        let before_kept: Vec<Range> = k.kept().to_vec();
        let op = rng.below(10);
        let res = catch_unwind(AssertUnwindSafe(|| match op {
            0..=4 => {
                let size = Size(Q << rng.below(3));
                let align = Size(Q << rng.below(2));
                k.import(size, align).map(Some)
            }
            5..=7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                k.release(live[i]).map(|_| None)
            }
            8 => {
                let _ = k.trim();
                Ok(None)
            }
            _ => Ok(None),
        }));
        // The model.
        let panicked = res.is_err();
        match (op, res) {
            (0..=4, Ok(Ok(Some(r)))) => {
                if live.iter().any(|l| l.overlaps(&r)) {
                    panic!("seed {seed} step {step}: {r:?} handed out twice");
                }
                live.push(r);
            }
            (5..=7, Ok(Ok(_))) => {}
            _ => {}
        }
        // A released live range: gone from live if it left (kept or S took it).
        live.retain(|l| {
            let held = st.borrow().out.contains(&(l.base().0, l.size().0));
            let kept = k.kept().contains(l);
            held && !kept
        });
        // Ranges that were kept before and are neither kept now nor held
        // by S: released (or lost, if the step panicked).
        for r in &before_kept {
            let held = st.borrow().out.contains(&(r.base().0, r.size().0));
            if !k.kept().contains(r) && held && !live.contains(r) {
                // taken off the kept list but still out at S: a reuse
                // (handed out again: now live) or lost in a panic.
                if panicked {
                    lost.insert((r.base().0, r.size().0));
                }
            }
            if !held {
                from_kept_released += 1;
            }
        }
        // `check` asks S its quantum (a call that returns): panics off,
        // and the pending flag kept as it was.
        let (p1, pend) = {
            let mut b = st.borrow_mut();
            let v = (b.panic_one_in, b.pending);
            b.panic_one_in = 0;
            v
        };
        if let Err(e) = k.check() {
            panic!("seed {seed} step {step}: check {e:?}");
        }
        {
            let mut b = st.borrow_mut();
            b.panic_one_in = p1;
            let _ = pend;
        }
        let s = st.borrow();
        if !s.violations.is_empty() {
            panic!("seed {seed} step {step}: {:?}", s.violations);
        }
        // S's books: live + kept + lost (a panicking release of a live
        // range may also leave it out at S and not live here).
        let mut books: BTreeSet<(usize, usize)> =
            live.iter().chain(k.kept()).map(|r| (r.base().0, r.size().0)).collect();
        books.extend(lost.iter().copied());
        for o in &s.out {
            if !books.contains(o) {
                // Lost in a panic (a live release or a trim): note it.
                lost.insert(*o);
            }
        }
        let c = k.counts();
        assert_eq!(c.imported, s.imports_ok, "seed {seed} step {step}: imports {c:?}");
        assert_eq!(c.released, s.releases_ok, "seed {seed} step {step}: releases {c:?}");
        assert_eq!(c.release_failures, s.releases_err, "seed {seed} step {step}: failures {c:?}");
    }
    let _ = from_kept_released;
    st.borrow_mut().panic_one_in = 0;
    drop(k);
    let s = st.borrow();
    assert!(s.violations.is_empty(), "seed {seed}: {:?}", s.violations);
}

#[test]
fn keepfree_over_a_source_panicking_in_any_method() {
    for seed in 1..=40u64 {
        drive::<2>(seed * 0x9e37_79b9);
        drive::<0>(seed * 0x1234_5677);
        drive::<5>(seed * 0x7777_1111);
    }
}

/// An arena over `KeepFree` over the strict panicking source; after every
/// step the arena's `check`, the adapter's, and the source never called
/// for a give-back while a panicked call has not returned.
#[test]
fn arena_over_keepfree_over_a_panicking_source() {
    for seed in 1..=30u64 {
        let s = strict(seed * 77, 0, 64 * Q);
        let st = s.0.clone();
        let keep = KeepFree::<_, 3>::new(s, Size(2 * Q));
        let (mut t, mut h) = (vec![0u8; 32 << 10], vec![0u8; 4 << 10]);
        // (`Arena::new` asks the source questions: panics start after it.)
        let mut a =
            Arena::new("a", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), keep)
                .unwrap();
        let mut rng = Rng(seed);
        let mut live: Vec<(Addr, Size)> = Vec::new();
        st.borrow_mut().panic_one_in = 11;
        for step in 0..300 {
            let op = rng.below(6);
            let r = catch_unwind(AssertUnwindSafe(|| match op {
                0..=2 => {
                    let size = Size(16 << rng.below(10));
                    a.alloc(size, Policy::InstantFit).map(|x| Some((x, size)))
                }
                3 | 4 if !live.is_empty() => {
                    let i = rng.below(live.len() as u64) as usize;
                    let (x, sz) = live[i];
                    a.free(x, sz).map(|_| None)
                }
                _ => {
                    let _ = a.source_mut().trim();
                    Ok(None)
                }
            }));
            match (op, r) {
                (0..=2, Ok(Ok(Some(x)))) => live.push(x),
                (3 | 4, r) if !live.is_empty() => {
                    // A free that returned Ok, or that panicked after it
                    // took the segment (the give-back): gone either way if
                    // the arena no longer has it allocated.
                    let _ = r;
                    let gone: Vec<_> = live
                        .iter()
                        .copied()
                        .filter(|(x, _)| {
                            !a.walk(vmspace::arena::SegmentKinds::ALLOCATED)
                                .any(|s| s.range.base() == *x)
                        })
                        .collect();
                    live.retain(|l| !gone.contains(l));
                }
                _ => {}
            }
            a.check().unwrap_or_else(|e| panic!("seed {seed} step {step}: {e:?}"));
            let p1 = std::mem::take(&mut st.borrow_mut().panic_one_in);
            a.source().check().unwrap_or_else(|e| panic!("seed {seed} step {step}: {e:?}"));
            st.borrow_mut().panic_one_in = p1;
            let v = &st.borrow().violations;
            assert!(v.is_empty(), "seed {seed} step {step}: {v:?}");
        }
        st.borrow_mut().panic_one_in = 0;
        for (x, sz) in live {
            a.free(x, sz).unwrap();
        }
        a.check().unwrap();
        drop(a);
        let v = &st.borrow().violations;
        assert!(v.is_empty(), "seed {seed}: {v:?}");
    }
}

/// A shortage below while spans are kept, where the retry's trim panics:
/// the import unwinds, the rest of the kept spans stay, `into_inner`
/// refuses (spans kept, nothing returned since), and after an import
/// returns `into_inner` gives `S` back with everything.
#[test]
fn shortage_retry_whose_trim_panics_then_into_inner() {
    let s = strict(5, 0, 4 * Q);
    let st = s.0.clone();
    let mut k = KeepFree::<_, 4>::new(s, Size(Q));
    let rs: Vec<_> = (0..4).map(|_| k.import(Size(Q), Size(Q)).unwrap()).collect();
    for r in &rs {
        k.release(*r).unwrap();
    }
    assert_eq!(k.kept().len(), 4);
    // An import of 2Q: no kept span of that size; S has no room: trim.
    // Make the trim's first release panic.
    st.borrow_mut().panic_in = Some("release");
    let r = catch_unwind(AssertUnwindSafe(|| k.import(Size(2 * Q), Size(Q))));
    assert!(r.is_err());
    let kept = k.kept().len();
    assert_eq!(kept, 3, "one span lost in the panic, three kept");
    // Nothing returned since the panic: trim gives nothing back.
    assert_eq!(k.trim(), Size(0));
    let k = match k.into_inner() {
        Ok(_) if kept > 0 => panic!("into_inner with {kept} spans kept after a panic"),
        Ok(_) => return,
        Err(k) => k.into_inner(),
    };
    let mut k = k;
    // An import returns: give-backs resume.
    let x = k.import(Size(Q), Size(Q));
    if let Ok(x) = x {
        k.release(x).unwrap();
    }
    let counts = k.counts();
    let kept_n = k.kept().len() as u64;
    let inner = match k.into_inner() {
        Ok(i) => i,
        Err(k) => panic!("into_inner refused: kept {:?}", k.get_ref().kept()),
    };
    let s = inner.0.borrow();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(counts.imported, s.imports_ok);
    assert_eq!(counts.released + kept_n, s.releases_ok);
}

/// `KeepFree` was `!Sync` for a while (its note of a call below was a
/// `Cell`); the note is an atomic now (`SourcePanic`), so it is `Sync` again
/// over a `Sync` source, and a `SyncArena` over it is `Sync`.
#[test]
fn sync_arena_over_keepfree_is_sync() {
    fn sync<T: Sync>() {}
    fn send<T: Send>() {}
    type K = KeepFree<NoSource, 2>;
    send::<K>();
    sync::<K>();
    sync::<
        vmspace::sync::SyncArena<
            vmspace::sync::SpinLock,
            vmspace::sync::NoWait,
            SliceStore<'static>,
            K,
        >,
    >();
}
