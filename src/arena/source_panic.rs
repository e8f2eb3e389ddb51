//! The note a value keeps of a call into its source that panicked.

use core::sync::atomic::{AtomicBool, Ordering};

/// Whether a call into a source panicked, with no call into it returned
/// since: kept by each value that calls a source (an
/// [`Arena`](super::Arena); [`KeepFree`](crate::sources::KeepFree) keeps a
/// [`SharedSourcePanic`]).
///
/// A source may panic (see [`Source`](super::Source)); the value is left
/// consistent as the panic unwinds, but a give-back made meanwhile (the
/// value's drop, a free in another value's drop) would call the source
/// again, and a second panic while unwinding aborts the process. So the
/// value calls its source through [`call_mut`](Self::call_mut), and gives
/// it nothing back while [`noted`](Self::noted) says so.
///
/// The note is set for the call and cleared when it returns, so a call
/// that unwinds leaves it set. A plain `bool`: an arena calls its source
/// only with exclusive access.
///
/// # Invariants
///
/// Outside a call through `call_mut`: set exactly when the last such call
/// unwound.
#[derive(Debug, Default)]
pub(crate) struct SourcePanic(bool);

/// [`SourcePanic`] for a value that also asks its source questions through
/// a shared reference (`KeepFree`: `Source::quantum` takes `&self`), from
/// several threads at once if it is shared: an atomic (`core`'s, not
/// loom's: it orders nothing), written as a call unwinds (by a guard's
/// drop) and cleared when a call returns, so that a question under way on
/// one thread does not read as a panic to another. Where a panic aborts
/// (the kernel), nothing unwinds and the note is never written.
///
/// # Invariants
///
/// Set exactly when the last call through `call` to end, returned or
/// unwound, unwound.
#[derive(Debug, Default)]
pub(crate) struct SharedSourcePanic(AtomicBool);

/// Runs its closure when dropped: by the unwinding of the call it guards
/// (it is forgotten when the call returns).
struct OnUnwind<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

impl SourcePanic {
    /// No call has panicked.
    pub(crate) const fn new() -> Self {
        SourcePanic(false)
    }

    /// Run `f` (a call into the source): noted if it unwinds, the note
    /// cleared if it returns.
    pub(crate) fn call_mut<T>(&mut self, f: impl FnOnce() -> T) -> T {
        // With exclusive access no other call can end meanwhile, so setting
        // the note before the call is the same as setting it as the call
        // unwinds, and needs no guard (whose landing pad, inlined into the
        // allocation's entry points, cost the churn pair eight
        // instructions).
        self.0 = true;
        let r = f();
        self.0 = false;
        r
    }

    /// Whether a call into the source panicked and none has returned since.
    #[inline]
    pub(crate) fn noted(&self) -> bool {
        self.0
    }
}

impl SharedSourcePanic {
    /// No call has panicked.
    pub(crate) const fn new() -> Self {
        SharedSourcePanic(AtomicBool::new(false))
    }

    /// Run `f` (any call into the source; a shared reference is enough,
    /// as `Source`'s questions take one): noted if it unwinds, the note
    /// cleared if it returns.
    pub(crate) fn call<T>(&self, f: impl FnOnce() -> T) -> T {
        let guard = OnUnwind(|| self.0.store(true, Ordering::Relaxed));
        let r = f();
        core::mem::forget(guard);
        self.0.store(false, Ordering::Relaxed);
        r
    }

    /// Whether a call into the source panicked and none has returned since.
    #[inline]
    pub(crate) fn noted(&mut self) -> bool {
        *self.0.get_mut()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::{SharedSourcePanic, SourcePanic};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn a_returned_call_leaves_no_note() {
        let mut n = SourcePanic::new();
        assert_eq!(n.call_mut(|| 2), 2);
        assert!(!n.noted());
        let mut n = SharedSourcePanic::new();
        assert_eq!(n.call(|| 1), 1);
        assert!(!n.noted());
    }

    #[test]
    fn a_panicked_call_stays_noted_until_a_call_returns() {
        let mut n = SourcePanic::new();
        let r = catch_unwind(AssertUnwindSafe(|| n.call_mut(|| panic!("below"))));
        assert!(r.is_err());
        assert!(n.noted());
        assert!(n.noted(), "reading the note keeps it");
        n.call_mut(|| ());
        assert!(!n.noted());

        let mut n = SharedSourcePanic::new();
        let r = catch_unwind(AssertUnwindSafe(|| n.call(|| panic!("below"))));
        assert!(r.is_err());
        assert!(n.noted());
        n.call(|| ());
        assert!(!n.noted());
    }

    /// A question that returns before another thread's call panics leaves
    /// that panic noted; one that returns after it clears it (the source
    /// has answered since).
    #[test]
    fn the_last_call_to_end_decides() {
        for returns_last in [false, true] {
            let n = SharedSourcePanic::new();
            std::thread::scope(|s| {
                let n = &n;
                let (entered, wait) = std::sync::mpsc::channel::<()>();
                let (go, went) = std::sync::mpsc::channel::<()>();
                let mut a = Some(s.spawn(move || {
                    n.call(|| {
                        entered.send(()).unwrap();
                        if returns_last {
                            went.recv().unwrap();
                        }
                    })
                }));
                wait.recv().unwrap();
                if !returns_last {
                    a.take().unwrap().join().unwrap();
                }
                let b = s.spawn(move || n.call(|| panic!("below")));
                assert!(b.join().is_err());
                if returns_last {
                    go.send(()).unwrap();
                    a.take().unwrap().join().unwrap();
                }
            });
            let mut n = n;
            assert_eq!(n.noted(), !returns_last);
        }
    }
}
