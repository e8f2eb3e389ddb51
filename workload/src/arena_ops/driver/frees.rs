//! The driver's frees: by address, by handle, deferred (the range waits,
//! taken, for the flush), the flush, and bad frees; what the model predicts
//! for each and how it follows them.

use vmspace_shim::{Addr, Size};

use super::{ArenaDriver, ArenaRunError, Outcome};
use crate::arena_ops::target::ArenaTarget;
use crate::arena_ops::ArenaOp;
use vmspace::arena::{ArenaError, SegmentKind, SegmentKinds};

impl<const N: usize, const M: usize> ArenaDriver<N, M> {
    /// [`ArenaOp::Free`](crate::arena_ops::ArenaOp::Free) of taken range
    /// `pick % occupied`: through the interface that allocated it, plainly
    /// or with `deferred` ([`ArenaTarget::free_deferred`],
    /// [`ArenaTarget::free_handle_deferred`]). A range freed but not
    /// flushed is no allocation: every free of it is bad. `None` when
    /// nothing is taken.
    pub(super) fn free<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        pick: usize,
        deferred: bool,
    ) -> Result<Option<Outcome>, &'static str> {
        if self.model.ntaken == 0 {
            return Ok(None);
        }
        let i = pick % self.model.ntaken;
        let l = self.model.taken[i];
        if l.tag == 0 && !l.unflushed {
            self.wrong_size_free(arena, l.addr, l.asked, deferred)?;
        }
        if deferred && l.tag != 0 {
            return self.free_held_deferred(arena, i).map(Some);
        }
        if deferred {
            let valid = !l.unflushed;
            let r = arena.free_deferred(Addr(l.addr), Size(l.asked));
            match (&r, valid) {
                (Ok(()), true) => self.model.defer(i),
                (Err(ArenaError::BadFree { .. }), false) => self.model.bad_frees += 1,
                _ => {}
            }
            return Ok(Some((valid, r)));
        }
        let r = match arena.handle_from_parts(Addr(l.addr), l.tag) {
            Some(h) => {
                // Held and then deferred by its handle, it is no allocation.
                let r = self.free_held(arena, h, (!l.unflushed).then_some(i))?;
                if l.unflushed && matches!(r, Err(ArenaError::BadHandle { .. })) {
                    self.model.bad_frees += 1;
                }
                r
            }
            None => {
                let r = arena.free(Addr(l.addr), Size(l.asked));
                match (&r, l.unflushed) {
                    (Ok(()), false) => self.model.forget(i),
                    (Err(ArenaError::BadFree { .. }), true) => self.model.bad_frees += 1,
                    _ => {}
                }
                r
            }
        };
        Ok(Some((!l.unflushed, r)))
    }

    /// A deferred free of taken range `i`, allocated by handle: refused by
    /// address (it is held), then by its handle
    /// ([`ArenaTarget::free_handle_deferred`]), valid while it is live.
    fn free_held_deferred<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        i: usize,
    ) -> Result<Outcome, &'static str> {
        let l = self.model.taken[i];
        match arena.free_deferred(Addr(l.addr), Size(l.asked)) {
            Err(ArenaError::BadFree { .. }) => self.model.bad_frees += 1,
            Err(e) if super::is_resource(&e) => {}
            Err(_) => return Err("a held allocation's deferred free by address failed oddly"),
            Ok(()) => return Err("a held allocation was freed by address"),
        }
        let Some(h) = arena.handle_from_parts(Addr(l.addr), l.tag) else {
            return Err("a held allocation's parts make no handle");
        };
        let valid = !l.unflushed;
        let r = arena.free_handle_deferred(h);
        match (&r, valid) {
            (Ok(size), true) if size.0 == l.asked => self.model.defer(i),
            (Ok(_), true) => return Err("free_handle_deferred returned the wrong size"),
            (Err(ArenaError::BadHandle { .. }), false) => self.model.bad_frees += 1,
            _ => {}
        }
        Ok((valid, r.map(drop)))
    }

    /// Before a valid free by address: the same free with one unit more
    /// than was asked (mostly in the same quantum) must be refused as bad
    /// and change nothing (the step's comparison after the real free sees
    /// any change).
    fn wrong_size_free<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        addr: usize,
        asked: usize,
        deferred: bool,
    ) -> Result<(), &'static str> {
        let Some(wrong) = asked.checked_add(1) else { return Ok(()) };
        let r = if deferred {
            arena.free_deferred(Addr(addr), Size(wrong))
        } else {
            arena.free(Addr(addr), Size(wrong))
        };
        match r {
            Err(ArenaError::BadFree { .. }) => {
                self.model.bad_frees += 1;
                Ok(())
            }
            Err(e) if super::is_resource(&e) => Ok(()),
            Err(_) => Err("a free of the wrong size was refused with an error other than BadFree"),
            Ok(()) => Err("a free of the wrong size was accepted"),
        }
    }

    /// Flush, then free every taken range, each as a checked step, and
    /// require the arena to hold nothing but its added spans: no allocation,
    /// nothing freed but not flushed, and no imported span (each went back
    /// to the source when the last thing in it was freed or flushed). For
    /// the end of a run without injected faults (a source that fails a
    /// give-back keeps its span).
    // The error carries the operation for the report; there is no heap to box it in.
    #[allow(clippy::result_large_err)]
    pub fn drain<A: ArenaTarget>(&mut self, arena: &mut A) -> Result<(), ArenaRunError> {
        self.step(arena, &ArenaOp::Flush)?;
        while self.model.ntaken > 0 {
            let before = self.model.ntaken;
            let op = ArenaOp::Free { pick: before - 1, deferred: false };
            self.step(arena, &op)?;
            if self.model.ntaken == before {
                let step = self.step - 1;
                return Err(ArenaRunError { step, what: "drain: a free failed", op, error: None });
            }
        }
        let s = arena.sizes();
        let what = if s.allocated.0 != 0 || s.unflushed.0 != 0 {
            "drain: the arena still holds allocations"
        } else if s.imported.0 != 0 {
            "drain: an imported span did not go back once wholly free"
        } else {
            return Ok(());
        };
        Err(ArenaRunError { step: self.step, what, op: ArenaOp::Flush, error: None })
    }

    /// [`ArenaOp::Flush`](crate::arena_ops::ArenaOp::Flush): every range
    /// freed but not flushed becomes free, and [`ArenaTarget::flushed`]
    /// says how much that was.
    pub(super) fn flush<A: ArenaTarget>(&mut self, arena: &mut A) -> Result<Outcome, &'static str> {
        let waiting = self.model.unflushed_bytes();
        if arena.flushed().0 != waiting {
            return Err("flushed() returned other than the bytes freed but not flushed");
        }
        self.model.flush();
        Ok((true, Ok(())))
    }

    /// [`ArenaOp::BadFree`](crate::arena_ops::ArenaOp::BadFree): valid only
    /// when `addr` starts a live allocation made by address with `size`
    /// asked.
    pub(super) fn bad_free<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        addr: usize,
        size: usize,
    ) -> Outcome {
        let i = self.model.by_address(addr).filter(|&i| self.model.taken[i].asked == size);
        let r = arena.free(Addr(addr), Size(size));
        match (&r, i) {
            (Ok(()), Some(i)) => self.model.forget(i),
            (Err(ArenaError::BadFree { .. }), None) => self.model.bad_frees += 1,
            _ => {}
        }
        (i.is_some(), r)
    }

    /// Free `h` through the arena. When the model holds it as live
    /// allocation `expected`, a success must return that allocation's size
    /// and the model forgets it; a success otherwise is an error.
    pub(super) fn free_held<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        h: A::Handle,
        expected: Option<usize>,
    ) -> Result<Result<(), ArenaError>, &'static str> {
        let r = arena.free_handle(h);
        if let Ok(size) = r {
            match expected {
                Some(i) if self.model.taken[i].asked == size.0 => {
                    self.model.forget(i);
                    self.stats.handle_frees += 1;
                }
                Some(_) => return Err("free_handle returned the wrong size"),
                None => return Err("free_handle freed a handle the model holds bad"),
            }
        }
        Ok(r.map(drop))
    }

    /// The arena's unflushed segments and bytes are exactly the model's.
    pub(super) fn compare_unflushed<A: ArenaTarget>(
        &self,
        a: &A,
    ) -> Result<(), (&'static str, Option<ArenaError>)> {
        let m = &self.model;
        if a.sizes().unflushed.0 != m.unflushed_bytes() {
            return Err(("bytes freed but not flushed differ from the model", None));
        }
        let mut walk = a.walk(SegmentKinds::UNFLUSHED);
        for l in m.taken_ranges().iter().filter(|l| l.unflushed) {
            match walk.next() {
                Some(s)
                    if s.kind == SegmentKind::Unflushed
                        && s.range.base().0 == l.addr
                        && s.range.limit().0 == l.end => {}
                _ => return Err(("unflushed segments differ from the model", None)),
            }
        }
        if walk.next().is_some() {
            return Err(("arena has an unflushed segment the model lacks", None));
        }
        Ok(())
    }
}
