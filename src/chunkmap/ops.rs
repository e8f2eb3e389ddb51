//! The chunk map's operations.

use crate::atomic::Ordering;
use crate::hull::Hull;

use vmspace_shim::{Op, PageOps, Protection, Range};

use super::state::{Action, LEAF_ABSENT, LEAF_PRESENT, MAPPED, PROTECTED, UNMAPPED};
use super::{ChunkMap, ChunkMapError};

impl<P: PageOps> ChunkMap<P> {
    /// Map (commit, read-write) every chunk that `range` touches and that is
    /// not mapped: unmapped and quarantined chunks are mapped, protected ones
    /// unprotected. Safe to call from several threads on overlapping ranges:
    /// each chunk is mapped once. On failure no chunk's state has changed,
    /// unless undoing failed too ([`ChunkMapError::RollbackFailed`]).
    pub fn ensure_mapped(&self, range: Range) -> Result<(), ChunkMapError> {
        let (c0, c1) = self.chunk_indices(range, false)?;
        if (c0..c1).all(|c| self.load(c) == Some(MAPPED)) {
            return Ok(());
        }
        self.transition(c0, c1, Action::Map)
    }

    /// Set aside every unmapped chunk that `range` touches (quarantined:
    /// reserved for a use, nothing committed); other chunks keep their state.
    pub fn quarantine(&self, range: Range) -> Result<(), ChunkMapError> {
        let (c0, c1) = self.chunk_indices(range, false)?;
        self.transition(c0, c1, Action::Quarantine)
    }

    /// Make the chunks of `range` (chunk-aligned), all committed, inaccessible.
    pub fn protect(&self, range: Range) -> Result<(), ChunkMapError> {
        let (c0, c1) = self.chunk_indices(range, true)?;
        self.transition(c0, c1, Action::Protect)
    }

    /// Make the chunks of `range` (chunk-aligned), all committed, read-write.
    pub fn unprotect(&self, range: Range) -> Result<(), ChunkMapError> {
        let (c0, c1) = self.chunk_indices(range, true)?;
        self.transition(c0, c1, Action::Unprotect)
    }

    /// The state byte of chunk `c` under exclusive access (`UNMAPPED` when
    /// its leaf is absent).
    fn state_mut(&mut self, c: usize) -> u8 {
        self.load(c).unwrap_or(UNMAPPED)
    }

    /// Store the state of chunk `c`, whose leaf is present.
    fn set_state(&mut self, c: usize, s: u8) {
        if self.dir(c >> self.layout.leaf_shift).load(Ordering::Relaxed) == LEAF_PRESENT {
            // SAFETY: `c < chunks` and its leaf is present; `&mut self`
            // excludes every other access.
            unsafe { self.entry(c) }.store(s, Ordering::Release);
        }
    }

    /// The end of the run of chunks from `c` below `c1` in state `s`.
    /// Runs stop at the end of `c`'s leaf (a backend call per leaf at most
    /// for long runs; absent leaves are skipped, not walked).
    fn run_end(&mut self, c: usize, c1: usize, s: u8) -> usize {
        let end = (((c >> self.layout.leaf_shift) + 1) << self.layout.leaf_shift).min(c1);
        let mut e = c + 1;
        while e < end && self.state_mut(e) == s {
            e += 1;
        }
        e
    }

    /// Decommit the committed chunks of `range` (chunk-aligned) and return
    /// every chunk in it to unmapped. On failure no chunk's state has
    /// changed (what the caller was discarding may be zero; a run whose
    /// unmap failed part way is made read-write again), unless
    /// recommitting what was already decommitted, or making that run
    /// read-write, failed too ([`ChunkMapError::RollbackFailed`]).
    pub fn unmap(&mut self, range: Range) -> Result<(), ChunkMapError> {
        let (c0, c1) = self.chunk_indices(range, true)?;
        let mut c = c0;
        while c < c1 {
            if let Some(next) = self.past_absent_leaf(c, c1) {
                c = next;
                continue;
            }
            let s = self.state_mut(c);
            let e = self.run_end(c, c1, s);
            if s == MAPPED || s == PROTECTED {
                let r = self.chunk_range(c, e);
                // SAFETY: the chunks are committed (their states say so) in
                // our space; `&mut self` means no one else relies on them.
                if let Err(error) = unsafe { self.ops.unmap(r) } {
                    let (op, range) = (Op::Unmap, r);
                    let kept = !error.may_have_changed() || self.settle_failed_unmap(c, e, s);
                    let not_undone = self.undo_unmap(c0, c).get();
                    let lost = match (not_undone, kept) {
                        (None, true) => return Err(ChunkMapError::Backend { op, range, error }),
                        (Some((l, h)), true) => self.chunk_range(l, h),
                        (not_undone, false) => {
                            self.chunk_range(not_undone.map_or(c, |(l, _)| l), e)
                        }
                    };
                    return Err(ChunkMapError::RollbackFailed { op, range, error, lost });
                }
            }
            c = e;
        }
        let mut c = c0;
        while c < c1 {
            if let Some(next) = self.past_absent_leaf(c, c1) {
                c = next;
                continue;
            }
            let s = self.state_mut(c);
            if s == MAPPED || s == PROTECTED {
                self.committed.fetch_sub(1, Ordering::Relaxed);
            }
            if s != UNMAPPED {
                self.set_state(c, UNMAPPED);
            }
            c += 1;
        }
        Ok(())
    }

    /// When chunk `c`'s leaf is absent (all its chunks unmapped), the first
    /// chunk past that leaf, or `c1` if sooner.
    fn past_absent_leaf(&self, c: usize, c1: usize) -> Option<usize> {
        let l = c >> self.layout.leaf_shift;
        (self.dir(l).load(Ordering::Relaxed) != LEAF_PRESENT)
            .then(|| ((l + 1) << self.layout.leaf_shift).min(c1))
    }

    /// After the unmap of committed run `[c, e)` in state `s` failed: an
    /// unmap may fail part way (the mmap backend's `mprotect(PROT_NONE)`
    /// at `vm.max_map_count`), leaving some pages inaccessible. A protected
    /// run is inaccessible either way; a mapped one gets read-write back
    /// over all its pages (its old layout, so no new mapping), or failing
    /// that is recorded protected. Returns whether it keeps state `s`.
    fn settle_failed_unmap(&mut self, c: usize, e: usize, s: u8) -> bool {
        if s != MAPPED {
            return true;
        }
        // SAFETY: the chunks are committed (their state says so) in our
        // space; `&mut self` means no one else relies on them.
        if unsafe { self.read_write_or_protected(self.chunk_range(c, e)) } == MAPPED {
            return true;
        }
        for j in c..e {
            self.set_state(j, PROTECTED);
        }
        false
    }

    /// Recommit the committed chunks of `[c0, c)` that `unmap` decommitted;
    /// a chunk that cannot be recommitted is recorded as unmapped. One that
    /// cannot be protected again (a protect may fail part way) is made
    /// read-write and recorded mapped, or failing that recorded protected:
    /// never more open than its pages. Returns the chunks from the first
    /// run not restored to the last, if any.
    fn undo_unmap(&mut self, c0: usize, c: usize) -> Hull {
        let mut not_undone = Hull::EMPTY;
        let mut i = c0;
        while i < c {
            // As `unmap`'s own passes: an absent leaf has nothing to undo
            // (its chunks were all unmapped), and walking it chunk by
            // chunk made a failure in a sparse space cost every chunk.
            if let Some(next) = self.past_absent_leaf(i, c) {
                i = next;
                continue;
            }
            let s = self.state_mut(i);
            let e = self.run_end(i, c, s);
            if s == MAPPED || s == PROTECTED {
                let r = self.chunk_range(i, e);
                // SAFETY: `unmap` just decommitted these chunks of our space.
                if unsafe { self.ops.map(r) }.is_err() {
                    // They stay decommitted: record that.
                    not_undone.add(i, e);
                    for j in i..e {
                        self.committed.fetch_sub(1, Ordering::Relaxed);
                        self.set_state(j, UNMAPPED);
                    }
                } else if s == PROTECTED {
                    // SAFETY: just mapped; nothing accesses them meanwhile.
                    if unsafe { self.ops.protect(r, Protection::None) }.is_err() {
                        not_undone.add(i, e);
                        // SAFETY: as above.
                        let state = unsafe { self.read_write_or_protected(r) };
                        for j in i..e {
                            self.set_state(j, state);
                        }
                    }
                }
            }
            i = e;
        }
        not_undone
    }

    /// Unmap the leaf pages whose chunks are all unmapped. Returns how many.
    /// If the backend fails, the leaf pages given back before the failure
    /// stay given back ([`leaves_present`](Self::leaves_present) and
    /// [`metadata_mapped`](Self::metadata_mapped) say so); every chunk keeps
    /// its state either way.
    pub fn trim(&mut self) -> Result<usize, ChunkMapError> {
        let mut n = 0;
        let per_leaf = 1 << self.layout.leaf_shift;
        for l in 0..self.layout.leaves {
            if self.dir(l).load(Ordering::Relaxed) != LEAF_PRESENT {
                continue;
            }
            let lo = l * per_leaf;
            let hi = (lo + per_leaf).min(self.layout.chunks);
            if (lo..hi).any(|c| self.state_mut(c) != UNMAPPED) {
                continue;
            }
            let r = self.leaf_range(l);
            // SAFETY: the leaf page is mapped (present) in our reservation;
            // `&mut self` means no one reads it.
            unsafe { self.ops.unmap(r) }.map_err(|error| ChunkMapError::Backend {
                op: Op::Unmap,
                range: r,
                error,
            })?;
            self.dir(l).store(LEAF_ABSENT, Ordering::Release);
            self.leaves_present.fetch_sub(1, Ordering::Relaxed);
            n += 1;
        }
        Ok(n)
    }

    /// Chunks in each state: `[unmapped, quarantined, mapped, protected]`.
    pub fn census(&self) -> [usize; 4] {
        let mut n = [0usize; 4];
        let per_leaf = 1usize << self.layout.leaf_shift;
        for l in 0..self.layout.leaves {
            let lo = l * per_leaf;
            let hi = (lo + per_leaf).min(self.layout.chunks);
            for c in lo..hi {
                let s = self.load(c).unwrap_or(UNMAPPED) & super::state::STATE;
                n[s as usize] += 1;
                if s == UNMAPPED && self.load(c).is_none() {
                    // An absent leaf: all of it unmapped.
                    n[0] += hi - c - 1;
                    break;
                }
            }
        }
        n
    }
}
