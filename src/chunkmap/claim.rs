//! Changing the state of a range of chunks from a shared reference: claim
//! (leaf pages, then chunks, in address order), call the backend once per
//! run, publish or roll back.

use crate::atomic::{AtomicU8, Ordering};
use crate::hull::Hull;

use vmspace_shim::{Op, PageOps, Protection, Range, ShimError};

use super::state::{
    Action, Call, BUSY, LEAF_ABSENT, LEAF_BUSY, LEAF_PRESENT, MAPPED, PROTECTED, STATE, UNMAPPED,
};
use super::{ChunkMap, ChunkMapError};

/// The state [`publish`](ChunkMap::publish) gives claimed chunks.
#[derive(Clone, Copy)]
enum To {
    /// The state they had.
    Old,
    /// The state the action gives them.
    New,
    /// Protected: committed, and never recorded more open than their pages.
    Protected,
}

/// Wait while `byte` has a claim on it (`busy(v)`), returning the first
/// value without one; `ops.relax()` lets the claimant run meanwhile.
fn wait_unclaimed<P: PageOps>(ops: &P, byte: &AtomicU8, busy: impl Fn(u8) -> bool) -> u8 {
    loop {
        let v = byte.load(Ordering::Acquire);
        if !busy(v) {
            return v;
        }
        ops.relax();
    }
}

impl<P: PageOps> ChunkMap<P> {
    /// Apply `action` to chunks `[c0, c1)` (non-empty, inside the space).
    pub(crate) fn transition(
        &self,
        c0: usize,
        c1: usize,
        action: Action,
    ) -> Result<(), ChunkMapError> {
        let shift = self.layout.leaf_shift;
        let (l0, l1) = (c0 >> shift, ((c1 - 1) >> shift) + 1);
        // 1. Leaves: every one present, or claimed (and mapped) by us.
        for l in l0..l1 {
            if let Err(e) = self.acquire_leaf(l, action, c0) {
                self.release_leaves(l0, l, false);
                return Err(e);
            }
        }
        // 2. Chunks: claim each, keeping its old state under the busy flag.
        for c in c0..c1 {
            // SAFETY: `c < chunks`; its leaf is present or ours (step 1).
            let byte = unsafe { self.entry(c) };
            loop {
                let old = wait_unclaimed(&self.ops, byte, |v| v & BUSY != 0);
                if action.target(old).is_none() {
                    self.finish(c0, c, action, false);
                    self.release_leaves(l0, l1, false);
                    return Err(ChunkMapError::NotMapped {
                        chunk: self.chunk_range(c, c + 1).base(),
                    });
                }
                if byte
                    .compare_exchange(old, old | BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
            }
        }
        // 3. The backend, once per run of chunks needing the same call.
        let mut c = c0;
        while c < c1 {
            let call = self.call_for(c, action);
            let mut e = c + 1;
            while e < c1 && self.call_for(e, action) == call {
                e += 1;
            }
            if let Err(error) = self.apply(call, c, e, action) {
                // Each chunk is published once, by us: `[c0, c)` by the
                // undo, `[c, e)` by the settling of a failed protect or
                // here, the rest here. A chunk published is another
                // thread's to claim at once, so none may be published
                // again (that would overwrite the other thread's claim).
                let not_undone = self.undo(c0, c, action).get();
                if !matches!(error, ChunkMapError::RollbackFailed { .. }) {
                    self.publish(c, e, action, To::Old);
                }
                self.publish(e, c1, action, To::Old);
                self.release_leaves(l0, l1, false);
                return Err(match (error, not_undone) {
                    (ChunkMapError::Backend { op, range, error }, Some((l, h))) => {
                        let lost = self.chunk_range(l, h);
                        ChunkMapError::RollbackFailed { op, range, error, lost }
                    }
                    // The failed run was not settled either: from the
                    // first run not undone to the end of the failed one.
                    (ChunkMapError::RollbackFailed { op, range, error, .. }, Some((l, _))) => {
                        let lost = self.chunk_range(l, e);
                        ChunkMapError::RollbackFailed { op, range, error, lost }
                    }
                    (error, _) => error,
                });
            }
            c = e;
        }
        // 4. Publish.
        self.finish(c0, c1, action, true);
        self.release_leaves(l0, l1, true);
        Ok(())
    }

    /// Make leaf `l` present or ours. Leaves that `action` cannot create
    /// must be present (`NotMapped` names the first chunk of the range in it).
    fn acquire_leaf(&self, l: usize, action: Action, c0: usize) -> Result<(), ChunkMapError> {
        let dir = self.dir(l);
        loop {
            match wait_unclaimed(&self.ops, dir, |v| v == LEAF_BUSY) {
                LEAF_PRESENT => return Ok(()),
                _ if !action.creates_leaves() => {
                    let c = c0.max(l << self.layout.leaf_shift);
                    return Err(ChunkMapError::NotMapped {
                        chunk: self.chunk_range(c, c + 1).base(),
                    });
                }
                _ => {}
            }
            if dir
                .compare_exchange(LEAF_ABSENT, LEAF_BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let range = self.leaf_range(l);
            // SAFETY: the leaf page lies in our reservation and is unmapped
            // (it was absent, and we now own it).
            return match unsafe { self.ops.map(range) } {
                Ok(()) => Ok(()),
                Err(error) => {
                    dir.store(LEAF_ABSENT, Ordering::Release);
                    Err(ChunkMapError::Backend { op: Op::Map, range, error })
                }
            };
        }
    }

    /// Give up our claims on leaves `[l0, l1)`: publish them (`ok`), or, on
    /// failure, unmap the ones whose chunks are all unmapped again.
    fn release_leaves(&self, l0: usize, l1: usize, ok: bool) {
        for l in l0..l1 {
            let dir = self.dir(l);
            if dir.load(Ordering::Relaxed) != LEAF_BUSY {
                continue; // present before: not ours
            }
            let lo = l << self.layout.leaf_shift;
            let hi = (lo + (1 << self.layout.leaf_shift)).min(self.layout.chunks);
            // SAFETY: the leaf is ours and mapped, `c < chunks`.
            let empty =
                (lo..hi).all(|c| unsafe { self.entry(c) }.load(Ordering::Relaxed) == UNMAPPED);
            // SAFETY: the leaf page is ours, mapped, and no one reads it
            // while we hold its claim.
            if !ok && empty && unsafe { self.ops.unmap(self.leaf_range(l)) }.is_ok() {
                dir.store(LEAF_ABSENT, Ordering::Release);
            } else {
                self.leaves_present.fetch_add(1, Ordering::Relaxed);
                dir.store(LEAF_PRESENT, Ordering::Release);
            }
        }
    }

    /// The backend call claimed chunk `c` needs under `action`.
    fn call_for(&self, c: usize, action: Action) -> Call {
        // SAFETY: `c` is claimed by us, so its leaf is mapped.
        let old = unsafe { self.entry(c) }.load(Ordering::Relaxed) & STATE;
        action.target(old).map_or(Call::None, |new| Call::between(old, new))
    }

    /// Make `call` on claimed chunks `[c, e)`. A failed protect is settled
    /// ([`settle_protection`](Self::settle_protection)): `Backend` when the
    /// old protection is back, else `RollbackFailed` with the chunks
    /// recorded as settled.
    fn apply(&self, call: Call, c: usize, e: usize, action: Action) -> Result<(), ChunkMapError> {
        let op = match call {
            Call::None => return Ok(()),
            Call::Map => Op::Map,
            Call::ProtectRw | Call::ProtectNone => Op::Protect,
        };
        let range = self.chunk_range(c, e);
        // SAFETY: `range` is chunks of our space that we have claimed; their
        // states (unmapped or quarantined for a map, committed for a
        // protect) say the backend's precondition holds, and no one accesses
        // a chunk while its state says it is not mapped.
        let error = match unsafe { self.raw_call(call, range) } {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if call == Call::Map
            || !error.may_have_changed()
            || self.settle_protection(call, c, e, action)
        {
            Err(ChunkMapError::Backend { op, range, error })
        } else {
            Err(ChunkMapError::RollbackFailed { op, range, error, lost: range })
        }
    }

    /// After protect `call` on claimed, committed chunks `[c, e)` failed or
    /// must be undone, leave them with a protection their state can say.
    /// An OS may change part of a range before a protect fails (Linux's
    /// `mprotect` when a split would pass `vm.max_map_count`), so the pages
    /// may hold either protection. Putting one protection over the whole
    /// range joins what was split and needs no new mapping:
    ///
    /// 1. the old protection (the chunks keep their old state; returns
    ///    `true`);
    /// 2. failing that, the new one (the chunks are published in their new
    ///    state);
    /// 3. failing both, the chunks are published protected, the less open
    ///    of the two states: never recorded more open than a page may be.
    fn settle_protection(&self, call: Call, c: usize, e: usize, action: Action) -> bool {
        let range = self.chunk_range(c, e);
        let back = if call == Call::ProtectRw { Call::ProtectNone } else { Call::ProtectRw };
        // SAFETY: the chunks are claimed by us and committed (a protect's
        // precondition); no one else touches claimed chunks.
        if unsafe { self.raw_call(back, range) }.is_ok() {
            return true;
        }
        // SAFETY: as above.
        let forward = unsafe { self.raw_call(call, range) }.is_ok();
        // The new state when the call went through; otherwise protected,
        // which is the new state of `ProtectNone` and the old of `ProtectRw`.
        self.publish(c, e, action, if forward { To::New } else { To::Protected });
        false
    }

    /// After a failed unmap or protect of committed chunks `range`, some of
    /// whose pages may now be inaccessible (an OS may fail part way): make
    /// all of them read-write, which joins what was split and so needs no
    /// new mapping. Returns the state to record: mapped, or protected when
    /// that fails too (never more open than the pages).
    ///
    /// # Safety
    ///
    /// `range` is committed chunks of our space that no one else uses.
    pub(super) unsafe fn read_write_or_protected(&self, range: Range) -> u8 {
        // SAFETY: committed (the caller), so `protect`'s precondition holds.
        match unsafe { self.raw_call(Call::ProtectRw, range) } {
            Ok(()) => MAPPED,
            Err(_) => PROTECTED,
        }
    }

    /// Make the backend call `call` stands for on `range`.
    ///
    /// # Safety
    ///
    /// `range` lies in our space and meets the precondition of the call:
    /// unmapped for `Map`, mapped for the protects.
    unsafe fn raw_call(&self, call: Call, range: Range) -> Result<(), ShimError> {
        match call {
            Call::None => Ok(()),
            // SAFETY: the caller guarantees `map`'s precondition.
            Call::Map => unsafe { self.ops.map(range) },
            // SAFETY: the caller guarantees the pages are mapped.
            Call::ProtectRw => unsafe { self.ops.protect(range, Protection::ReadWrite) },
            // SAFETY: the caller guarantees the pages are mapped.
            Call::ProtectNone => unsafe { self.ops.protect(range, Protection::None) },
        }
    }

    /// Undo the calls made for claimed chunks `[c0, c)` and publish each
    /// run: in its old state when undone; a chunk whose unmap fails keeps
    /// its new state (or, if its pages cannot all be made read-write
    /// again, is protected); a protect that cannot be undone is settled
    /// ([`settle_protection`](Self::settle_protection), which publishes
    /// it). Returns the chunks from the first run not given its old state
    /// back to the last, if any.
    fn undo(&self, c0: usize, c: usize, action: Action) -> Hull {
        let mut not_undone = Hull::EMPTY;
        let mut i = c0;
        while i < c {
            let call = self.call_for(i, action);
            let mut e = i + 1;
            while e < c && self.call_for(e, action) == call {
                e += 1;
            }
            let undone = match call {
                Call::None => true,
                Call::Map => {
                    let range = self.chunk_range(i, e);
                    // SAFETY: we mapped these claimed chunks; no one uses
                    // them, as their published state is still not mapped.
                    let ok = unsafe { self.ops.unmap(range) }.is_ok();
                    if !ok {
                        // SAFETY: mapped by us just now, still claimed.
                        let state = unsafe { self.read_write_or_protected(range) };
                        let to = if state == MAPPED { To::New } else { To::Protected };
                        self.publish(i, e, action, to);
                    }
                    ok
                }
                Call::ProtectRw | Call::ProtectNone => self.settle_protection(call, i, e, action),
            };
            if undone {
                self.publish(i, e, action, To::Old);
            } else {
                not_undone.add(i, e);
            }
            i = e;
        }
        not_undone
    }

    /// Release our claims on `[c0, c1)`: publish the new states (`ok`) or
    /// restore the old ones.
    fn finish(&self, c0: usize, c1: usize, action: Action, ok: bool) {
        self.publish(c0, c1, action, if ok { To::New } else { To::Old });
    }

    /// Release the claimed chunks of `[c0, c1)` in the state `to` says,
    /// keeping the committed count. Each claimed chunk is published once:
    /// once published it may be claimed by another thread.
    fn publish(&self, c0: usize, c1: usize, action: Action, to: To) {
        for c in c0..c1 {
            // SAFETY: `c` is in our claimed range, so its leaf is mapped.
            let byte = unsafe { self.entry(c) };
            let v = byte.load(Ordering::Relaxed);
            debug_assert!(v & BUSY != 0, "chunk {c} published twice");
            let old = v & STATE;
            let state = match to {
                To::Old => old,
                To::New => action.target(old).unwrap_or(old),
                To::Protected => PROTECTED,
            };
            let was = old >= MAPPED;
            let is = state >= MAPPED;
            if is && !was {
                self.committed.fetch_add(1, Ordering::Relaxed);
            }
            byte.store(state, Ordering::Release);
        }
    }
}
