//! `KeepFree` is `Sync` over a `Sync` source now: questions (`quantum`,
//! `can_import`, `imports_aligned`) asked through a shared `&KeepFree` from
//! several threads while one of them panics in the source below. The
//! documented rule: after the panic, nothing goes back (give-backs refused
//! with `SourceBusy`, `trim` gives nothing, drop leaves kept spans) until a
//! call into the source returns again.

mod child_process;
use child_process::{run_child, scenario};

use std::cell::Cell;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

use vmspace::arena::{ArenaError, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const VAR: &str = "VMSPACE_R49_KEEP_THREADS_CHILD";

thread_local! {
    /// This thread's next question panics.
    static PANIC_HERE: Cell<bool> = const { Cell::new(false) };
}

#[derive(Clone, Default)]
struct Shared {
    next: Arc<AtomicUsize>,
    out: Arc<Mutex<BTreeSet<(usize, usize)>>>,
    releases: Arc<AtomicUsize>,
    /// Every give-back panics (a second panic while unwinding aborts).
    release_panics: Arc<AtomicBool>,
}

impl Shared {
    fn question(&self) {
        if PANIC_HERE.with(|p| p.replace(false)) {
            panic!("below panics");
        }
    }
}

impl Source for Shared {
    fn quantum(&self) -> Size {
        self.question();
        Size(Q)
    }
    fn can_import(&self) -> bool {
        self.question();
        true
    }
    fn imports_aligned(&self) -> bool {
        self.question();
        true
    }
    fn import(&mut self, size: Size, _: Size) -> Result<Range, ArenaError> {
        let base = self.next.fetch_add(size.0 + Q, SeqCst) + (1 << 20);
        self.out.lock().unwrap().insert((base, size.0));
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        assert!(!self.release_panics.load(SeqCst), "below panics");
        self.releases.fetch_add(1, SeqCst);
        assert!(self.out.lock().unwrap().remove(&(r.base().0, r.size().0)), "given back twice");
        Ok(())
    }
}

fn quiet() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if msg != "below panics" {
            prev(info);
        }
    }));
}

fn assert_sync<T: Sync>(_: &T) {}

/// Four threads ask questions through `&KeepFree`; after a barrier, one of
/// them asks once more and panics, the others having finished. Then: a
/// give-back is refused with `SourceBusy` (not kept), `trim` gives
/// nothing, `check()` holds, the counts are unchanged; after one question
/// returns (on another thread), give-backs resume: kept, then trimmed.
#[test]
fn a_panicking_question_on_one_thread_stops_give_backs_until_one_returns() {
    quiet();
    let mut k = KeepFree::<_, 4>::new(Shared::default(), Size(Q));
    assert_sync(&k);
    let a = k.import(Size(Q), Size(Q)).unwrap();
    let b = k.import(Size(2 * Q), Size(Q)).unwrap();
    let c = k.import(Size(Q), Size(Q)).unwrap();
    k.release(c).unwrap();
    assert_eq!(k.kept(), &[c]);
    let before = k.counts();
    let bar = Barrier::new(4);
    std::thread::scope(|s| {
        let (k, bar) = (&k, &bar);
        let mut hs = Vec::new();
        for t in 0..4 {
            hs.push(s.spawn(move || {
                for i in 0..2000 {
                    match (i + t) % 3 {
                        0 => assert_eq!(k.quantum(), Size(Q)),
                        1 => assert!(k.can_import()),
                        _ => assert!(k.imports_aligned()),
                    }
                }
                bar.wait();
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        let p = s.spawn(move || {
            PANIC_HERE.with(|p| p.set(true));
            k.can_import()
        });
        assert!(p.join().is_err());
    });
    assert_eq!(
        k.release(a),
        Err(ArenaError::SourceBusy),
        "refused while the panic is the last word"
    );
    assert_eq!(k.trim(), Size(0), "trim gives nothing");
    assert_eq!(k.kept(), &[c]);
    assert_eq!(k.counts(), before, "nothing counted");
    k.check().unwrap();
    // A question returns on another thread: give-backs resume.
    std::thread::scope(|s| {
        let k = &k;
        assert!(s.spawn(move || k.quantum()).join().is_ok());
    });
    k.release(a).unwrap();
    assert_eq!(k.kept(), &[c, a]);
    assert_eq!(k.trim(), Size(2 * Q));
    k.release(b).unwrap();
    k.check().unwrap();
    drop(k);
    // (Shared's books: everything went back once; release asserts that.)
}

/// The adapter, owned by the main thread, is dropped as the panic of a
/// question asked on a scoped thread propagates out of `thread::scope`:
/// with kept spans and a source whose give-backs panic, its drop must not
/// call the source (an abort: run in a child process).
#[test]
fn dropped_as_a_scoped_threads_panic_propagates() {
    let name = "dropped_as_a_scoped_threads_panic_propagates";
    if scenario(VAR).is_some() {
        quiet();
        let sh = Shared::default();
        let sh2 = sh.clone();
        let r = catch_unwind(AssertUnwindSafe(move || {
            let mut k = KeepFree::<_, 2>::new(sh2.clone(), Size(Q));
            let a = k.import(Size(Q), Size(Q)).unwrap();
            k.release(a).unwrap();
            sh2.release_panics.store(true, SeqCst);
            std::thread::scope(|s| {
                let k = &k;
                s.spawn(move || {
                    PANIC_HERE.with(|p| p.set(true));
                    k.quantum()
                });
            });
        }));
        assert!(r.is_err());
        assert_eq!(sh.releases.load(SeqCst), 0);
        return;
    }
    let st = run_child(name, VAR, "run");
    assert!(st.success(), "child ended with {st:?} (an abort: a panic while panicking)");
}
